"""Interrupting a running `llama_decode`: llama.cpp's abort callback.

A prompt chunk of 512 tokens takes seconds on a laptop CPU (minutes for a 3B
model on a busy one); without this, a cancelled request or a server told to
stop waits for the chunk to end. llama.cpp asks its abort callback between
the nodes of the compute graph, from a compute thread, thousands of times per
decode. A Python callback would take the GIL each time (stalling the compute
threads behind the event loop), so the callback is native: libc's `strlen`
over a two-byte buffer, which returns 0 ("go on") while the first byte is 0
and 1 ("abort") once it is set. The value is 0 or 1, so reading it as the
callback's `bool` is exact on every C ABI (the result register's low byte).
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
from collections.abc import Callable, Iterable, Iterator

import llama_cpp

from runtime.engine.types import CancelToken

_LIBC = ctypes.CDLL("ucrtbase" if sys.platform == "win32" else None)
# The callback as llama.cpp's function-pointer type: a plain C address, no Python thunk.
_CALLBACK = llama_cpp.ggml_abort_callback(ctypes.cast(_LIBC.strlen, ctypes.c_void_p).value)


class AbortFlag:
    """One context's abort switch. `set` from any thread makes the running
    decode (if any) return code 2 within one graph node, until `clear`."""

    def __init__(self) -> None:
        self._buffer = ctypes.create_string_buffer(2)  # [flag, NUL]

    def install(self, ctx: llama_cpp.llama_context_p) -> None:
        llama_cpp.llama_set_abort_callback(
            ctx, _CALLBACK, ctypes.cast(self._buffer, ctypes.c_void_p)
        )

    def set(self) -> None:
        self._buffer[0] = 1

    def clear(self) -> None:
        self._buffer[0] = 0

    @property
    def is_set(self) -> bool:
        return self._buffer[0] != b"\0"

    @contextlib.contextmanager
    def armed(self, tokens: Iterable[CancelToken], closing: Callable[[], bool]) -> Iterator[None]:
        """Abort the decode run inside this block when one of `tokens` is
        cancelled or `closing()` holds (whoever closes also calls `set`)."""
        tokens = list(tokens)
        self.clear()
        for token in tokens:
            token.add_callback(self.set)
        try:
            # A token cancelled already sets the flag as its callback is added;
            # closing started before `clear` must too.
            if closing():
                self.set()
            yield
        finally:
            for token in tokens:
                token.remove_callback(self.set)
            self.clear()  # a llama.cpp call made outside such a block is never aborted
