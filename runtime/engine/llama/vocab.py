"""The read-only half of a loaded model: text ↔ tokens, special tokens, metadata.

`backend.Backend` inherits it. llama.cpp allows these vocabulary calls from
any thread, so the engine's intake thread tokenizes while the worker decodes.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import llama_cpp

from runtime.errors import InputError, RuntimeFailure


@dataclass(frozen=True)
class SpecialTokens:
    bos_id: int  # -1 when the vocabulary has none
    bos_text: str
    eos_text: str
    adds_bos: bool  # the model expects BOS in front of every prompt


class Vocabulary:
    """Tokenization and metadata of one llama.cpp model (`llama_model *`)."""

    def __init__(self, model: llama_cpp.llama_model_p) -> None:
        self._vocab = llama_cpp.llama_model_get_vocab(model)
        self.metadata: dict[str, str] = read_metadata(model)
        # Token bytes never change: cache them, since every sampled token is
        # detokenized and a ctypes call plus a buffer per token adds up.
        self._bytes: dict[int, bytes] = {}
        bos_id = int(llama_cpp.llama_vocab_bos(self._vocab))
        eos_id = int(llama_cpp.llama_vocab_eos(self._vocab))
        self.special = SpecialTokens(
            bos_id=bos_id,
            bos_text=self._token_text(bos_id),
            eos_text=self._token_text(eos_id),
            adds_bos=bool(llama_cpp.llama_vocab_get_add_bos(self._vocab)),
        )

    @property
    def chat_template(self) -> str | None:
        return self.metadata.get("tokenizer.chat_template")

    @property
    def n_vocab(self) -> int:
        return int(llama_cpp.llama_vocab_n_tokens(self._live()))

    def encode(self, text: str) -> list[int]:
        """Tokenize a prompt; special-token text (e.g. `<|im_start|>`) is parsed.

        BOS is added when the model wants it, unless the text already starts
        with it (chat templates often write `{{ bos_token }}` themselves): a
        prompt never carries two.
        """
        special = self.special
        # llama.cpp's add_special flag would also append EOS for models that
        # declare add_eos (wrong for a generation prompt), so BOS is added here.
        tokens = self._tokenize(utf8(text))
        if special.adds_bos and special.bos_id >= 0 and tokens[:1] != [special.bos_id]:
            tokens.insert(0, special.bos_id)
        while len(tokens) >= 2 and tokens[0] == tokens[1] == special.bos_id:
            tokens.pop(0)
        return tokens

    def encode_piece(self, text: str) -> list[int]:
        """Tokenize text that goes in the middle of a sequence: special-token
        text is parsed, and no BOS is added."""
        return self._tokenize(utf8(text))

    def token_bytes(self, token: int) -> bytes:
        """The raw bytes of one token; control tokens (BOS, EOS…) give b""."""
        cached = self._bytes.get(token)
        if cached is not None:
            return cached
        size = 64
        while True:
            buffer = ctypes.create_string_buffer(size)
            n = llama_cpp.llama_token_to_piece(self._live(), token, buffer, size, 0, False)
            if n >= 0:
                self._bytes[token] = piece = buffer.raw[:n]
                return piece
            size = -n  # the buffer was too small; llama.cpp says how big it must be

    def is_eog(self, token: int) -> bool:
        """End of generation: EOS, EOT, `<|im_end|>` and the like."""
        return bool(llama_cpp.llama_vocab_is_eog(self._live(), token))

    def _live(self) -> llama_cpp.llama_vocab_p:
        """The vocabulary, while its model is loaded: after that, its pointer
        would dangle (and llama.cpp abort the process)."""
        if self._vocab is None:
            raise RuntimeFailure("the model was unloaded")
        return self._vocab

    def _forget_vocab(self) -> None:
        """The model is being freed: refuse vocabulary calls from now on."""
        self._vocab = None

    def _tokenize(self, data: bytes) -> list[int]:
        vocab = self._live()
        size = len(data) + 8  # about a token per byte at most; llama.cpp says if not
        for _ in range(2):
            buffer = (llama_cpp.llama_token * size)()
            n = llama_cpp.llama_tokenize(vocab, data, len(data), buffer, size, False, True)
            if n >= 0:
                return buffer[:n]
            size = -n
        raise RuntimeError(f"llama.cpp could not tokenize {len(data)} bytes")

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return llama_cpp.llama_vocab_get_text(self._vocab, token).decode("utf-8", errors="replace")


def utf8(text: str) -> bytes:
    """Text as the tokenizer takes it. JSON can carry a lone UTF-16 surrogate
    (`"\\ud83d"`), which is not text: the request is at fault, not the server."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as error:
        bad = ascii(text[error.start])
        raise InputError(
            f"the text holds a lone UTF-16 surrogate ({bad}) at character {error.start}, "
            "which is not valid Unicode"
        ) from None


def read_metadata(model: llama_cpp.llama_model_p) -> dict[str, str]:
    """The GGUF key/value metadata as llama.cpp reads it (values as strings)."""
    metadata: dict[str, str] = {}
    size = 1024
    buffer = ctypes.create_string_buffer(size)
    readers = (llama_cpp.llama_model_meta_key_by_index, llama_cpp.llama_model_meta_val_str_by_index)
    for i in range(llama_cpp.llama_model_meta_count(model)):
        pair = []
        for read in readers:
            n = read(model, i, buffer, size)
            if n >= size:  # truncated: llama.cpp returns the full length
                size = n + 1
                buffer = ctypes.create_string_buffer(size)
                n = read(model, i, buffer, size)
            pair.append(buffer.value.decode("utf-8", errors="replace"))
        metadata[pair[0]] = pair[1]
    return metadata
