"""llama.cpp's log, routed through Python `logging` (debug level) instead of
stderr, with two listeners: the error lines of a failing load (so the
`ModelLoadError` says why) and `listen_to_llama_log` (quantization progress)."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
from collections.abc import Callable, Iterator

import llama_cpp

from runtime.errors import ModelLoadError

logger = logging.getLogger(__name__)
llama_logger = logging.getLogger("runtime.engine.llama_cpp")

_GGML_LOG_ERROR = 4  # ggml.h (llama-cpp-python's _logger comment is outdated)
_GGML_LOG_CONT = 5


class _LoadErrors(threading.local):
    """llama.cpp error lines logged on this thread while a model loads."""

    lines: list[str] | None = None
    last_level: int = 0


class _LogListener(threading.local):
    """Who else reads llama.cpp's log lines on this thread (see `listen_to_llama_log`)."""

    listener: Callable[[int, str], None] | None = None


_load_errors = _LoadErrors()
_log_listener = _LogListener()


@llama_cpp.llama_log_callback
def _route_llama_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    message = text.decode("utf-8", errors="replace")
    if level != _GGML_LOG_CONT:
        _load_errors.last_level = level
    if _load_errors.lines is not None and _load_errors.last_level == _GGML_LOG_ERROR:
        _load_errors.lines.append(message.strip())
    if _log_listener.listener is not None:
        try:
            _log_listener.listener(_load_errors.last_level, message)
        except Exception:  # an exception must not unwind through llama.cpp's C frames
            logger.exception("a llama.cpp log listener failed")
    if llama_logger.isEnabledFor(logging.DEBUG):
        llama_logger.debug("%s", message.rstrip("\n"))


def route_llama_logs() -> None:
    """Send llama.cpp's log through Python `logging` (debug level), not stderr.

    llama-cpp-python installs its own callback when imported; ours replaces it.
    Idempotent, so calling it before every load is cheap insurance.
    """
    llama_cpp.llama_log_set(_route_llama_log, ctypes.c_void_p(0))


@contextlib.contextmanager
def listen_to_llama_log(listener: Callable[[int, str], None]) -> Iterator[None]:
    """Also call `listener(level, text)` for every llama.cpp log message this
    thread logs meanwhile; e.g. quantization reports progress only there. A
    continuation piece gets the level of the message it continues."""
    route_llama_logs()
    previous, _log_listener.listener = _log_listener.listener, listener
    try:
        yield
    finally:
        _log_listener.listener = previous


@contextlib.contextmanager
def reporting_load_errors(path: str) -> Iterator[None]:
    """Turn a failed llama.cpp load into a `ModelLoadError` that says why (the
    error lines llama.cpp logged meanwhile), not just "failed"."""
    _load_errors.lines = []
    try:
        yield
    except Exception as exc:
        reason = "; ".join(line for line in _load_errors.lines if line) or str(exc)
        raise ModelLoadError(f"llama.cpp cannot load {path}: {reason}") from exc
    finally:
        _load_errors.lines = None
