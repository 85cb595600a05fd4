"""Our wheel cache (pip's keys a wheel by name and version only, never by
CMAKE_ARGS), installing a wheel, and the record of what .venv holds."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from scripts.llama_build.builds import VERSION, Build, compiler_version, cpu_features, machine

RECORD = ".llama-build.json"
SOURCE_ONLY = ("--no-binary", "llama-cpp-python")


class SetupError(Exception):
    """Setup cannot go on; the message is the one line the user sees."""


def say(line: str) -> None:
    print(f"scripts/setup: {line}", flush=True)


def cache_key(build: Build, python: str, version: str = VERSION) -> str:
    """What makes two wheels differ; the folder name of one under the cache."""
    facts = {
        "version": version,
        "cmake_args": build.cmake_args,
        "cc": compiler_version(os.environ.get("CC", "cc")),
        "cxx": compiler_version(os.environ.get("CXX", "c++")),
        "machine": machine(),
        "cpu": sorted(cpu_features()),
        "python": python_tag(python),
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:20]


def python_says(python: str, code: str) -> str:
    """What `python -c code` prints ("" when it fails)."""
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else ""


def python_tag(python: str) -> str:
    return python_says(
        python, "import sys, sysconfig; print(sys.version, sysconfig.get_platform())"
    )


def cache_home() -> Path:
    """~/.cache/model-compose: the wheels' folder and llama-server's live in it."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "model-compose"


def cache_root() -> Path:
    if "MODEL_COMPOSE_WHEEL_CACHE" in os.environ:
        return Path(os.environ["MODEL_COMPOSE_WHEEL_CACHE"])
    return cache_home() / "llama-cpp-python"


def sdist_path(version: str = VERSION) -> Path:
    # convert/llama3_vocab.py looks for it here: keep the two in step.
    return cache_root() / "sdist" / f"llama_cpp_python-{version}.tar.gz"


def sdist(python: str) -> Path:
    """llama-cpp-python's source distribution (77 MB), downloaded once into our
    cache. Wheels are compiled from it, and the SmolLM3 stand-in takes the
    Llama-3 vocabulary llama.cpp ships (models/ggml-vocab-llama-bpe.gguf) out
    of it (convert/llama3_vocab.py), so it is kept."""
    target = sdist_path()
    if target.is_file():
        return target
    say(f"downloading llama-cpp-python {VERSION}'s source (77 MB)")
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=".downloading-"))
    try:
        command = [python, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "--quiet"]
        done = subprocess.run(
            # The source distribution, never a prebuilt wheel a package index may offer.
            [*command, *SOURCE_ONLY, "-d", str(scratch), f"llama-cpp-python=={VERSION}"],
            capture_output=True,
            text=True,
            check=False,
        )
        found = sorted(scratch.glob("*.tar.gz"))
        if done.returncode != 0 or len(found) != 1:
            print((done.stdout + done.stderr)[-3000:], file=sys.stderr)
            raise SetupError(f"downloading llama-cpp-python {VERSION}'s source failed")
        found[0].replace(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def wheel_for(build: Build, python: str) -> Path:
    """The wheel for `build`: from our cache, or compiled now (minutes)."""
    folder = cache_root() / cache_key(build, python)
    wheels = sorted(folder.glob("llama_cpp_python-*.whl"))
    if wheels:
        return wheels[-1]
    source = sdist(python)
    say(f"compiling llama-cpp-python {VERSION}, {build.about} (about 5 minutes on 2 cores)")
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".building-"))
    try:
        log = scratch / "build.log"
        with log.open("w") as out:
            command = [python, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir"]
            done = subprocess.run(
                [*command, "-w", str(scratch), str(source)],
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
