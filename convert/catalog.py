"""The curated table: GGUF builds of the transformers models our examples and
the seed documents name.

Resolution looks here before it searches the Hub, so these ids resolve the same
way every time (a search ranks by downloads, which change), and without the
Hub: with `HF_HUB_OFFLINE=1` the table still says which cached repository holds
a model's GGUF build. Only repositories checked by hand belong here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CatalogEntry:
    model: str  # the transformers repository a compose file names
    gguf_repository: str  # a GGUF build of the same weights


_ENTRIES = (
    # The seeds' model. ggml-org is llama.cpp's own organization; its files are
    # SmolLM3-Q4_K_M.gguf (1.92 GB), SmolLM3-Q8_0.gguf and SmolLM3-f16.gguf.
    CatalogEntry("HuggingFaceTB/SmolLM3-3B", "ggml-org/SmolLM3-3B-GGUF"),
    # SmolLM2 sizes; 135M is also the embedded model, which needs no download.
    CatalogEntry("HuggingFaceTB/SmolLM2-1.7B-Instruct", "bartowski/SmolLM2-1.7B-Instruct-GGUF"),
    CatalogEntry("HuggingFaceTB/SmolLM2-360M-Instruct", "bartowski/SmolLM2-360M-Instruct-GGUF"),
    CatalogEntry("HuggingFaceTB/SmolLM2-135M-Instruct", "bartowski/SmolLM2-135M-Instruct-GGUF"),
    # The seeds' "larger, higher-quality" alternative.
    CatalogEntry("HuggingFaceH4/zephyr-7b-beta", "TheBloke/zephyr-7B-beta-GGUF"),
)

CATALOG: dict[str, CatalogEntry] = {entry.model.lower(): entry for entry in _ENTRIES}

# Models the seed documents suggest for which we know of no GGUF build: said in
# the error when neither the table nor a Hub search finds one.
_NO_GGUF_BUILD = {
    "microsoft/dialogpt-small": "DialoGPT",
    "microsoft/dialogpt-medium": "DialoGPT",
    "microsoft/dialogpt-large": "DialoGPT",
    "eleutherai/gpt-neo-1.3b": "GPT-Neo",
}
_NOTES = {
    "DialoGPT": (
        "{model} (DialoGPT, 2019) has no GGUF build from a well-known publisher; "
        "HuggingFaceTB/SmolLM2-360M-Instruct is a small chat model that has one"
    ),
    "GPT-Neo": "{model} is a GPT-Neo model, an architecture llama.cpp does not run",
}


def lookup(model: str) -> CatalogEntry | None:
    return CATALOG.get(model.lower())


def known_gap(model: str) -> str | None:
    """What we know about a model that has no GGUF build, for the error message."""
    family = _NO_GGUF_BUILD.get(model.lower())
    return _NOTES[family].format(model=model) if family else None
