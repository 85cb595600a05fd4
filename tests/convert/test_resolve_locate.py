"""`locate_model`, the entry point the runtime uses: local files and the
embedded model without the network, Hub ids resolved and fetched."""

from __future__ import annotations

from pathlib import Path

import pytest

from convert.locate import locate_model
from convert.metadata import read_gguf_info
from convert.reference import parse_model_reference
from runtime.errors import ModelUnavailableError
from tests.convert.hub_fixtures import SMOLLM3, SMOLLM3_GGUF, serve_smollm3
from tests.convert.hub_server import HubStandIn


def test_a_local_file_resolves_against_the_compose_folder(hub: HubStandIn, tmp_path: Path) -> None:
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    path = locate_model(parse_model_reference("./m.gguf"), tmp_path, say=pytest.fail)
    assert path == tmp_path / "m.gguf"
    with pytest.raises(ModelUnavailableError, match="model file not found"):
        locate_model(parse_model_reference("./gone.gguf"), tmp_path)
    assert hub.requests == []


def test_the_embedded_model_needs_no_network(
    hub: HubStandIn, embedded_model_path: Path, tmp_path: Path
) -> None:
    reference = parse_model_reference("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert locate_model(reference, tmp_path, say=pytest.fail) == embedded_model_path
    assert hub.requests == []


def test_the_seed_model_is_resolved_announced_and_fetched(
    hub: HubStandIn, tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    serve_smollm3(hub)
    # A real (tiny, random-weight) GGUF model under the seed build's file name.
    hub.repos[SMOLLM3_GGUF].files["SmolLM3-Q4_K_M.gguf"] = tiny_model.read_bytes()
    said: list[str] = []
    path = locate_model(parse_model_reference(SMOLLM3), tmp_path, say=said.append)
    assert said == [
        "HuggingFaceTB/SmolLM3-3B is a transformers repository; using its GGUF build "
        "ggml-org/SmolLM3-3B-GGUF (curated), file SmolLM3-Q4_K_M.gguf (Q4_K_M, the default quant)"
    ]
    assert path.name == "SmolLM3-Q4_K_M.gguf"
    assert path.read_bytes() == tiny_model.read_bytes()
    assert read_gguf_info(path).architecture == "llama"
    assert "SmolLM3-Q4_K_M.gguf: 100%" in capsys.readouterr().err


def test_by_default_the_reason_goes_to_stderr(
    hub: HubStandIn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    serve_smollm3(hub)
    locate_model(parse_model_reference("HuggingFaceTB/SmolLM3-3B:Q8_0"), tmp_path, progress=False)
    assert capsys.readouterr().err == (
        "HuggingFaceTB/SmolLM3-3B is a transformers repository; using its GGUF build "
        "ggml-org/SmolLM3-3B-GGUF (curated), file SmolLM3-Q8_0.gguf (Q8_0, as asked)\n"
    )
