"""llama.cpp's own `llama-server`, built from the llama.cpp that
llama-cpp-python's sdist vendors and with the CMake arguments the wheel in
.venv was built with, so that `scripts/bench --llama-server` compares two
servers over one llama.cpp (same source, same instruction sets).

    scripts/build-llama-server [--jobs N]   # python -m scripts.llama_build.llama_server

The sdist's vendor/llama.cpp is extracted into a scratch folder, configured
with CMake (Ninja when it is there) and only the `llama-server` target is
built, statically linked, so the one binary is all the cache keeps:
~/.cache/model-compose/llama-server/<key>/llama-server, the key hashing what
the wheel's key hashes (`wheels.cache_key`) over these arguments. A second run
prints the cached path at once. The path is stdout's last line.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from scripts.llama_build.builds import VERSION, Build
from scripts.llama_build.wheels import (
    RECORD,
    SetupError,
    cache_home,
    cache_key,
    read_record,
    sdist,
)

BINARY = "llama-server"
# What llama-server needs on top of the wheel's arguments, and nothing more
# (checked against the llama.cpp vendored in llama-cpp-python 0.3.36). They
# choose targets and linking, never instruction sets, so they come last: a
# user's -DBUILD_SHARED_LIBS=ON in CMAKE_ARGS must not scatter the binary's
# libraries over a build folder we delete. LLAMA_CURL is not among them: this
# llama.cpp deprecated it and ignores it.
SERVER_ARGS = (
    "-DCMAKE_BUILD_TYPE=Release",  # scikit-build-core's default for the wheel too
    "-DBUILD_SHARED_LIBS=OFF",  # one self-contained file to cache
    "-DLLAMA_BUILD_COMMON=ON",
    "-DLLAMA_BUILD_TOOLS=ON",  # tools/server is under tools/
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_APP=OFF",
    # No Web UI: building it needs npm, and the prebuilt one is downloaded
    # from Hugging Face; the benchmark only calls /v1/completions.
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_OPENSSL=OFF",  # it serves plain HTTP on loopback; nothing to fetch
)
Say = Callable[[str], None]


def say(line: str) -> None:
    # stderr: stdout is for the binary's path, which scripts read.
    print(f"scripts/build-llama-server: {line}", file=sys.stderr, flush=True)


def server_build(python: str) -> Build:
    """The wheel's build (from the record scripts/setup wrote into .venv) plus
    what llama-server needs."""
    record = read_record(python)
    wheel_args = record.get("cmake_args")
    if not isinstance(wheel_args, list):
        raise SetupError(
            f"no record of how llama-cpp-python was built ({RECORD} next to {python}'s "
            "virtualenv); run scripts/setup first"
        )
    name = str(record.get("build", "native"))
    return Build(name, (*wheel_args, *SERVER_ARGS), f"llama-server, the wheel's {name} build")


def cache_folder(build: Build, python: str) -> Path:
    return cache_home() / "llama-server" / cache_key(build, python)


def cached_binary(python: str = sys.executable) -> Path | None:
    """The llama-server built for the wheel `python` has, if it was built."""
    binary = cache_folder(server_build(python), python) / BINARY
    return binary if binary.is_file() and os.access(binary, os.X_OK) else None


def cmake_commands(source: Path, build_dir: Path, build: Build, jobs: int) -> list[list[str]]:
    """Configure, then build the one target."""
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    configure = ["cmake", "-S", str(source), "-B", str(build_dir), *generator, *build.cmake_args]
    compile_ = ["cmake", "--build", str(build_dir), "--target", BINARY, "--parallel", str(jobs)]
    return [configure, compile_]


def extract_llama_cpp(archive: Path, target: Path) -> Path:
    """The sdist's vendor/llama.cpp, extracted alone into `target`."""
    marker = "/vendor/llama.cpp/"

    def only_llama_cpp(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
        _, found, inside = member.name.partition(marker)
        if not found or not inside or member.islnk():
            return None
        return tarfile.data_filter(member.replace(name=inside, deep=False), dest)

    with tarfile.open(archive) as tar:
        tar.extractall(target, filter=only_llama_cpp)
    if not (target / "tools" / "server").is_dir():
        raise SetupError(f"{archive} holds no vendor/llama.cpp/tools/server")
    return target


def version_of(binary: Path) -> str:
    """`llama-server --version`'s output; raises when the binary does not run."""
    done = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, check=False, timeout=60
    )
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        raise SetupError(f"{binary} --version failed (exit {done.returncode}): {output[-500:]}")
    return output


def describe(binary: Path) -> str:
    """One line: its version, and which llama.cpp it was built from when it is
    one of ours (llama.cpp built outside git calls itself "build 0")."""
    line = version_of(binary).splitlines()[0]
    try:
        facts = json.loads((binary.parent / "build.json").read_text())
    except (OSError, ValueError):
        return line
    return f"{line}, built from llama-cpp-python {facts['llama_cpp_python']}'s llama.cpp"


def build_llama_server(python: str = sys.executable, jobs: int = 2, tell: Say = say) -> Path:
    """The cached binary, or one compiled now (minutes)."""
    build = server_build(python)
    folder = cache_folder(build, python)
    binary = folder / BINARY
    if binary.is_file():
        return binary
    archive = sdist(python)
    tell(f"compiling llama-server from llama-cpp-python {VERSION}'s llama.cpp, {jobs} job(s)")
    tell(f"CMake arguments: {shlex.join(build.cmake_args)}")
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".building-"))
    try:
        source = extract_llama_cpp(archive, scratch / "llama.cpp")
        log = scratch / "build.log"
        for command in cmake_commands(source, scratch / "build", build, jobs):
            with log.open("a") as out:
                done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
            if done.returncode != 0:
                tail = log.read_text(errors="replace").splitlines()[-25:]
                print("\n".join(tail), file=sys.stderr)
                raise SetupError(f"{shlex.join(command)} failed (exit {done.returncode})")
        out_folder = scratch / "out"
        out_folder.mkdir()
        shutil.copy2(scratch / "build" / "bin" / BINARY, out_folder / BINARY)
        facts = {
            "version": version_of(out_folder / BINARY),
            "llama_cpp_python": VERSION,
            "wheel_key": read_record(python).get("key"),
            "cmake_args": build.cmake_args,
        }
        (out_folder / "build.json").write_text(json.dumps(facts, indent=2) + "\n")
        if not folder.exists():  # else another build finished first: use its binary
            out_folder.rename(folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return binary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/build-llama-server", description=__doc__)
    parser.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="parallel compile jobs (default: the CPU count)",
    )
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="the virtualenv's python, whose wheel's build to follow (default: this one)",
    )
    args = parser.parse_args(argv)
    try:
        binary = build_llama_server(args.python, max(1, args.jobs))
        say(describe(binary))
    except SetupError as exc:
        say(str(exc))
        return 1
    print(binary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
