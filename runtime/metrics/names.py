"""What every metric of the service shares: its name's prefix, and how a
model is named in labels."""

from __future__ import annotations

from pathlib import Path

PREFIX = "model_compose_"
# The `workflow` label of runs this file does not define, which a queue front
# sends to workers: clients name them, so one value stands for them all.
REMOTE_WORKFLOW = "<remote>"


def model_label(path: str) -> str:
    """A model's `model` label: its file's name (GGUF header names repeat
    across quantizations of one model; file names do not)."""
    return Path(path).name
