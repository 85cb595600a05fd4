"""Resolution against the Hub stand-in: GGUF repositories, transformers ids
mapped to GGUF builds (curated, then searched), and the errors that say what
to do when nothing fits."""

from __future__ import annotations

from pathlib import Path

import pytest

from convert.fetch import fetch
from convert.hub_search import find_gguf_builds
from convert.reference import ModelReference, parse_model_reference
from convert.resolve import Resolution, resolve
from runtime.errors import ModelUnavailableError
from tests.convert.hub_fixtures import (
    SMOLLM3,
    SMOLLM3_BARTOWSKI,
    SMOLLM3_GGUF,
    closed_port_url,
    go_offline,
    hermetic_hub_home,
    placeholder_gguf,
    serve_smollm3,
)
from tests.convert.hub_server import HubStandIn


def resolve_text(text: str) -> Resolution:
    return resolve(parse_model_reference(text))


def failure(text: str | ModelReference) -> str:
    reference = parse_model_reference(text) if isinstance(text, str) else text
    with pytest.raises(ModelUnavailableError) as error:
        resolve(reference)
    return str(error.value)


# -- the seed's model --------------------------------------------------------------


def test_the_seed_model_resolves_to_the_curated_q4_k_m_build(hub: HubStandIn) -> None:
    serve_smollm3(hub)
    resolution = resolve_text(SMOLLM3)
    assert resolution == Resolution(
        repository=SMOLLM3_GGUF,
        filename="SmolLM3-Q4_K_M.gguf",
        parts=["SmolLM3-Q4_K_M.gguf"],
        revision=hub.repos[SMOLLM3_GGUF].sha,
        quant="Q4_K_M",
        reason=(
            "HuggingFaceTB/SmolLM3-3B is a transformers repository; using its GGUF build "
            "ggml-org/SmolLM3-3B-GGUF (curated), file SmolLM3-Q4_K_M.gguf "
            "(Q4_K_M, the default quant)"
        ),
    )


def test_a_quant_after_the_seed_model_picks_that_file(hub: HubStandIn) -> None:
    serve_smollm3(hub)
    resolution = resolve_text("HuggingFaceTB/SmolLM3-3B:Q8_0")
    assert (resolution.repository, resolution.filename) == (SMOLLM3_GGUF, "SmolLM3-Q8_0.gguf")
    assert resolution.reason.endswith("file SmolLM3-Q8_0.gguf (Q8_0, as asked)")


def test_a_gguf_repository_with_a_quant(hub: HubStandIn) -> None:
    serve_smollm3(hub)
    resolution = resolve_text("bartowski/HuggingFaceTB_SmolLM3-3B-GGUF:Q4_K_S")
    assert (resolution.repository, resolution.parts, resolution.quant) == (
        SMOLLM3_BARTOWSKI,
        ["HuggingFaceTB_SmolLM3-3B-Q4_K_S.gguf"],
        "Q4_K_S",
    )
    assert resolution.reason == (
        "using bartowski/HuggingFaceTB_SmolLM3-3B-GGUF, file "
        "HuggingFaceTB_SmolLM3-3B-Q4_K_S.gguf (Q4_K_S, as asked)"
    )


def test_the_curated_table_needs_no_listing_of_the_transformers_repository(
    hub: HubStandIn,
) -> None:
    serve_smollm3(hub)
    del hub.repos[SMOLLM3]  # as if the transformers repository were gone from the Hub
    assert resolve_text(SMOLLM3).filename == "SmolLM3-Q4_K_M.gguf"
    assert not [r for r in hub.requests if r.path.startswith(f"/api/models/{SMOLLM3}")]


def test_a_quant_the_curated_build_lacks_comes_from_a_searched_build(hub: HubStandIn) -> None:
    serve_smollm3(hub)
    resolution = resolve_text("HuggingFaceTB/SmolLM3-3B:Q5_K_M")
    assert resolution.reason == (
        "HuggingFaceTB/SmolLM3-3B is a transformers repository; using its GGUF build "
        "bartowski/HuggingFaceTB_SmolLM3-3B-GGUF (found on the Hub: bartowski ranks 2nd "
        "among well-known GGUF publishers; 59,700 downloads), file "
        "HuggingFaceTB_SmolLM3-3B-Q5_K_M.gguf (Q5_K_M, as asked)"
    )


def test_a_quant_no_build_has_is_an_error_listing_the_quants(hub: HubStandIn) -> None:
    serve_smollm3(hub)
    assert failure("HuggingFaceTB/SmolLM3-3B:Q2_K") == (
        "ggml-org/SmolLM3-3B-GGUF has no Q2_K file; available quants: Q4_K_M, Q8_0, F16"
    )
    assert failure("bartowski/HuggingFaceTB_SmolLM3-3B-GGUF:Q8_0") == (
        "bartowski/HuggingFaceTB_SmolLM3-3B-GGUF has no Q8_0 file; "
        "available quants: Q4_K_S, Q4_K_M, Q5_K_M"
    )


# -- GGUF repositories -------------------------------------------------------------


def test_the_fallback_quant_when_the_default_is_absent(hub: HubStandIn) -> None:
    hub.add_repo(
        "bartowski/Tiny-GGUF",
        {"Tiny-Q8_0.gguf": placeholder_gguf("8"), "Tiny-Q4_0.gguf": placeholder_gguf("4")},
    )
    resolution = resolve_text("bartowski/Tiny-GGUF")
    assert resolution.reason == (
        "using bartowski/Tiny-GGUF, file Tiny-Q4_0.gguf "
        "(Q4_0; the repository has no Q4_K_M or Q4_K_S file)"
    )


def test_a_split_model_resolves_to_all_its_parts(hub: HubStandIn) -> None:
    parts = [f"Big-Q4_K_M-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    files = {name: placeholder_gguf(name, 2000) for name in parts}
    files["Big-Q8_0.gguf"] = placeholder_gguf("q8", 9000)
    hub.add_repo("bartowski/Big-GGUF", files)
    resolution = resolve_text("bartowski/Big-GGUF")
    assert (resolution.filename, resolution.parts) == (parts[0], parts)
    assert resolution.reason.endswith("(Q4_K_M, the default quant; split in 3 parts)")


def test_a_mapping_with_a_filename_and_a_revision(hub: HubStandIn) -> None:
    serve_smollm3(hub)
    sha = hub.repos[SMOLLM3_GGUF].sha
    reference = ModelReference(repository=SMOLLM3_GGUF, filename="SmolLM3-f16.gguf", revision=sha)
    resolution = resolve(reference)
    assert (resolution.filename, resolution.revision) == ("SmolLM3-f16.gguf", sha)
    assert resolution.reason.endswith("(F16, as named)")
    assert failure(ModelReference(repository=SMOLLM3_GGUF, revision="v9")) == (
        "ggml-org/SmolLM3-3B-GGUF has no revision 'v9'"
    )


# -- transformers ids found by a search --------------------------------------------


def serve_acme(hub: HubStandIn) -> None:
    """acme/Tiny-1B: builds by well-known and unknown publishers, and a
    look-alike of another model."""
    hub.add_repo("acme/Tiny-1B", {"model.safetensors": b"\0" * 64}, downloads=900)
    gguf = {
        "Tiny-1B-Q4_K_M.gguf": placeholder_gguf("4"),
        "Tiny-1B-Q8_0.gguf": placeholder_gguf("8"),
    }
    hub.add_repo("someone/Tiny-1B-GGUF", gguf, base_model="acme/Tiny-1B", downloads=10_000)
    hub.add_repo("unsloth/Tiny-1B-GGUF", gguf, base_model="acme/Tiny-1B", downloads=5_000)
    hub.add_repo("lmstudio-community/Tiny-1B-GGUF", gguf, base_model="acme/Tiny-1B", downloads=7)
    hub.add_repo("bartowski/Tiny-1B-GGUF", gguf, base_model="acme/Tiny-1B", downloads=10)
    # Named after the model but without the base_model tag (found by its name):
    hub.add_repo("bartowski/acme_Tiny-1B-GGUF", gguf, downloads=50)
    # Another model whose name starts the same:
    hub.add_repo("ggml-org/Tiny-1B-Base-GGUF", gguf, base_model="acme/Tiny-1B-Base")


def test_search_ranks_by_publisher_then_downloads(hub: HubStandIn) -> None:
    from huggingface_hub import HfApi

    serve_acme(hub)
    found = find_gguf_builds(HfApi(), "acme/Tiny-1B")
    assert [(c.repository, c.is_known) for c in found] == [
        ("bartowski/acme_Tiny-1B-GGUF", True),
        ("bartowski/Tiny-1B-GGUF", True),
        ("unsloth/Tiny-1B-GGUF", True),
        ("lmstudio-community/Tiny-1B-GGUF", True),
        ("someone/Tiny-1B-GGUF", False),
    ]


def test_a_transformers_id_resolves_to_the_best_searched_build(hub: HubStandIn) -> None:
    serve_acme(hub)
    resolution = resolve_text("acme/Tiny-1B")
    assert resolution.reason == (
        "acme/Tiny-1B is a transformers repository; using its GGUF build "
        "bartowski/acme_Tiny-1B-GGUF (found on the Hub: bartowski ranks 2nd among well-known "
        "GGUF publishers; 50 downloads; also found: bartowski/Tiny-1B-GGUF, "
        "unsloth/Tiny-1B-GGUF, lmstudio-community/Tiny-1B-GGUF), file Tiny-1B-Q4_K_M.gguf "
        "(Q4_K_M, the default quant)"
    )


def test_builds_by_unknown_publishers_are_named_but_not_used(hub: HubStandIn) -> None:
    hub.add_repo("acme/Tiny-1B", {"model.safetensors": b"\0" * 64})
    gguf = {"Tiny-1B-Q4_K_M.gguf": placeholder_gguf("t")}
    hub.add_repo("someone/Tiny-1B-GGUF", gguf, base_model="acme/Tiny-1B", downloads=3)
    assert failure("acme/Tiny-1B") == (
        "found no GGUF build of acme/Tiny-1B: it is a transformers repository, and no "
        "well-known publisher has a GGUF build of it on the Hub; GGUF builds by other "
        "publishers: someone/Tiny-1B-GGUF; name a GGUF repository instead "
        "(model: owner/name-GGUF), or point 'model:' at a local .gguf file"
    )


def test_a_seed_alternative_without_a_gguf_build_says_so(hub: HubStandIn) -> None:
    hub.add_repo("microsoft/DialoGPT-medium", {"pytorch_model.bin": b"\0" * 64})
    assert failure("microsoft/DialoGPT-medium") == (
        "found no GGUF build of microsoft/DialoGPT-medium: it is a transformers repository, "
        "and no well-known publisher has a GGUF build of it on the Hub "
        "(microsoft/DialoGPT-medium (DialoGPT, 2019) has no GGUF build from a well-known "
        "publisher; HuggingFaceTB/SmolLM2-360M-Instruct is a small chat model that has one); "
        "name a GGUF repository instead (model: owner/name-GGUF), "
        "or point 'model:' at a local .gguf file"
    )


def test_an_id_the_hub_does_not_have(hub: HubStandIn) -> None:
    assert failure("nobody/missing-model") == (
        "found no GGUF build of nobody/missing-model: it is not on the Hugging Face Hub "
        "(or it is private: then set HF_TOKEN), and no well-known publisher has a GGUF "
        "build of it; name a GGUF repository instead (model: owner/name-GGUF), "
        "or point 'model:' at a local .gguf file"
    )


# -- without the Hub ----------------------------------------------------------------


def test_an_unreachable_hub_without_a_cache_is_a_clear_error(
    hub: HubStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = closed_port_url()
    hermetic_hub_home(monkeypatch, tmp_path / "hf-home", url)
    assert failure(SMOLLM3) == (
        f"cannot reach the Hugging Face Hub at {url} (ConnectError), and no GGUF build of "
        f"HuggingFaceTB/SmolLM3-3B is in the Hugging Face cache ({tmp_path}/hf-home/hub): "
        "check the network connection and HF_ENDPOINT, or point 'model:' at a local .gguf file"
    )


def test_an_unreachable_hub_falls_back_to_the_cache(
    hub: HubStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_smollm3(hub)
    fetch(resolve_text(SMOLLM3), progress=False)
    url = closed_port_url()
    hermetic_hub_home(monkeypatch, tmp_path / "hf-home", url)
    resolution = resolve_text(SMOLLM3)
    assert resolution.reason == (
        f"cannot reach the Hugging Face Hub at {url} (ConnectError); using the cached "
        "ggml-org/SmolLM3-3B-GGUF, file SmolLM3-Q4_K_M.gguf (Q4_K_M, the default quant)"
    )
    assert resolution.revision == hub.repos[SMOLLM3_GGUF].sha


def test_offline_resolution_uses_the_cache_only(
    hub: HubStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_smollm3(hub)
    fetch(resolve_text("bartowski/HuggingFaceTB_SmolLM3-3B-GGUF:Q4_K_S"), progress=False)
    go_offline(monkeypatch)
    count = len(hub.requests)
    # The seed's id: its curated build is not cached, bartowski's (named after it) is.
    assert resolve_text(SMOLLM3).reason == (
        "HF_HUB_OFFLINE=1 is set; using the cached bartowski/HuggingFaceTB_SmolLM3-3B-GGUF, "
        "file HuggingFaceTB_SmolLM3-3B-Q4_K_S.gguf (Q4_K_S, its only model file)"
    )
    assert failure("HuggingFaceTB/SmolLM3-3B:Q8_0") == (
        "HF_HUB_OFFLINE=1 is set; in the Hugging Face cache, "
        "bartowski/HuggingFaceTB_SmolLM3-3B-GGUF has no Q8_0 file; available quants: Q4_K_S"
    )
    assert len(hub.requests) == count


def test_offline_without_a_cached_build_is_a_clear_error(
    hub: HubStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    go_offline(monkeypatch)
    assert failure("HuggingFaceTB/SmolLM3-3B:Q8_0") == (
        "HF_HUB_OFFLINE=1 is set, and no GGUF build of HuggingFaceTB/SmolLM3-3B is in the "
        f"Hugging Face cache ({tmp_path}/hf-home/hub): fetch it first with "
        "`model-compose pull HuggingFaceTB/SmolLM3-3B:Q8_0` while online, "
        "or point 'model:' at a local .gguf file"
    )
    assert hub.requests == []
