"""The machine, and the CMake arguments of the two builds: "native" (on
x86-64, -march=native minus AMX) and "safe" (portable flags, for a CPU on
which the native build died)."""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Build:
    name: str  # "native" or "safe"
    cmake_args: tuple[str, ...]
    about: str

    def env(self) -> dict[str, str]:
        return {**os.environ, "CMAKE_ARGS": shlex.join(self.cmake_args), "FORCE_CMAKE": "1"}


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


def builds() -> tuple[Build, Build]:
    """This machine's native and safe builds, with the user's CMAKE_ARGS last."""
    arch, user = machine(), user_cmake_args()
    native = native_build(arch, compiler_accepts(NO_AMX), user)
    return native, safe_build(arch, cpu_features(), user)
