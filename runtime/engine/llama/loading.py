"""Loading a GGUF model into llama.cpp: the checks before llama.cpp sees the
file, the load itself, and what the engine reports about the result."""

from __future__ import annotations

import logging
from pathlib import Path

import llama_cpp

from convert.metadata import GGUFInfo, read_gguf_info
from convert.preflight import check_memory, shape_of
from runtime.engine.llama import extra_buffers, gpu_offload_supported, residency
from runtime.engine.llama.buffers import Buffers, recording
from runtime.engine.llama.log import reporting_load_errors, route_llama_logs
from runtime.engine.sampling_defaults import model_sampling
from runtime.engine.spec import (
    DEFAULT_BATCH,
    DEFAULT_KV_CACHE_TYPE,
    MAX_DEFAULT_CONTEXT,
    default_threads,
    micro_batch,
    resolve_spec,
)
from runtime.engine.types import ModelInfo, ModelMemory, ModelSpec

logger = logging.getLogger(__name__)


def load_model(
    spec: ModelSpec, buffers: Buffers
) -> tuple[llama_cpp.llama_model_p, ModelSpec, GGUFInfo, residency.LoadMode]:
    """Check and load the model `spec` names (blocking; run it in a thread).

    The checks: the GGUF header (llama.cpp's own errors for a file that is not
    GGUF, or cut short, are obscure), the resolved spec, and the memory
    preflight (refuse with numbers and fixes before llama.cpp allocates
    anything, KV cache for every parallel slot included). `buffers` gets
    the sizes llama.cpp allocates.
    """
    header = read_gguf_info(Path(spec.path).expanduser())
    spec = resolve_spec(spec, header)
    shape = shape_of(header)
    if shape is not None:
        check_memory(
            Path(spec.path).name,
            shape,
            spec.n_ctx or MAX_DEFAULT_CONTEXT,
            n_parallel=spec.parallel,
            n_batch=micro_batch(spec.n_batch or DEFAULT_BATCH, spec.parallel),
            kv_pool=spec.kv_cache_size,
            n_gpu_layers=spec.n_gpu_layers or 0,
            kv_cache_type=spec.kv_cache_type or DEFAULT_KV_CACHE_TYPE,
        )
    if spec.device in ("cuda", "metal") and not gpu_offload_supported():
        logger.warning(
            "device %r requested, but this llama.cpp build has no GPU offload; running on CPU",
            spec.device,
        )
    route_llama_logs()
    llama_cpp.llama_backend_init()  # idempotent
    params = llama_cpp.llama_model_default_params()
    params.n_gpu_layers = spec.n_gpu_layers or 0
    params.use_extra_bufts = extra_buffers.decision().allowed
    mode = residency.choose(spec.path, spec.use_mmap, spec.use_mlock)
    params.load_mode = mode.llama_mode
    with reporting_load_errors(spec.path), recording(buffers):
        model = llama_cpp.llama_model_load_from_file(spec.path.encode("utf-8"), params)
        if not model:
            raise RuntimeError("llama_model_load_from_file failed")
    residency.release_copied(spec.path, mode, buffers)
    return model, spec, header, mode


def model_info(
    spec: ModelSpec,
    header: GGUFInfo,
    model: llama_cpp.llama_model_p,
    n_ctx: int,
    n_batch: int,
    memory: ModelMemory | None = None,
) -> ModelInfo:
    """What the engine tells callers about a loaded model. `n_ctx` is the
    context one sequence may fill, whatever the engine allocated for all."""
    return ModelInfo(
        path=spec.path,
        name=header.name or Path(spec.path).stem,
        # llama.cpp may round the context up; our token budgets use the requested size.
        context_length=min(n_ctx, spec.n_ctx or n_ctx),
        trained_context_length=int(llama_cpp.llama_model_n_ctx_train(model)),
        n_gpu_layers=spec.n_gpu_layers or 0,
        n_threads=spec.n_threads or default_threads(),
        n_batch=n_batch,
        quantization=header.quantization,
        sampling=model_sampling(header.metadata),
        memory=memory,
    )


def model_memory(
    buffers: Buffers, spec: ModelSpec, mode: residency.LoadMode, kv_cells: int
) -> ModelMemory:
    return ModelMemory(
        weights=buffers.weights_in_ram,
        weights_on_device=buffers.weights_on_device,
        kv_cache=buffers.kv_bytes,
        compute=buffers.compute_bytes,
        kv_cache_type=spec.kv_cache_type or DEFAULT_KV_CACHE_TYPE,
        load_mode=mode.name,
        load_reason=mode.reason,
        kv_cells=kv_cells,
    )
