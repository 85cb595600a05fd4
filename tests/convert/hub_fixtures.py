"""The `hub` fixture: a Hub stand-in (tests/convert/hub_server.py) that
huggingface_hub talks to instead of huggingface.co, and an empty Hugging Face
home, so every test starts with no cache, no token and no network.

huggingface_hub reads HF_ENDPOINT, HF_HOME and HF_HUB_OFFLINE once, when it is
imported, into `huggingface_hub.constants`; the fixture sets both the
environment (for subprocesses such as the CLI) and those constants (for this
process).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import constants, file_download

from tests.convert.hub_server import HubStandIn

# A GGUF file's first bytes; enough for tests that never load the model.
GGUF_MAGIC = b"GGUF\x03\x00\x00\x00"


def placeholder_gguf(label: str, size: int = 4096) -> bytes:
    """Bytes that start like a GGUF file, distinct per label."""
    body = (label.encode() * (size // max(len(label), 1) + 1))[: size - len(GGUF_MAGIC)]
    return GGUF_MAGIC + body


def hermetic_hub_home(monkeypatch: pytest.MonkeyPatch, home: Path, endpoint: str) -> None:
    """Point huggingface_hub (in this process and in subprocesses) at
    `endpoint`, with `home` as HF_HOME, online, without a token."""
    home.mkdir(parents=True, exist_ok=True)
    for name in (
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "HF_OIDC_RESOURCE",
        "HF_HUB_DISABLE_PROGRESS_BARS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    template = endpoint + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_PROGRESS_BARS", None)


def go_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """HF_HUB_OFFLINE=1, as if set before huggingface_hub was imported."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


class _NoPause:
    """huggingface_hub waits a second before it resumes a dropped download."""

    @staticmethod
    def sleep(seconds: float) -> None:
        pass


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubStandIn]:
    """The stand-in, with huggingface_hub pointed at it. huggingface_hub keeps
    what it received of a dropped download only in whole chunks (10 MB); 1 KB
    chunks let the tests' small files resume part-way."""
    server = HubStandIn().start()
    hermetic_hub_home(monkeypatch, tmp_path / "hf-home", server.url)
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 1024)
    monkeypatch.setattr(file_download, "time", _NoPause)
    try:
        yield server
    finally:
        server.stop()


def closed_port_url() -> str:
    """An address where nothing listens: connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# The seed's model as the Hub has it: a transformers repository, its GGUF build
# by ggml-org (the curated one) and bartowski's, with small placeholder files.
SMOLLM3 = "HuggingFaceTB/SmolLM3-3B"
SMOLLM3_GGUF = "ggml-org/SmolLM3-3B-GGUF"
SMOLLM3_BARTOWSKI = "bartowski/HuggingFaceTB_SmolLM3-3B-GGUF"


def serve_smollm3(hub: HubStandIn) -> None:
    hub.add_repo(
        SMOLLM3,
        {"config.json": b"{}", "model.safetensors": b"\0" * 64, "README.md": b"# SmolLM3"},
        downloads=500_000,
    )
    hub.add_repo(
        SMOLLM3_GGUF,
        {
            "README.md": b"# SmolLM3-3B GGUF",
            "SmolLM3-Q4_K_M.gguf": placeholder_gguf("Q4_K_M", 1920),
            "SmolLM3-Q8_0.gguf": placeholder_gguf("Q8_0", 3280),
            "SmolLM3-f16.gguf": placeholder_gguf("f16", 6160),
        },
        base_model=SMOLLM3,
        downloads=20_000,
    )
    hub.add_repo(
        SMOLLM3_BARTOWSKI,
        {
            f"HuggingFaceTB_SmolLM3-3B-{quant}.gguf": placeholder_gguf(quant, size)
            for quant, size in (("Q4_K_S", 1820), ("Q4_K_M", 1920), ("Q5_K_M", 2210))
        },
        base_model=SMOLLM3,
        downloads=59_700,
    )
