"""python -m scripts.llama_build {install,prove} PYTHON (see the package docstring)."""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys

from scripts.llama_build import __doc__ as ABOUT
from scripts.llama_build.proof import install, prove
from scripts.llama_build.wheels import SetupError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.llama_build", description=ABOUT)
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
