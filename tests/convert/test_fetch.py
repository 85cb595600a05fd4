"""Downloading resolved models from the Hub stand-in into the Hugging Face
cache: progress, resuming, integrity, gated repositories, offline mode, and
the listing of what is cached."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from convert.fetch import CachedFile, cached_gguf_files, fetch
from convert.reference import parse_model_reference
from convert.resolve import Resolution, resolve
from runtime.errors import ModelLoadError, ModelUnavailableError
from tests.convert.hub_fixtures import (
    SMOLLM3,
    SMOLLM3_BARTOWSKI,
    SMOLLM3_GGUF,
    go_offline,
    placeholder_gguf,
    serve_smollm3,
)
from tests.convert.hub_server import HubStandIn

Q8 = "SmolLM3-Q8_0.gguf"


def resolved(text: str) -> Resolution:
    return resolve(parse_model_reference(text))


def snapshot(hub: HubStandIn, home: Path, repository: str) -> Path:
    folder = "models--" + repository.replace("/", "--")
    return home / "hub" / folder / "snapshots" / hub.repos[repository].sha


def blobs(home: Path, repository: str) -> list[str]:
    folder = home / "hub" / ("models--" + repository.replace("/", "--")) / "blobs"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "hf-home"


def test_the_seed_model_lands_in_the_hugging_face_cache(hub: HubStandIn, home: Path) -> None:
    serve_smollm3(hub)
    path = fetch(resolved(SMOLLM3), progress=False)
    assert path == snapshot(hub, home, SMOLLM3_GGUF) / "SmolLM3-Q4_K_M.gguf"
    assert path.read_bytes() == hub.repos[SMOLLM3_GGUF].files["SmolLM3-Q4_K_M.gguf"]
    assert blobs(home, SMOLLM3_GGUF) == [hub.repos[SMOLLM3_GGUF].sha256("SmolLM3-Q4_K_M.gguf")]


def test_a_cached_file_is_not_fetched_again(hub: HubStandIn) -> None:
    serve_smollm3(hub)
    resolution = resolved(SMOLLM3)
    first = fetch(resolution, progress=False)
    count = len(hub.requests)
    assert fetch(resolution, progress=False) == first
    assert len(hub.requests) == count


def test_a_download_shows_a_progress_bar_on_stderr(
    hub: HubStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    serve_smollm3(hub)
    fetch(resolved("HuggingFaceTB/SmolLM3-3B:Q8_0"), progress=True)
    out, err = capsys.readouterr()
    assert out == ""
    assert "SmolLM3-Q8_0.gguf: 100%" in err
    assert "3.28k/3.28k" in err


def test_no_progress_bar_when_asked_not_to(
    hub: HubStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    serve_smollm3(hub)
    fetch(resolved(SMOLLM3), progress=False)
    assert capsys.readouterr() == ("", "")


def range_start(request) -> int | None:
    value = request.headers.get("Range")
    return int(value.removeprefix("bytes=").removesuffix("-")) if value else None


def test_a_dropped_connection_resumes_with_a_range_request(hub: HubStandIn) -> None:
    serve_smollm3(hub)
    hub.interrupt(SMOLLM3_GGUF, Q8, at=2500)
    path = fetch(resolved("HuggingFaceTB/SmolLM3-3B:Q8_0"), progress=False)
    assert path.read_bytes() == hub.repos[SMOLLM3_GGUF].files[Q8]
    starts = [range_start(r) for r in hub.downloads_of(Q8)]
    assert starts[0] is None
    assert len(starts) == 2 and 0 < starts[1] <= 2500


def test_an_interrupted_download_resumes_on_the_next_run(hub: HubStandIn, home: Path) -> None:
    serve_smollm3(hub)
    resolution = resolved("HuggingFaceTB/SmolLM3-3B:Q8_0")
    hub.interrupt(SMOLLM3_GGUF, Q8, at=2500, times=100)  # every retry is cut too
    with pytest.raises(ModelLoadError) as error:
        fetch(resolution, progress=False)
    assert str(error.value) == (
        "downloading ggml-org/SmolLM3-3B-GGUF/SmolLM3-Q8_0.gguf stopped after 2 KB of 3 KB "
        "(RemoteProtocolError); run the command again to resume"
    )
    sha256 = hub.repos[SMOLLM3_GGUF].sha256(Q8)
    partial = home / "hub" / "models--ggml-org--SmolLM3-3B-GGUF" / "blobs" / f"{sha256}.partial"
    kept = partial.stat().st_size
    assert 0 < kept <= 2500

    hub.interrupt(SMOLLM3_GGUF, Q8, at=2500, times=0)  # the network is back
    path = fetch(resolution, progress=False)
    assert path.read_bytes() == hub.repos[SMOLLM3_GGUF].files[Q8]
    assert range_start(hub.downloads_of(Q8)[-1]) == kept
    assert blobs(home, SMOLLM3_GGUF) == [sha256]


def test_a_corrupt_download_is_deleted_and_reported(hub: HubStandIn, home: Path) -> None:
    serve_smollm3(hub)
    resolution = resolved(SMOLLM3)
    hub.corrupt(SMOLLM3_GGUF, "SmolLM3-Q4_K_M.gguf")
    with pytest.raises(ModelLoadError) as error:
        fetch(resolution, progress=False)
    expected = hub.repos[SMOLLM3_GGUF].sha256("SmolLM3-Q4_K_M.gguf")
    message = str(error.value)
    assert message.startswith(
        "the download of ggml-org/SmolLM3-3B-GGUF/SmolLM3-Q4_K_M.gguf is corrupt: its sha256 is "
    )
    assert message.endswith(
        f", the Hub says {expected}; the file was deleted, run the command again to "
        "download it anew"
    )
    assert blobs(home, SMOLLM3_GGUF) == []
    assert not snapshot(hub, home, SMOLLM3_GGUF).exists()


def gated(hub: HubStandIn) -> Resolution:
    hub.add_repo("meta/Gated-GGUF", {"Gated-Q4_K_M.gguf": placeholder_gguf("g")}, gated=True)
    return resolved("meta/Gated-GGUF")


def test_a_gated_repository_without_a_token(hub: HubStandIn) -> None:
    with pytest.raises(ModelUnavailableError) as error:
        fetch(gated(hub), progress=False)
    assert str(error.value) == (
        "meta/Gated-GGUF is gated: accept its license on https://huggingface.co/meta/Gated-GGUF "
        "and set HF_TOKEN"
    )


def test_a_gated_repository_with_a_token_that_has_no_access(
    hub: HubStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_not_granted")
    with pytest.raises(ModelUnavailableError) as error:
        fetch(gated(hub), progress=False)
    assert str(error.value) == (
        "meta/Gated-GGUF is gated and your Hugging Face token has no access to it: accept its "
        "license on https://huggingface.co/meta/Gated-GGUF with the account the token belongs to"
    )


def test_hf_token_opens_a_gated_repository(
    hub: HubStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_granted")
    hub.granted_tokens.add("hf_granted")
    path = fetch(gated(hub), progress=False)
    assert path.name == "Gated-Q4_K_M.gguf"
    assert hub.downloads_of("Gated-Q4_K_M.gguf")[-1].headers["authorization"] == "Bearer hf_granted"


def test_offline_a_cached_file_needs_no_hub(
    hub: HubStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_smollm3(hub)
    first = fetch(resolved(SMOLLM3), progress=False)
    go_offline(monkeypatch)
    count = len(hub.requests)
    assert fetch(resolved(SMOLLM3), progress=False) == first
    assert len(hub.requests) == count


def test_offline_a_file_that_is_not_cached_is_a_clear_error(
    hub: HubStandIn, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_smollm3(hub)
    resolution = resolved(SMOLLM3)
    go_offline(monkeypatch)
    with pytest.raises(ModelUnavailableError) as error:
        fetch(resolution, progress=False)
    assert str(error.value) == (
        "HF_HUB_OFFLINE=1 is set and ggml-org/SmolLM3-3B-GGUF/SmolLM3-Q4_K_M.gguf is not in the "
        f"Hugging Face cache ({home}/hub): fetch it first with `model-compose pull "
        "ggml-org/SmolLM3-3B-GGUF` while online, or point 'model:' at a local .gguf file"
    )


def test_every_part_of_a_split_model_is_fetched_side_by_side(hub: HubStandIn) -> None:
    parts = [f"Big-Q4_K_M-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    hub.add_repo("bartowski/Big-GGUF", {name: placeholder_gguf(name, 1500) for name in parts})
    path = fetch(resolved("bartowski/Big-GGUF"), progress=False)
    assert path.name == parts[0]
    assert sorted(p.name for p in path.parent.iterdir()) == parts


async def test_fetch_runs_in_a_worker_thread_off_the_event_loop(hub: HubStandIn) -> None:
    serve_smollm3(hub)
    resolution = await asyncio.to_thread(resolved, SMOLLM3)
    path = await asyncio.to_thread(fetch, resolution, progress=False)
    assert path.name == "SmolLM3-Q4_K_M.gguf"


def test_cached_gguf_files_lists_every_fetched_model_file(hub: HubStandIn, home: Path) -> None:
    assert cached_gguf_files() == []
    serve_smollm3(hub)
    fetch(resolved(SMOLLM3), progress=False)
    fetch(resolved("HuggingFaceTB/SmolLM3-3B:Q8_0"), progress=False)
    fetch(resolved("bartowski/HuggingFaceTB_SmolLM3-3B-GGUF:Q4_K_S"), progress=False)
    ggml = snapshot(hub, home, SMOLLM3_GGUF)
    bartowski = snapshot(hub, home, SMOLLM3_BARTOWSKI)
    assert cached_gguf_files() == [
        CachedFile(
            SMOLLM3_BARTOWSKI,
            "HuggingFaceTB_SmolLM3-3B-Q4_K_S.gguf",
            "Q4_K_S",
            1820,
            bartowski / "HuggingFaceTB_SmolLM3-3B-Q4_K_S.gguf",
            hub.repos[SMOLLM3_BARTOWSKI].sha,
        ),
        CachedFile(
            SMOLLM3_GGUF,
            "SmolLM3-Q4_K_M.gguf",
            "Q4_K_M",
            1920,
            ggml / "SmolLM3-Q4_K_M.gguf",
            hub.repos[SMOLLM3_GGUF].sha,
        ),
        CachedFile(SMOLLM3_GGUF, Q8, "Q8_0", 3280, ggml / Q8, hub.repos[SMOLLM3_GGUF].sha),
    ]
