"""The Hub stand-in answers the way huggingface_hub expects the Hub to: these
tests call huggingface_hub directly, so a protocol mismatch shows here rather
than as a puzzling failure in the resolution or fetch tests."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_download, hf_hub_url
from huggingface_hub.errors import (
    GatedRepoError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from tests.convert.hub_fixtures import placeholder_gguf
from tests.convert.hub_server import HubStandIn, git_blob_sha1

REPO = "owner/Model-GGUF"


@pytest.fixture
def repo(hub: HubStandIn):
    return hub.add_repo(
        REPO,
        {"Model-Q4_K_M.gguf": placeholder_gguf("m", 3000), "README.md": b"# Model"},
        base_model="owner/Model",
        downloads=42,
    )


def test_model_info_lists_files_with_sizes_and_lfs_sha256(hub: HubStandIn, repo) -> None:
    info = HfApi().model_info(REPO, files_metadata=True)
    assert (info.id, info.sha, info.downloads) == (REPO, repo.sha, 42)
    siblings = {s.rfilename: s for s in info.siblings}
    gguf = siblings["Model-Q4_K_M.gguf"]
    assert (gguf.size, gguf.lfs.size, gguf.lfs.sha256) == (3000, 3000, repo.sha256(gguf.rfilename))
    assert siblings["README.md"].lfs is None
    assert siblings["README.md"].blob_id == git_blob_sha1(b"# Model")
    assert "gguf" in info.tags and "base_model:quantized:owner/Model" in info.tags


def test_model_info_at_a_revision(hub: HubStandIn, repo) -> None:
    assert HfApi().model_info(REPO, revision=repo.sha).sha == repo.sha
    with pytest.raises(RevisionNotFoundError):
        HfApi().model_info(REPO, revision="nope")
    with pytest.raises(RepositoryNotFoundError):
        HfApi().model_info("owner/absent")


def test_search_filters_by_tags_and_name(hub: HubStandIn, repo) -> None:
    hub.add_repo("owner/Model", {"model.safetensors": b"\0"})
    api = HfApi()
    tagged = api.list_models(filter=["gguf", "base_model:quantized:owner/Model"])
    assert [m.id for m in tagged] == [REPO]
    assert sorted(m.id for m in api.list_models(search="model")) == ["owner/Model", REPO]
    assert [m.id for m in api.list_models(search="Model", filter="gguf")] == [REPO]


def test_file_metadata_has_the_headers_huggingface_hub_reads(hub: HubStandIn, repo) -> None:
    metadata = get_hf_file_metadata(hf_hub_url(REPO, "Model-Q4_K_M.gguf"))
    assert (metadata.commit_hash, metadata.etag, metadata.size) == (
        repo.sha,
        repo.sha256("Model-Q4_K_M.gguf"),
        3000,
    )
    readme = get_hf_file_metadata(hf_hub_url(REPO, "README.md"))
    assert readme.etag == git_blob_sha1(b"# Model")


def test_a_range_request_gets_the_rest_of_the_file(hub: HubStandIn, repo) -> None:
    response = httpx2.get(hf_hub_url(REPO, "Model-Q4_K_M.gguf"), headers={"Range": "bytes=1000-"})
    assert response.status_code == 206
    assert response.headers["Content-Range"] == "bytes 1000-2999/3000"
    assert response.content == repo.files["Model-Q4_K_M.gguf"][1000:]


def test_hf_hub_download_itself_works_against_the_stand_in(hub: HubStandIn, repo) -> None:
    path = hf_hub_download(REPO, "Model-Q4_K_M.gguf")
    assert Path(path).read_bytes() == repo.files["Model-Q4_K_M.gguf"]


def test_errors_carry_the_codes_huggingface_hub_maps(hub: HubStandIn, repo) -> None:
    hub.add_repo("owner/Gated", {"x.gguf": b"GGUF"}, gated=True)
    with pytest.raises(GatedRepoError):
        get_hf_file_metadata(hf_hub_url("owner/Gated", "x.gguf"))
    with pytest.raises(RemoteEntryNotFoundError):
        get_hf_file_metadata(hf_hub_url(REPO, "absent.gguf"))
    with pytest.raises(RepositoryNotFoundError):
        get_hf_file_metadata(hf_hub_url("owner/absent", "x.gguf"))
