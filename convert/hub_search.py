"""Finding GGUF builds of a transformers model on the Hub.

Two searches: repositories that declare the model as the base they quantize
(the Hub tags them `base_model:quantized:<id>`), and GGUF repositories named
after the model (`<name>-GGUF`, `<owner>_<name>-GGUF`), for publishers that do
not fill in `base_model`. Only well-known publishers are used without asking:
anyone can upload a file called `SmolLM3-3B-GGUF`, so builds from others are
listed in the error for the user to choose by name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from huggingface_hub import HfApi

# Publishers of GGUF builds for many models, converted with a current llama.cpp,
# with the usual range of quants and the model's chat template. Ranked: the
# first one that has a build wins; ggml-org is llama.cpp's own organization.
KNOWN_PUBLISHERS = (
    "ggml-org",
    "bartowski",
    "unsloth",
    "lmstudio-community",
    "TheBloke",
    "QuantFactory",
    "second-state",
    "MaziyarPanahi",
    "mradermacher",
)
_RANK = {name.lower(): rank for rank, name in enumerate(KNOWN_PUBLISHERS)}
_GGUF_SUFFIXES = ("-gguf", "_gguf", ".gguf", "-i1-gguf")
SEARCH_LIMIT = 50


@dataclass(frozen=True)
class Candidate:
    repository: str
    downloads: int

    @property
    def publisher(self) -> str:
        return self.repository.split("/", 1)[0]

    @property
    def is_known(self) -> bool:
        return self.publisher.lower() in _RANK

    def rank_key(self) -> tuple[int, int, str]:
        """Well-known publishers in their order, then the most downloaded."""
        rank = _RANK.get(self.publisher.lower(), len(KNOWN_PUBLISHERS))
        return (rank, -self.downloads, self.repository.lower())


def is_named_after(repository: str, model: str) -> bool:
    """Whether a repository's name says it is a GGUF build of `model`:
    `X/SmolLM3-3B-GGUF`, `X/HuggingFaceTB_SmolLM3-3B-GGUF`, `X/HuggingFaceTB.SmolLM3-3B-GGUF`."""
    owner, _, name = model.lower().partition("/")
    repo_name = repository.lower().partition("/")[2]
    for suffix in _GGUF_SUFFIXES:
        if repo_name.endswith(suffix):
            stem = repo_name.removesuffix(suffix)
            return stem in (name, f"{owner}_{name}", f"{owner}.{name}", f"{owner}-{name}")
    return False


def _collect(found: dict[str, Candidate], models: Iterable[object], model: str, *, by_tag: bool):
    for info in models:
        repository = str(getattr(info, "id", ""))
        if not repository or repository.lower() == model.lower():
            continue
        if by_tag or is_named_after(repository, model):
            downloads = int(getattr(info, "downloads", None) or 0)
            found.setdefault(repository, Candidate(repository, downloads))


def find_gguf_builds(api: HfApi, model: str) -> list[Candidate]:
    """GGUF repositories of `model` on the Hub, best first (see `rank_key`)."""
    found: dict[str, Candidate] = {}
    tagged = api.list_models(
        filter=["gguf", f"base_model:quantized:{model}"], sort="downloads", limit=SEARCH_LIMIT
    )
    _collect(found, tagged, model, by_tag=True)
    named = api.list_models(
        search=model.partition("/")[2], filter="gguf", sort="downloads", limit=SEARCH_LIMIT
    )
    _collect(found, named, model, by_tag=False)
    return sorted(found.values(), key=Candidate.rank_key)


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def explain(chosen: Candidate, others: list[Candidate]) -> str:
    """Why this build, for the reason `pull` prints."""
    rank = _RANK[chosen.publisher.lower()] + 1
    text = (
        f"found on the Hub: {chosen.publisher} ranks {ordinal(rank)} among well-known GGUF "
        f"publishers; {chosen.downloads:,} downloads"
    )
    if others:
        shown = ", ".join(c.repository for c in others[:3])
        more = f" and {len(others) - 3} more" if len(others) > 3 else ""
        text += f"; also found: {shown}{more}"
    return text
