"""GGUF files already in the Hugging Face cache (`$HF_HOME/hub`, shared with
every tool that uses huggingface_hub): for `model-compose models`, and for
resolving a model without the Hub (`HF_HUB_OFFLINE=1`, or no network)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import constants, scan_cache_dir
from huggingface_hub.errors import CacheNotFound

from convert.quants import GgufBuild, find_builds, is_model_file, quant_of


@dataclass(frozen=True)
class CachedFile:
    repository: str
    filename: str  # the path inside the repository
    quant: str | None
    size: int
    path: Path  # the snapshot path llama.cpp can open
    revision: str  # the commit it was downloaded from


def cache_dir() -> Path:
    return Path(constants.HF_HUB_CACHE)


def cached_gguf_files() -> list[CachedFile]:
    """Every GGUF model file in the cache, newest revision of each file only,
    sorted by repository and file name."""
    try:
        info = scan_cache_dir(cache_dir())
    except CacheNotFound:
        return []
    newest: dict[tuple[str, str], tuple[float, CachedFile]] = {}
    for repo in info.repos:
        if repo.repo_type != "model":
            continue
        for revision in repo.revisions:
            for file in revision.files:
                filename = file.file_path.relative_to(revision.snapshot_path).as_posix()
                if not is_model_file(filename):
                    continue
                entry = CachedFile(
                    repository=repo.repo_id,
                    filename=filename,
                    quant=quant_of(filename),
                    size=file.size_on_disk,
                    path=file.file_path,
                    revision=revision.commit_hash,
                )
                key = (repo.repo_id, filename)
                if key not in newest or newest[key][0] < revision.last_modified:
                    newest[key] = (revision.last_modified, entry)
    return sorted((e for _, e in newest.values()), key=lambda f: (f.repository.lower(), f.filename))


@dataclass(frozen=True)
class CachedRepository:
    repository: str
    revision: str
    builds: list[GgufBuild]  # complete builds only: every part is cached


def cached_repository(repository: str) -> CachedRepository | None:
    """The cached GGUF builds of one repository, from the newest revision that
    has any; None when the cache has none."""
    files = [f for f in cached_gguf_files() if f.repository.lower() == repository.lower()]
    by_revision: dict[str, list[CachedFile]] = {}
    for file in files:
        by_revision.setdefault(file.revision, []).append(file)
    # Newest first: a snapshot's links are made when its files are downloaded.
    newest = sorted(
        by_revision.items(), key=lambda item: -max(f.path.lstat().st_mtime for f in item[1])
    )
    for revision, revision_files in newest:
        builds = find_builds((f.filename, f.size) for f in revision_files)
        if builds:
            return CachedRepository(revision_files[0].repository, revision, builds)
    return None


def cached_repositories() -> list[str]:
    """The repositories that have GGUF files in the cache."""
    return sorted({f.repository for f in cached_gguf_files()}, key=str.lower)
