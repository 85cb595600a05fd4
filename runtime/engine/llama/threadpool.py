"""Persistent llama.cpp compute threads for one context.

Without an attached threadpool, ggml builds a throwaway pool of threads for
every `llama_decode` and tears it down after. On an idle machine that costs
little, but when other programs compete for the CPU the new threads start
late and the step waits at its first barrier for the last of them: with the
machine busy, batched decode of the embedded model fell from ~14 to 1–3
tokens/s in some rounds. Pools created once per context keep their threads
and gave steady throughput under the same load.

llama-cpp-python does not bind `llama_attach_threadpool` nor ggml's pool
functions (its llama_cpp.py marks them TODO), so this module declares the
few it needs with ctypes, from the headers the wheel ships (ggml.h,
ggml-cpu.h, llama.h), on the very libraries llama_cpp loaded (`_loaded`).
If the library's struct layout ever differs from the one declared here
(checked against `ggml_threadpool_params_init`'s defaults), the context keeps
ggml's per-decode threads.
"""

from __future__ import annotations

import ctypes
import logging
import sys

import llama_cpp

logger = logging.getLogger(__name__)

_MAX_THREADS = 512  # GGML_MAX_N_THREADS in ggml.h
_DEFAULT_POLL = 50  # what ggml_threadpool_params_init sets (ggml.c)


class _PoolParams(ctypes.Structure):
    """`struct ggml_threadpool_params` (ggml.h)."""

    _fields_ = [
        ("cpumask", ctypes.c_bool * _MAX_THREADS),
        ("n_threads", ctypes.c_int),
        ("prio", ctypes.c_int),  # enum ggml_sched_priority
        ("poll", ctypes.c_uint32),
        ("strict_cpu", ctypes.c_bool),
        ("paused", ctypes.c_bool),
    ]


def _loaded(name: str) -> ctypes.CDLL:
    """The copy of llama.cpp library `name` that llama_cpp itself loaded.

    The wheel ships each library twice (`libggml-base.so` and the
    `libggml-base.so.0` that `libllama.so` links to, separate files): opening
    one by path would map a second copy with its own global state, and the
    pool would come from another ggml than the one computing with it. On
    Linux and macOS a symbol looked up through libllama's handle resolves in
    the libraries it was linked with; Windows finds an already loaded DLL by
    its bare name.
    """
    if sys.platform == "win32":
        return ctypes.CDLL(f"{name}.dll")
    return llama_cpp.llama_cpp._lib


def _bind() -> tuple[ctypes.CDLL, ctypes.CDLL, ctypes.CDLL] | None:
    try:
        base, cpu, llama = _loaded("ggml-base"), _loaded("ggml-cpu"), _loaded("llama")
    except OSError:
        return None
    try:
        base.ggml_threadpool_params_init.argtypes = [ctypes.POINTER(_PoolParams), ctypes.c_int]
        base.ggml_threadpool_params_init.restype = None
        cpu.ggml_threadpool_new.argtypes = [ctypes.POINTER(_PoolParams)]
        cpu.ggml_threadpool_new.restype = ctypes.c_void_p
        cpu.ggml_threadpool_free.argtypes = [ctypes.c_void_p]
        cpu.ggml_threadpool_free.restype = None
        llama.llama_attach_threadpool.argtypes = [ctypes.c_void_p] * 3
        llama.llama_attach_threadpool.restype = None
        llama.llama_detach_threadpool.argtypes = [ctypes.c_void_p]
        llama.llama_detach_threadpool.restype = None
    except AttributeError:  # a build without these symbols
        return None
    return base, cpu, llama


_LIBS = _bind()


def _params(n_threads: int) -> _PoolParams | None:
    """ggml's default pool settings for `n_threads`, or None when the struct
    read back does not look like what ggml.h declares."""
    assert _LIBS is not None
    params = _PoolParams()
    _LIBS[0].ggml_threadpool_params_init(ctypes.byref(params), n_threads)
    looks_right = (
        params.n_threads == n_threads
        and params.poll == _DEFAULT_POLL
        and params.prio == 0
        and not params.strict_cpu
        and not params.paused
        and not any(params.cpumask)
    )
    return params if looks_right else None


class ThreadPools:
    """The two pools of one context: `n_threads` for one-token batches, and
    `n_threads_batch` for the rest. Free them after the context (`close`)."""

    def __init__(self, ctx: int, n_threads: int, n_threads_batch: int) -> None:
        self._ctx = ctx
        self._pools: list[int] = []
        if _LIBS is None:
            logger.debug("llama.cpp's threadpool functions are missing: per-decode threads")
            return
        _, cpu, llama = _LIBS
        wanted = [_params(n_threads), _params(n_threads_batch)]
        if any(params is None for params in wanted):
            logger.warning("ggml's threadpool settings look unfamiliar: per-decode threads")
            return
        for params in wanted:
            pool = cpu.ggml_threadpool_new(ctypes.byref(params))
            if not pool:
                self._free()
                return
            self._pools.append(pool)
        llama.llama_attach_threadpool(ctx, *self._pools)

    @property
    def attached(self) -> bool:
        return bool(self._pools)

    def close(self) -> None:
        """Detach and free the pools; call it before `llama_free(ctx)`."""
        if self._pools and _LIBS is not None:
            _LIBS[2].llama_detach_threadpool(self._ctx)
        self._free()

    def _free(self) -> None:
        if _LIBS is not None:
            for pool in self._pools:
                _LIBS[1].ggml_threadpool_free(pool)
        self._pools = []
