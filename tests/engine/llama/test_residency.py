"""Weights resident once and KV resident as used (engine.llama.residency):
the buffer sizes llama.cpp logs, the load-mode decision, and real loads whose
memory is read back from /proc."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from runtime.engine.batched import BatchedEngine
from runtime.engine.llama import residency
from runtime.engine.llama.buffers import MIB, Buffers
from runtime.engine.types import GenerationRequest, ModelSpec, SamplingParams
from runtime.errors import ModelLoadError

LOAD_LOG = """\
load_tensors: loading model tensors, this can take a while... (load_mode = mmap)
load_tensors:   CPU_Mapped model buffer size =  1807.00 MiB
load_tensors:   CPU_REPACK model buffer size =  1280.81 MiB
llama_context:        CPU  output buffer size =     1.96 MiB
llama_kv_cache:        CPU KV buffer size =  1152.00 MiB
sched_reserve:        CPU compute buffer size =    85.16 MiB
sched_reserve:        CPU compute buffer size is  85.1600 MiB, matches expectation of 85.1600 MiB
"""


def test_buffer_sizes_come_from_llama_cpps_log() -> None:
    buffers = Buffers()
    for line in LOAD_LOG.splitlines():
        buffers.feed(2, line + "\n")
    assert buffers.weights == {"CPU_Mapped": round(1807 * MIB), "CPU_REPACK": round(1280.81 * MIB)}
    assert buffers.copied_weights == round(1280.81 * MIB)
    # Once the copied tensors' file pages are released, the mapped range counts
    # only for the tensors served in place.
    assert buffers.weights_in_ram == round(1807 * MIB)
    assert buffers.weights_on_device == 0
    assert buffers.kv_bytes == 1152 * MIB
    assert buffers.compute_bytes == round(85.16 * MIB) + round(1.96 * MIB)  # "is ..." not twice


def test_a_gpu_holds_its_weights_apart() -> None:
    buffers = Buffers()
    for line in (
        "CPU_Mapped model buffer size = 300.00 MiB",
        "CUDA0 model buffer size = 1500.00 MiB",
    ):
        buffers.feed(2, line)
    assert buffers.weights_on_device == 1500 * MIB
    assert buffers.weights_in_ram == 300 * MIB
    assert buffers.copied_weights == 1500 * MIB


MOUNTINFO = """\
22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:40 / /mnt/share rw,relatime shared:5 - nfs4 server:/export rw
31 22 0:41 / /home/me/remote rw,nosuid - fuse.sshfs me@host:/ rw
32 22 0:42 / /dev/shm rw - tmpfs tmpfs rw
"""


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/home/me/models/m.gguf", "ext4"),
        ("/mnt/share/m.gguf", "nfs4"),
        ("/mnt/shared/m.gguf", "ext4"),  # a prefix of the mount point's name is not inside it
        ("/home/me/remote/x/m.gguf", "fuse.sshfs"),
        ("/dev/shm/m.gguf", "tmpfs"),
    ],
)
def test_the_filesystem_of_a_file_is_its_longest_mount_point(path: str, kind: str) -> None:
    assert residency.filesystem_type(path, MOUNTINFO) == kind


@pytest.mark.parametrize(
    ("kind", "mmap"), [("ext4", True), ("tmpfs", True), ("nfs4", False), ("fuse.sshfs", False)]
)
def test_a_file_on_a_network_or_fuse_filesystem_is_read_not_mapped(
    monkeypatch: pytest.MonkeyPatch, kind: str, mmap: bool
) -> None:
    monkeypatch.setattr(residency, "filesystem_type", lambda path, mountinfo=None: kind)
    chosen = residency.choose("/m.gguf", None, False)
    assert chosen.mmap is mmap
    assert (kind in chosen.reason) is not mmap
    # The user's setting wins either way.
    assert residency.choose("/m.gguf", not mmap, False).mmap is not mmap
    assert residency.choose("/m.gguf", None, True).name == ("mmap+mlock" if mmap else "read+mlock")


# -- real loads ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def repacked_model_path(smollm3_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny SmolLM3 stand-in in Q4_0, which llama.cpp's CPU backend
    repacks (about 2 s to make)."""
    from convert.quantize import quantize

    target = tmp_path_factory.mktemp("q4_0") / "smollm3-tiny-Q4_0.gguf"
    quantize(smollm3_model_path, target, "Q4_0")
    return target


def mapped_resident_bytes(path: Path) -> int:
    """Bytes of `path`'s mappings resident in this process (/proc/self/smaps)."""
    real, total, inside = os.path.realpath(path), 0, False
    with open("/proc/self/smaps", encoding="utf-8") as smaps:
        for line in smaps:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5:  # a mapping's header line
                inside = fields[-1] == real
            elif inside and fields[0] == "Rss:":
                total += int(fields[1]) * 1024
    return total


def anonymous_rss() -> int:
    with open("/proc/self/status", encoding="utf-8") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no RssAnon in /proc/self/status")


def generate(engine: BatchedEngine, prompt: str, max_tokens: int = 24) -> str:
    async def run() -> str:
        request = GenerationRequest(
            prompt=prompt, sampling=SamplingParams(greedy=True), max_tokens=max_tokens
        )
        return (await engine.submit(request).result()).text

    return asyncio.run(run())


def test_the_file_pages_of_tensors_llama_cpp_repacked_are_released(
    repacked_model_path: Path,
) -> None:
    engine = BatchedEngine.load(ModelSpec(str(repacked_model_path), n_ctx=512, parallel=2))
    try:
        memory = engine.info.memory
        assert memory is not None and memory.load_mode == "mmap"
        size = repacked_model_path.stat().st_size
        # llama.cpp read the whole file (and repacked most of it); its pages are gone.
        assert mapped_resident_bytes(repacked_model_path) < size // 10
        text = generate(engine, "Once upon a time")
        assert size // 2 < memory.weights < size  # the file less its tokenizer
    finally:
        asyncio.run(engine.close())
    # The same answer as a model read into memory (no mmap at all).
    engine = BatchedEngine.load(
        ModelSpec(str(repacked_model_path), n_ctx=512, parallel=2, use_mmap=False)
    )
    try:
        assert engine.info.memory is not None and engine.info.memory.load_mode == "read"
        assert mapped_resident_bytes(repacked_model_path) == 0
        assert generate(engine, "Once upon a time") == text
    finally:
        asyncio.run(engine.close())


def test_the_kv_cache_is_resident_only_as_far_as_tokens_are_written(
    embedded_model_path: Path,
) -> None:
    before = anonymous_rss()
    engine = BatchedEngine.load(ModelSpec(str(embedded_model_path), n_ctx=2048, parallel=4))
    try:
        memory = engine.info.memory
        assert memory is not None and memory.kv_cache == 180 * MIB  # 4 × 2048 cells
        loaded = anonymous_rss()
        # llama.cpp cleared all 180 MiB; what was written since is a few MB.
        assert loaded - before < memory.kv_cache // 4
        text = generate(engine, "The capital of France is", max_tokens=48)
        assert text and anonymous_rss() - loaded < memory.kv_cache // 4
    finally:
        asyncio.run(engine.close())


def test_a_q8_0_kv_cache_takes_about_half_the_memory(embedded_model_path: Path) -> None:
    engine = BatchedEngine.load(
        ModelSpec(str(embedded_model_path), n_ctx=1024, parallel=2, kv_cache_type="q8_0")
    )
    try:
        memory = engine.info.memory
        assert memory is not None and memory.kv_cache_type == "q8_0"
        f16 = 2 * 1024 * 30 * 2 * 3 * 64 * 2  # slots × cells × layers × (K, V) × heads × dim × 2 B
        assert memory.kv_cache == pytest.approx(f16 * 34 / 64, rel=0.01)  # 34 bytes per 32 values
        assert generate(engine, "The capital of France is")
    finally:
        asyncio.run(engine.close())


def test_a_pool_smaller_than_one_context_is_refused(embedded_model_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"kv_cache_size \(512 tokens\) is smaller than"):
        BatchedEngine.load(
            ModelSpec(str(embedded_model_path), n_ctx=1024, parallel=2, kv_cache_size=512)
        )


def test_slots_share_a_pool_and_every_request_is_answered(embedded_model_path: Path) -> None:
    # Four slots of 1024 tokens share 1536 cells: two requests that may fill
    # their context never run at the same time; short ones run beside them.
    engine = BatchedEngine.load(
        ModelSpec(str(embedded_model_path), n_ctx=1024, parallel=4, kv_cache_size=1536)
    )
    try:
        memory = engine.info.memory
        assert memory is not None and memory.kv_cache == 1536 * 30 * 2 * 3 * 64 * 2

        async def run() -> list[str]:
            async def one(number: int, max_tokens: int | None) -> str:
                request = GenerationRequest(
                    prompt=f"Story {number}. Once upon a time",
                    sampling=SamplingParams(greedy=True),
                    max_tokens=max_tokens,
                    stop=["."],  # a sentence each, whatever the reservation
                )
                result = await engine.submit(request).result()
                assert result.finish_reason in ("stop", "length")
                return result.text

            return await asyncio.gather(*(one(n, 24 if n % 2 else None) for n in range(8)))

        answers = asyncio.run(run())
        assert all(answers)
        assert engine.scheduler.placement.cells_reserved <= 1536
    finally:
        asyncio.run(engine.close())
