"""Random-weight llama models that llama.cpp loads and runs.

Tests need *a* model (fast, a few MB, no download) and benchmarks need a model
with a real model's shapes (SmolLM3-3B costs the same compute whatever its
weights are). Both are written here with the `gguf` package: llama.cpp's
metadata keys, its tensor names and shapes, and by default a byte-level GPT-2
style BPE tokenizer with ChatML special tokens and a ChatML chat template, so
prompt and chat requests both work. Another architecture name and tokenizer
can be put around the same tensors (`convert.smollm3_standin` does, for
SmolLM3). The text a synthetic model writes is meaningless.

Tensors are written one at a time (tensor infos first, then each tensor's
data), so only the largest tensor is ever in memory, not the whole model
(0.5 GB for SmolLM3-3B's embeddings, of a 6 GB file).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np
import numpy.typing as npt

ARCH = "llama"
FILE_TYPES = {"F32": gguf.LlamaFileType.ALL_F32, "F16": gguf.LlamaFileType.MOSTLY_F16}

# The ChatML special tokens (SmolLM's ids): ids 0-2, in front of the 256 byte tokens.
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
UNK_ID, BOS_ID, EOS_ID = 0, 1, 2
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# A few English merges, so that tokenization exercises the BPE path. Written in
# GPT-2's byte-to-unicode alphabet ("Ġ" is a space).
_MERGES = ("Ġ t", "h e", "Ġt he", "i n", "e r", "a n", "o n", "Ġ a", "r e", "o r", "e n", "Ġ s")

# Weights are N(0, 0.02), as transformers initialises them: small enough that
# activations and logits stay finite through any number of random layers.
_WEIGHT_STD = 0.02
# Tensors larger than this reuse one block of random values (drawing billions
# of normals would take minutes; repeats cost llama.cpp the same). Odd-sized so
# that repeats never line up with rows.
_RANDOM_BLOCK = (1 << 24) + 17


# Writes a vocabulary and its chat template into a GGUF file's metadata.
AddTokenizer = Callable[[gguf.GGUFWriter], None]


@dataclass(frozen=True)
class LlamaDims:
    """The hyperparameters of a llama-shaped model (all but the last two
    decide its tensors)."""

    n_layers: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    n_vocab: int
    n_ctx_train: int
    # One matrix for the token embeddings and the output head (no `output.weight`).
    tied_embeddings: bool = False
    rope_freq_base: float = 10000.0
    rms_norm_eps: float = 1e-5

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    def tensor_shapes(self) -> Iterator[tuple[str, tuple[int, ...]]]:
        """(name, numpy shape) of every tensor, in llama.cpp's order. numpy shapes
        are (rows, columns): ggml's ne reversed, so a row is one input vector."""
        d, kv = self.n_embd, self.n_head_kv * self.head_dim
        yield "token_embd.weight", (self.n_vocab, d)
        for i in range(self.n_layers):
            yield f"blk.{i}.attn_norm.weight", (d,)
            yield f"blk.{i}.attn_q.weight", (self.n_head * self.head_dim, d)
            yield f"blk.{i}.attn_k.weight", (kv, d)
            yield f"blk.{i}.attn_v.weight", (kv, d)
            yield f"blk.{i}.attn_output.weight", (d, self.n_head * self.head_dim)
            yield f"blk.{i}.ffn_norm.weight", (d,)
            yield f"blk.{i}.ffn_gate.weight", (self.n_ff, d)
            yield f"blk.{i}.ffn_up.weight", (self.n_ff, d)
            yield f"blk.{i}.ffn_down.weight", (d, self.n_ff)
        yield "output_norm.weight", (d,)
        if not self.tied_embeddings:
            yield "output.weight", (self.n_vocab, d)

    @property
    def parameter_count(self) -> int:
        return sum(int(np.prod(shape)) for _, shape in self.tensor_shapes())


# Rows of 256 (n_embd and n_ff) so that every matrix takes real K-quants
# (Q4_K, Q6_K...) instead of llama.cpp's per-tensor fallbacks. About 1M
# parameters: 2 MB in F16, loads in a few milliseconds.
TINY = LlamaDims(
    n_layers=2, n_embd=256, n_ff=256, n_head=4, n_head_kv=2, n_vocab=320, n_ctx_train=256
)


def write_llama_gguf(
    path: str | Path,
    *,
    n_layers: int = TINY.n_layers,
    n_embd: int = TINY.n_embd,
    n_ff: int = TINY.n_ff,
    n_head: int = TINY.n_head,
    n_head_kv: int = TINY.n_head_kv,
    n_vocab: int = TINY.n_vocab,
    n_ctx_train: int = TINY.n_ctx_train,
    tied_embeddings: bool = TINY.tied_embeddings,
    file_type: str = "F16",
    seed: int = 0,
    name: str = "synthetic-llama",
    progress: Callable[[int, int], None] | None = None,
    extra_metadata: Callable[[gguf.GGUFWriter], None] | None = None,
) -> Path:
    """Write a random-weight llama GGUF to `path` and return it.

    `file_type` is "F16" (matrices in F16, norms in F32, as llama.cpp's
    converter writes them) or "F32". `progress(done, total)` is called with
    bytes of tensor data written. `extra_metadata(writer)` may add keys (e.g.
    `writer.add_sampling_temp(0.7)`). The defaults are `TINY`.
    """
    dims = LlamaDims(
        n_layers=n_layers,
        n_embd=n_embd,
        n_ff=n_ff,
        n_head=n_head,
        n_head_kv=n_head_kv,
        n_vocab=n_vocab,
        n_ctx_train=n_ctx_train,
        tied_embeddings=tied_embeddings,
    )
    return write_model(
        path,
        dims,
        file_type=file_type,
        seed=seed,
        name=name,
        progress=progress,
        extra_metadata=extra_metadata,
    )


def write_model(
    path: str | Path,
    dims: LlamaDims,
    *,
    arch: str = ARCH,
    add_tokenizer: AddTokenizer | None = None,
    file_type: str = "F16",
    seed: int = 0,
    name: str = "synthetic-llama",
    progress: Callable[[int, int], None] | None = None,
    extra_metadata: Callable[[gguf.GGUFWriter], None] | None = None,
) -> Path:
    """`write_llama_gguf` for a `LlamaDims`, under the architecture name
    `arch` (its metadata keys are prefixed with it) and with the vocabulary
    `add_tokenizer` writes (default: the byte-level one, `n_vocab` tokens)."""
    _check(dims, file_type)
    if add_tokenizer is None:
        _check_byte_vocabulary(dims.n_vocab)
        add_tokenizer = _byte_tokenizer(dims.n_vocab)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    matrix_dtype = np.float16 if file_type == "F16" else np.float32
    shapes = [
        (tensor_name, shape, np.dtype(matrix_dtype if len(shape) > 1 else np.float32))
        for tensor_name, shape in dims.tensor_shapes()
    ]
    total = sum(int(np.prod(shape)) * dtype.itemsize for _, shape, dtype in shapes)
    writer = gguf.GGUFWriter(path, arch)
    try:
        _add_metadata(writer, dims, FILE_TYPES[file_type], name)
        add_tokenizer(writer)
        if extra_metadata is not None:
            extra_metadata(writer)
        for tensor_name, shape, dtype in shapes:
            writer.add_tensor_info(tensor_name, shape, dtype, int(np.prod(shape)) * dtype.itemsize)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        values = _RandomValues(seed, matrix_dtype)
        done = 0
        for _, shape, _ in shapes:
            # Norm weights are 1, as a freshly initialised model's are.
            tensor = values.take(shape) if len(shape) > 1 else np.ones(shape, np.float32)
            writer.write_tensor_data(tensor)
            done += tensor.nbytes
            if progress is not None:
                progress(done, total)
    finally:
        writer.close()
    return path


def _check(dims: LlamaDims, file_type: str) -> None:
    if file_type not in FILE_TYPES:
        raise ValueError(f"file_type must be one of {', '.join(FILE_TYPES)}, not {file_type!r}")
    if dims.n_embd % dims.n_head or dims.n_head % dims.n_head_kv:
        raise ValueError("n_embd must be a multiple of n_head, and n_head of n_head_kv")


def _check_byte_vocabulary(n_vocab: int) -> None:
    if n_vocab < len(_vocabulary_head()):
        raise ValueError(f"n_vocab must be at least {len(_vocabulary_head())}")


def _add_metadata(writer: gguf.GGUFWriter, dims: LlamaDims, file_type: int, name: str) -> None:
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    writer.add_description("random weights (convert.synthetic): its text is meaningless")
    writer.add_context_length(dims.n_ctx_train)
    writer.add_embedding_length(dims.n_embd)
    writer.add_block_count(dims.n_layers)
    writer.add_feed_forward_length(dims.n_ff)
    writer.add_head_count(dims.n_head)
    writer.add_head_count_kv(dims.n_head_kv)
    writer.add_rope_dimension_count(dims.head_dim)
    writer.add_rope_freq_base(dims.rope_freq_base)
    writer.add_layer_norm_rms_eps(dims.rms_norm_eps)
    writer.add_vocab_size(dims.n_vocab)
    writer.add_file_type(file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _byte_tokenizer(n_vocab: int) -> AddTokenizer:
    return lambda writer: _add_byte_tokenizer(writer, n_vocab)


def _add_byte_tokenizer(writer: gguf.GGUFWriter, n_vocab: int) -> None:
    head = _vocabulary_head()
    # Filler tokens no merge produces, up to the vocabulary size; plain ASCII,
    # which GPT-2's byte alphabet maps to itself, so llama.cpp can print them.
    tokens = head + [f"tok{i}" for i in range(n_vocab - len(head))]
    types = [gguf.TokenType.CONTROL] * len(SPECIAL_TOKENS)
    types += [gguf.TokenType.NORMAL] * (n_vocab - len(SPECIAL_TOKENS))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(list(_MERGES))
    writer.add_bos_token_id(BOS_ID)
    writer.add_eos_token_id(EOS_ID)
    writer.add_unk_token_id(UNK_ID)
    writer.add_pad_token_id(EOS_ID)
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)


def _vocabulary_head() -> list[str]:
    """The special tokens, one token per byte, then each merge's result."""
    return [*SPECIAL_TOKENS, *_byte_alphabet(), *(merge.replace(" ", "") for merge in _MERGES)]


def _byte_alphabet() -> list[str]:
    """GPT-2's byte → printable character mapping (bytes_to_unicode), in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    extra = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(extra)) for b in range(256)]


class _RandomValues:
    def __init__(self, seed: int, dtype: type[np.floating]) -> None:
        self._rng = np.random.default_rng(seed)
        self._dtype = dtype
        self._block: npt.NDArray[np.floating] | None = None

    def take(self, shape: tuple[int, ...]) -> npt.NDArray[np.floating]:
        size = int(np.prod(shape))
        if size <= _RANDOM_BLOCK:
            return self._normal(size).reshape(shape)
        if self._block is None:
            self._block = self._normal(_RANDOM_BLOCK)
        start = int(self._rng.integers(_RANDOM_BLOCK))
        # np.resize repeats the (rolled) block to fill the shape.
        return np.resize(np.roll(self._block, -start), shape)

    def _normal(self, size: int) -> npt.NDArray[np.floating]:
        values = self._rng.standard_normal(size, dtype=np.float32) * np.float32(_WEIGHT_STD)
        return values.astype(self._dtype, copy=False)
