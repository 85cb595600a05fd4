"""The engine's only door to llama.cpp: every `llama_cpp` import and ctypes
declaration of the runtime lives in this package (model loading, the
multi-sequence backend, vocabulary, sampler chains, chat templates, abort
flag, threadpools, extra buffer types, log routing). The rest of the engine
(sequences, scheduler, KV placement) is plain Python, tested without a model.
"""

from __future__ import annotations

import llama_cpp


def gpu_offload_supported() -> bool:
    return bool(llama_cpp.llama_supports_gpu_offload())
