"""The GGUF files of a repository: which quant each one holds, which files form
one split model, and which one to use.

Publishers put the quant in the file name, each in their own style:
`SmolLM3-Q4_K_M.gguf` (ggml-org), `HuggingFaceTB_SmolLM3-3B-Q4_K_S.gguf`
(bartowski), `zephyr-7b-beta.Q4_K_M.gguf` (TheBloke),
`smollm2-1.7b-instruct-q4_k_m.gguf` (lower case). Models too big for one file
are split as `name-00001-of-00003.gguf`; llama.cpp opens the first part and
finds the others next to it, so a split model is chosen and fetched as a set.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath

from runtime.errors import ModelUnavailableError

DEFAULT_QUANT = "Q4_K_M"

# When a repository has no file of the default quant, the first quant of this
# list it has; when it has none of them, its smallest file. Q4_K_M is llama.cpp's
# usual balance of size and quality; the other 4-bit quants come next because our
# users have 8 GB of RAM or less, then 5- and 8-bit, which are bigger but better.
QUANT_FALLBACK_ORDER = ("Q4_K_M", "Q4_K_S", "Q4_0", "Q5_K_M", "Q8_0")

_SPLIT = re.compile(r"^(?P<stem>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
_QUANT = re.compile(
    r"(?<![A-Za-z0-9])(I?Q[1-8](?:_[0-9A-Z]+)*|TQ[12]_0|MXFP4|BF16|FP16|FP32|F16|F32)(?![A-Za-z0-9])",
    re.IGNORECASE,
)
# GGUF files that are not a language model: vision projectors and importance matrices.
_NOT_A_MODEL = ("mmproj", "imatrix")
_SYNONYMS = {"FP16": "F16", "FP32": "F32"}


def normalize_quant(name: str) -> str:
    upper = name.strip().upper()
    return _SYNONYMS.get(upper, upper)


def quant_of(path: str) -> str | None:
    """The quant a GGUF file name says it holds, or None when it does not say.
    A file in a folder named for its quant (`Q8_0/model-00001-of-00002.gguf`)
    takes the folder's."""
    pure = PurePosixPath(path)
    name = pure.name
    split = _SPLIT.match(name)
    stem = split["stem"] if split else name.removesuffix(".gguf").removesuffix(".GGUF")
    for text in (stem, pure.parent.name):
        found = _QUANT.findall(text)
        if found:
            return normalize_quant(found[-1])
    return None


@dataclass(frozen=True)
class GgufBuild:
    """One loadable model: a single .gguf file, or the parts of a split one."""

    parts: tuple[str, ...]  # paths in the repository, in order
    quant: str | None
    size: int | None  # all parts together; None when the listing has no sizes

    @property
    def filename(self) -> str:
        """The file llama.cpp opens."""
        return self.parts[0]


def is_model_file(path: str) -> bool:
    name = PurePosixPath(path).name.lower()
    return name.endswith(".gguf") and not any(word in name for word in _NOT_A_MODEL)


def find_builds(files: Iterable[tuple[str, int | None]]) -> list[GgufBuild]:
    """The models among a repository's files, given as (path, size or None).
    An incomplete split set (a part missing from the listing) is left out."""
    builds: list[GgufBuild] = []
    sets: dict[tuple[str, int], dict[int, tuple[str, int | None]]] = {}
    for path, size in files:
        if not is_model_file(path):
            continue
        pure = PurePosixPath(path)
        split = _SPLIT.match(pure.name)
        if split is None:
            builds.append(GgufBuild((path,), quant_of(path), size))
            continue
        key = (str(pure.parent / split["stem"]), int(split["count"]))
        sets.setdefault(key, {})[int(split["index"])] = (path, size)
    for (_, count), parts in sets.items():
        if sorted(parts) != list(range(1, count + 1)):
            continue
        ordered = [parts[index] for index in range(1, count + 1)]
        sizes = [size for _, size in ordered]
        total = None if None in sizes else sum(s for s in sizes if s is not None)
        paths = tuple(path for path, _ in ordered)
        builds.append(GgufBuild(paths, quant_of(paths[0]), total))
    return sorted(builds, key=lambda build: build.filename)


def _bits(quant: str | None) -> int:
    """Bits per weight a quant name suggests, to order files whose size is unknown."""
    if quant is None:
        return 99
    digits = re.search(r"\d+", quant)
    return int(digits.group()) if digits else 99


def _smallest_first(build: GgufBuild) -> tuple[bool, int, int, str]:
    return (build.size is None, build.size or 0, _bits(build.quant), build.filename)


def available_quants(builds: list[GgufBuild]) -> list[str]:
    """The quants on offer, smallest file first."""
    quants: list[str] = []
    for build in sorted(builds, key=_smallest_first):
        if build.quant and build.quant not in quants:
            quants.append(build.quant)
    return quants


def _or(names: tuple[str, ...]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _describe(build: GgufBuild, why: str) -> str:
    if len(build.parts) > 1:
        why += f"; split in {len(build.parts)} parts"
    return why


def choose_build(
    builds: list[GgufBuild],
    repository: str,
    *,
    quant: str | None = None,
    filename: str | None = None,
) -> tuple[GgufBuild, str]:
    """The build to use and why, in words for `pull` to print
    ("Q4_K_M, the default quant"). An explicit file name wins over a quant."""
    if not builds:
        raise ModelUnavailableError(f"{repository} has no GGUF model file")
    if filename is not None:
        for build in builds:
            if filename in build.parts:
                return build, _describe(build, f"{build.quant or 'unknown quant'}, as named")
        names = ", ".join(b.filename for b in builds[:12]) + (", …" if len(builds) > 12 else "")
        raise ModelUnavailableError(
            f"{repository} has no GGUF file named {filename}; its GGUF files: {names}"
        )
    if quant is not None:
        wanted = normalize_quant(quant)
        matches = [b for b in builds if b.quant == wanted]
        if not matches:
            raise ModelUnavailableError(
                f"{repository} has no {wanted} file; available quants: "
                + ", ".join(available_quants(builds) or ["none named in its file names"])
            )
        build = min(matches, key=_smallest_first)
        return build, _describe(build, f"{wanted}, as asked")
    if len(builds) == 1 and builds[0].quant != DEFAULT_QUANT:
        build = builds[0]
        return build, _describe(build, f"{build.quant or 'unknown quant'}, its only model file")
    for position, candidate in enumerate(QUANT_FALLBACK_ORDER):
        matches = [b for b in builds if b.quant == candidate]
        if not matches:
            continue
        build = min(matches, key=_smallest_first)
        if position == 0:
            return build, _describe(build, f"{candidate}, the default quant")
        missing = _or(QUANT_FALLBACK_ORDER[:position])
        return build, _describe(build, f"{candidate}; the repository has no {missing} file")
    build = min(builds, key=_smallest_first)
    return build, _describe(
        build,
        f"{build.quant or 'unknown quant'}, its smallest file; the repository has none of "
        + ", ".join(QUANT_FALLBACK_ORDER),
    )
