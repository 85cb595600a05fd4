"""A Hugging Face model reference → the one GGUF file (or split set) to use.

`owner/name` may be a GGUF repository (then the quant picks the file) or a
transformers repository like `HuggingFaceTB/SmolLM3-3B`, which llama.cpp cannot
load: then a GGUF build of the same model is used, from the curated table
(convert/catalog.py) or else a Hub search (convert/hub_search.py). With
`HF_HUB_OFFLINE=1`, or when the Hub cannot be reached, only the cache is used.
The reason for every choice is kept as a sentence for `pull` to print.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from huggingface_hub import HfApi, constants
from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError
from huggingface_hub.hf_api import ModelInfo

from convert.catalog import known_gap, lookup
from convert.hub_cache import cache_dir, cached_repositories, cached_repository
from convert.hub_errors import LOCAL_FILE_HINT, HubUnreachableError, hub_errors
from convert.hub_search import Candidate, explain, find_gguf_builds, is_named_after
from convert.quants import GgufBuild, choose_build, find_builds
from convert.reference import ModelReference
from runtime.errors import ModelUnavailableError


@dataclass(frozen=True)
class Resolution:
    repository: str  # the GGUF repository
    filename: str  # the file llama.cpp opens: parts[0]
    parts: list[str]  # every file of the model, in order (one unless split)
    revision: str  # the commit the files come from
    quant: str | None
    reason: str  # what was chosen and why, for `pull` to print


def resolve(reference: ModelReference, *, api: HfApi | None = None) -> Resolution:
    """Raises ModelUnavailableError (or a subclass) with what to do next."""
    if reference.repository is None:
        raise ValueError("resolve() takes a Hugging Face reference, not a local path")
    if constants.is_offline_mode():
        return _resolve_from_cache(reference, "HF_HUB_OFFLINE=1 is set")
    try:
        return _resolve_online(reference, api or HfApi())
    except HubUnreachableError as error:
        return _resolve_from_cache(reference, error.situation)


def _display(reference: ModelReference) -> str:
    """The reference as a user types it after `model-compose pull`."""
    quant = f":{reference.quant}" if reference.quant else ""
    return f"{reference.repository}{quant}"


def _model_info(api: HfApi, repository: str, revision: str | None) -> ModelInfo | None:
    """The repository's listing with file sizes; None when the Hub does not have it."""
    with hub_errors(repository, revision=revision):
        try:
            return api.model_info(
                repository,
                revision=revision,
                files_metadata=True,
                timeout=constants.HF_HUB_ETAG_TIMEOUT,
            )
        except GatedRepoError:
            raise
        except RepositoryNotFoundError:
            return None


def _builds(info: ModelInfo) -> list[GgufBuild]:
    files = [
        (s.rfilename, s.lfs.size if s.lfs is not None else s.size) for s in info.siblings or ()
    ]
    return find_builds(files)


def _resolution(info: ModelInfo, build: GgufBuild, revision: str | None, reason: str) -> Resolution:
    return Resolution(
        repository=info.id,
        filename=build.filename,
        parts=list(build.parts),
        revision=info.sha or revision or "main",
        quant=build.quant,
        reason=reason,
    )


def _resolve_online(reference: ModelReference, api: HfApi) -> Resolution:
    repository = str(reference.repository)
    entry = lookup(repository)
    on_hub = True
    if entry is None:
        info = _model_info(api, repository, reference.revision)
        on_hub = info is not None
        builds = _builds(info) if info is not None else []
        if info is not None and builds:
            build, why = choose_build(
                builds, info.id, quant=reference.quant, filename=reference.filename
            )
            reason = f"using {info.id}, file {build.filename} ({why})"
            return _resolution(info, build, reference.revision, reason)
    # A transformers repository (or one the Hub does not have): a GGUF build of it.
    intro = f"{repository} is a transformers repository; using its GGUF build"
    first_error: ModelUnavailableError | None = None
    others: list[Candidate] = []
    for source, how in _gguf_repositories(api, repository, others):
        info = _model_info(api, source, None)
        builds = _builds(info) if info is not None else []
        if info is None or not builds:
            continue
        try:
            build, why = choose_build(
                builds, info.id, quant=reference.quant, filename=reference.filename
            )
        except ModelUnavailableError as error:
            # This build lacks the quant or file asked for; another may have it.
            first_error = first_error or error
            continue
        reason = f"{intro} {info.id} ({how}), file {build.filename} ({why})"
        return _resolution(info, build, None, reason)
    if first_error is not None:
        raise first_error
    raise ModelUnavailableError(_nothing_found(repository, on_hub, others))


def _gguf_repositories(
    api: HfApi, repository: str, unknown: list[Candidate]
) -> Iterator[tuple[str, str]]:
    """(GGUF repository, how it was found), best first. The Hub is searched only
    when the curated build does not do; builds from publishers we do not know
    are not yielded but added to `unknown`, for the error message."""
    entry = lookup(repository)
    if entry is not None:
        yield entry.gguf_repository, "curated"
    with hub_errors(repository):
        candidates = find_gguf_builds(api, repository)
    known = [c for c in candidates if c.is_known]
    unknown.extend(c for c in candidates if not c.is_known)
    for index, candidate in enumerate(known):
        if entry is None or candidate.repository.lower() != entry.gguf_repository.lower():
            yield candidate.repository, explain(candidate, known[index + 1 :])


def _nothing_found(repository: str, on_hub: bool, unknown: list[Candidate]) -> str:
    if on_hub:
        situation = (
            "it is a transformers repository, and no well-known publisher has a GGUF build "
            "of it on the Hub"
        )
    else:
        situation = (
            "it is not on the Hugging Face Hub (or it is private: then set HF_TOKEN), "
            "and no well-known publisher has a GGUF build of it"
        )
    message = f"found no GGUF build of {repository}: {situation}"
    gap = known_gap(repository)
    if gap:
        message += f" ({gap})"
    if unknown:
        shown = ", ".join(c.repository for c in unknown[:5])
        message += f"; GGUF builds by other publishers: {shown}"
    return f"{message}; name a GGUF repository instead (model: owner/name-GGUF), {LOCAL_FILE_HINT}"


def _cached_names(repository: str) -> list[str]:
    """Cached repositories that may hold `repository` as GGUF: itself, its
    curated build, and GGUF repositories named after it (best publisher first)."""
    names = [repository]
    entry = lookup(repository)
    if entry is not None:
        names.append(entry.gguf_repository)
    named = [
        Candidate(name, 0) for name in cached_repositories() if is_named_after(name, repository)
    ]
    names += [c.repository for c in sorted(named, key=Candidate.rank_key)]
    return list(dict.fromkeys(names))


def _resolve_from_cache(reference: ModelReference, situation: str) -> Resolution:
    repository = str(reference.repository)
    first_error: ModelUnavailableError | None = None
    for name in _cached_names(repository):
        cached = cached_repository(name)
        if cached is None:
            continue
        try:
            build, why = choose_build(
                cached.builds, cached.repository, quant=reference.quant, filename=reference.filename
            )
        except ModelUnavailableError as error:
            first_error = first_error or error
            continue
        using = f"using the cached {cached.repository}, file {build.filename} ({why})"
        return Resolution(
            repository=cached.repository,
            filename=build.filename,
            parts=list(build.parts),
            revision=cached.revision,
            quant=build.quant,
            reason=f"{situation}; {using}",
        )
    if first_error is not None:
        raise ModelUnavailableError(f"{situation}; in the Hugging Face cache, {first_error}")
    if situation.startswith("HF_HUB_OFFLINE"):
        fix = f"fetch it first with `model-compose pull {_display(reference)}` while online"
    else:
        fix = "check the network connection and HF_ENDPOINT"
    raise ModelUnavailableError(
        f"{situation}, and no GGUF build of {repository} is in the Hugging Face cache "
        f"({cache_dir()}): {fix}, {LOCAL_FILE_HINT}"
    )
