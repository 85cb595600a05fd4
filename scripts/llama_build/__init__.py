"""Build, install and prove the llama-cpp-python that `scripts/setup` puts in
.venv (standard library only: it runs before the virtualenv has anything).

    python -m scripts.llama_build install .venv/bin/python  # choose, build or reuse, install
    python -m scripts.llama_build prove .venv/bin/python    # a real decode in a child process

Modules: `builds` (the machine and the CMake arguments of each build),
`wheels` (our wheel cache, installing, the record in the virtualenv),
`proof` (the two steps, and the child decode), `llama_server` (llama.cpp's
own server built like the wheel, for `scripts/bench --llama-server`; run by
`scripts/build-llama-server`, not by setup).

Which build. llama.cpp's default compiles its CPU backend with -march=native.
On a CPU with AMX (Intel Sapphire Rapids and later) that builds in ggml's AMX
matmul kernels, and the vendored `ggml-cpu/amx/mmq.cpp` loads its tile config
from a stack buffer whose stores GCC 12 drops: the first `tilezero` raises
SIGILL. So on x86-64 the "native" build is `-march=native` minus the three AMX
extensions (`-mno-amx-tile -mno-amx-int8 -mno-amx-bf16`, which GCC and Clang
honour whatever the order of -march): every other instruction set the CPU has
(AVX2, AVX-512, VNNI, BF16, ...) and llama.cpp's weight repacking stay, and the
AMX kernels are simply not compiled. Elsewhere it is llama.cpp's own native
build. The user's CMAKE_ARGS (a CUDA, Metal or Vulkan build, or their own ISA
choice) come after ours, so they win; CFLAGS/CXXFLAGS are kept.

Proving it. `prove` decodes a few tokens of the embedded model in a child
process. If the child dies of a signal (SIGILL, SIGSEGV, ...), it prints the
CPU's features and the build's flags, rebuilds with the "safe" flags (no
-march=native: SSE4.2/AVX/AVX2/FMA/F16C/BMI2 as /proc/cpuinfo lists them, no
AVX-512, no AMX) and proves that; if that dies too, setup fails with one line.

Source. The llama-cpp-python sdist is downloaded once into
~/.cache/model-compose/llama-cpp-python/sdist and the wheels are built from
it; it is kept because the SmolLM3 stand-in model takes the Llama-3
vocabulary llama.cpp ships out of it (convert/llama3_vocab.py).

Caching. pip's wheel cache keys a wheel by name and version only, never by
CMAKE_ARGS, so a wheel built with other flags would come back silently. We
never use it (`--no-cache-dir`): each wheel lives in a folder of its own under
~/.cache/model-compose/llama-cpp-python/<key>, the key hashing the version,
the CMake arguments, the compilers, the machine, the CPU's features and the
target Python. .venv/.llama-build.json records what is installed and whether
it was proved.
"""

from scripts.llama_build.builds import (
    NO_AMX,
    SAFE_X86,
    SAFE_X86_OFF,
    VERSION,
    Build,
    compiler_accepts,
    cpu_features,
    machine,
    native_build,
    safe_build,
)
from scripts.llama_build.proof import PROBE, ProbeResult, install, probe, prove
from scripts.llama_build.wheels import (
    RECORD,
    SetupError,
    cache_key,
    read_record,
    sdist,
    write_record,
)

__all__ = [
    "NO_AMX",
    "PROBE",
    "RECORD",
    "SAFE_X86",
    "SAFE_X86_OFF",
    "VERSION",
    "Build",
    "ProbeResult",
    "SetupError",
    "cache_key",
    "compiler_accepts",
    "cpu_features",
    "install",
    "machine",
    "native_build",
    "probe",
    "prove",
    "read_record",
    "safe_build",
    "sdist",
    "write_record",
]
