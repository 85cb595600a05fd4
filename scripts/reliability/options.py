"""Command-line pieces both scripts share."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scripts.benchmark.run import ROOT
from scripts.reliability.compose import default_model

RESULTS = ROOT / "reliability-results"


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def add_server_options(p: argparse.ArgumentParser, name: str) -> None:
    p.add_argument("--model", help="a GGUF file (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--parallel", type=positive, default=4, help="the model's slots (4)")
    p.add_argument(
        "--max-queue", type=int, default=64, help="requests that may wait for a slot (64)"
    )
    p.add_argument("--n-threads", type=positive, help="llama.cpp threads (the engine's default)")
    p.add_argument(
        "--out",
        type=Path,
        default=RESULTS,
        help=f"folder for {name}.json and {name}.md (reliability-results/)",
    )
    p.add_argument("--timeout", type=float, default=7200.0, help="give up after SECONDS (7200)")


def model_path(given: str | None) -> str:
    if given is None:
        return default_model()
    path = Path(given).expanduser().resolve()
    if not path.is_file():
        raise SystemExit(f"no such file: {given}")
    return str(path)


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
