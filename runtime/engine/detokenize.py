"""Incremental detokenizer: token ids in, whole UTF-8 characters out.

A token is a byte string, not a character: byte-level BPE vocabularies split
one emoji or CJK character over several tokens. Decoding each token on its own
would emit replacement characters mid-stream, so the bytes go through an
incremental UTF-8 decoder that holds back an incomplete trailing sequence until
the next token completes it.

A generation that ends inside a character (cut by `max_tokens`, the context,
a stop or a cancel) drops that character's partial bytes rather than ending
in U+FFFD: finishing it would take tokens past the budget the client set.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable

TokenBytes = Callable[[int], bytes]


class Detokenizer:
    """Feed token ids one at a time; each call returns the text they completed.

    `token_bytes` maps a token id to its raw bytes (llama.cpp's
    `llama_token_to_piece`); keeping it a plain callable lets the decoding be
    tested without a model.
    """

    def __init__(self, token_bytes: TokenBytes) -> None:
        self._token_bytes = token_bytes
        # errors="replace": bytes that can never become valid UTF-8 turn into
        # U+FFFD as soon as that is certain, instead of raising mid-generation.
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, token: int) -> str:
        """The text completed by `token` ("" while a character is still partial)."""
        return self._decoder.decode(self._token_bytes(token))

    def feed_bytes(self, data: bytes) -> str:
        return self._decoder.decode(data)

    def flush(self) -> str:
        """End of generation: the partial bytes of a character cut at the end
        are dropped (they are not text; U+FFFD would say so to the reader)."""
        self._decoder.reset()
        return ""

    @property
    def pending_bytes(self) -> bytes:
        """Bytes held back because they do not yet form a whole character."""
        return self._decoder.getstate()[0]
