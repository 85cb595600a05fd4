"""Downloading a resolved GGUF model into the Hugging Face cache.

Files land where huggingface_hub puts them (`$HF_HOME/hub`, shared with other
tools) and `hf_hub_download` links them into the repository's snapshot. The
bytes themselves are fetched here, for two things huggingface_hub 2.x does not
do: an interrupted download resumes on the next run (huggingface_hub deletes
its partial file when a download fails; ours stays as `blobs/<sha256>.partial`
and is continued with an HTTP Range request), and every downloaded file is
checked against the sha256 the Hub publishes for it before it enters the cache.

Everything here blocks: a server calls `fetch` in a worker thread
(`asyncio.to_thread`), never on the event loop.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import httpx2
from huggingface_hub import (
    constants,
    get_hf_file_metadata,
    hf_hub_download,
    hf_hub_url,
    try_to_load_from_cache,
)
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.file_download import http_get, repo_folder_name
from huggingface_hub.utils import WeakFileLock, are_progress_bars_disabled, build_hf_headers
from tqdm import tqdm

from convert.hub_cache import CachedFile, cache_dir, cached_gguf_files
from convert.hub_errors import LOCAL_FILE_HINT, hub_errors
from convert.preflight import human
from convert.resolve import Resolution
from runtime.errors import ModelLoadError, ModelUnavailableError

__all__ = ["CachedFile", "cached_gguf_files", "fetch"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_HASH_CHUNK = 8 * 1024 * 1024


class _Progress(tqdm):
    """A download bar on stderr. huggingface_hub's own bar hides itself when
    stderr is not a terminal; ours shows there too (less often), so that the
    log of `up -d` says how a download went. HF_HUB_DISABLE_PROGRESS_BARS=1
    still turns it off."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["file"] = sys.stderr
        kwargs["disable"] = are_progress_bars_disabled()
        if not sys.stderr.isatty():
            kwargs["mininterval"] = 10.0
        super().__init__(*args, **kwargs)


class _Silent(tqdm):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["disable"] = True
        super().__init__(*args, **kwargs)


def fetch(resolution: Resolution, *, progress: bool = True) -> Path:
    """Download every part of `resolution` that is not cached yet, and return
    the local path of the first part (the one llama.cpp opens; the others sit
    next to it). Raises ModelUnavailableError or ModelLoadError."""
    bar = _Progress if progress else _Silent
    paths = [
        _fetch_file(resolution.repository, part, resolution.revision, bar)
        for part in resolution.parts
    ]
    return paths[0]


def _fetch_file(repository: str, filename: str, revision: str, bar: type[tqdm]) -> Path:
    cached = try_to_load_from_cache(repository, filename, revision=revision)
    if isinstance(cached, str):
        return Path(cached)
    if constants.is_offline_mode():
        raise ModelUnavailableError(
            f"HF_HUB_OFFLINE=1 is set and {repository}/{filename} is not in the Hugging Face "
            f"cache ({cache_dir()}): fetch it first with `model-compose pull {repository}` "
            f"while online, {LOCAL_FILE_HINT}"
        )
    with hub_errors(repository, filename, revision):
        url = hf_hub_url(repository, filename, revision=revision)
        metadata = get_hf_file_metadata(url)
        if metadata.etag is None or metadata.commit_hash is None:
            raise ModelLoadError(
                f"the answer of {constants.ENDPOINT} for {repository}/{filename} lacks the "
                "ETag or X-Repo-Commit header: is HF_ENDPOINT a Hugging Face Hub?"
            )
        storage = cache_dir() / repo_folder_name(repo_id=repository, repo_type="model")
        blob = storage / "blobs" / metadata.etag
        if not blob.exists():
            lock = cache_dir() / ".locks" / storage.name / f"{metadata.etag}.lock"
            lock.parent.mkdir(parents=True, exist_ok=True)
            # The same lock huggingface_hub takes for this blob: one download at a time.
            with WeakFileLock(lock):
                if not blob.exists():
                    _download(f"{repository}/{filename}", url, metadata, blob, bar)
        # The blob is in place: this only links it into the snapshot (and sets refs).
        return Path(hf_hub_download(repository, filename, revision=revision))


def _download(what: str, url: str, metadata: Any, blob: Path, bar: type[tqdm]) -> None:
    partial = blob.with_name(blob.name + ".partial")
    blob.parent.mkdir(parents=True, exist_ok=True)
    size: int | None = metadata.size
    done = partial.stat().st_size if partial.exists() else 0
    if size is not None and done > size:
        partial.unlink()
        done = 0
    _check_disk_space(what, blob.parent, (size or 0) - done)
    location = metadata.location or url
    headers = build_hf_headers()
    if urlsplit(location).netloc != urlsplit(url).netloc:
        headers.pop("authorization", None)  # a signed CDN address: the token stays on the Hub
    try:
        with partial.open("ab") as file:
            http_get(
                location,
                file,
                resume_size=done,
                headers=headers,
                expected_size=size,
                displayed_filename=PurePosixPath(what).name,
                tqdm_class=bar,
            )
    except HfHubHTTPError:
        raise  # the Hub refused (gated, gone…): hub_errors says so
    except (httpx2.TransportError, OSError) as error:
        got = partial.stat().st_size if partial.exists() else 0
        of = f" of {human(size)}" if size else ""
        raise ModelLoadError(
            f"downloading {what} stopped after {human(got)}{of} ({type(error).__name__}); "
            "run the command again to resume"
        ) from error
    _verify(what, partial, metadata.etag)
    os.replace(partial, blob)


def _verify(what: str, path: Path, etag: str) -> None:
    """For a file stored with Git LFS (every GGUF file) the Hub's ETag is the
    sha256 of its content."""
    if not _SHA256.match(etag):
        return  # a small file kept in git: its ETag is a git hash, nothing to compare
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_HASH_CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != etag:
        path.unlink()
        raise ModelLoadError(
            f"the download of {what} is corrupt: its sha256 is {digest.hexdigest()}, the Hub "
            f"says {etag}; the file was deleted, run the command again to download it anew"
        )


def _check_disk_space(what: str, folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise ModelUnavailableError(
            f"not enough disk space for {what}: it needs {human(needed)} more, and {folder} "
            f"has {human(free)} free (set HF_HOME to a disk with more room)"
        )
