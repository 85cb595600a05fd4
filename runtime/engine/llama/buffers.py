"""What llama.cpp allocated for a model and its context, by buffer, as its
own log reports it while loading ("CPU_REPACK model buffer size = 1280.81
MiB", "CPU KV buffer size = ...", "CPU compute buffer size = ...").

llama.cpp's C API has no call for these sizes (its memory breakdown is C++
only), and its log is where llama-server and Ollama read them too. The log
prints MiB with two decimals: each figure is exact to 10 KB.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from runtime.engine.llama.log import listen_to_llama_log

MIB = 2**20
_SIZE = re.compile(
    r"(?P<buffer>\S+)\s+(?P<kind>model|KV|RS|compute|output)\s+buffer size =\s*"
    r"(?P<mib>[0-9.]+) MiB"
)
# Weight buffers llama.cpp serves straight from the memory-mapped file.
MAPPED_SUFFIX = "_Mapped"


@dataclass
class Buffers:
    """Bytes by buffer name ("CPU", "CPU_Mapped", "CPU_REPACK", "CUDA0"...)."""

    weights: dict[str, int] = field(default_factory=dict)
    kv: dict[str, int] = field(default_factory=dict)  # recurrent state included
    compute: dict[str, int] = field(default_factory=dict)
    output: dict[str, int] = field(default_factory=dict)

    def feed(self, level: int, text: str) -> None:
        """A `listen_to_llama_log` listener."""
        match = _SIZE.search(text)
        if match is None:
            return
        kind = match["kind"]
        table = {"model": self.weights, "KV": self.kv, "RS": self.kv, "compute": self.compute}.get(
            kind, self.output
        )
        name = match["buffer"]
        table[name] = table.get(name, 0) + round(float(match["mib"]) * MIB)

    @property
    def copied_weights(self) -> int:
        """Weight bytes llama.cpp holds outside the mapped file (repacked,
        read into RAM, or uploaded to a device)."""
        return sum(size for name, size in self.weights.items() if not name.endswith(MAPPED_SUFFIX))

    @property
    def weights_on_device(self) -> int:
        """Weight bytes in GPU memory."""
        return sum(size for name, size in self.weights.items() if not in_ram(name))

    @property
    def weights_in_ram(self) -> int:
        """Weight bytes in RAM once the file pages of copied tensors are
        released (`engine.llama.residency`): the copies, plus the tensors
        served in place. llama.cpp reports the mapped file range that holds
        in-place tensors; the host copies came out of that same range."""
        mapped = sum(size for name, size in self.weights.items() if name.endswith(MAPPED_SUFFIX))
        copies = sum(
            size
            for name, size in self.weights.items()
            if in_ram(name) and not name.endswith(MAPPED_SUFFIX)
        )
        return copies + max(mapped - copies, 0)

    @property
    def kv_bytes(self) -> int:
        return sum(self.kv.values())

    @property
    def compute_bytes(self) -> int:
        return sum(self.compute.values()) + sum(self.output.values())


def in_ram(buffer: str) -> bool:
    # llama.cpp names host buffers after the CPU device ("CPU", "CPU_Mapped",
    # "CPU_REPACK", "CUDA_Host" for pinned host memory).
    return buffer.startswith("CPU") or buffer.endswith("_Host")


@contextmanager
def recording(buffers: Buffers) -> Iterator[Buffers]:
    """Record the buffer sizes llama.cpp logs on this thread meanwhile."""
    with listen_to_llama_log(buffers.feed):
        yield buffers
