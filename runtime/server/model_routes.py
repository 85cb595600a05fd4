"""`GET {base_path}/models`: the models the server has loaded (and those
unloaded after their keep_alive), how busy each one is right now (slots in
use, requests waiting), what each holds in memory, the process's resident
memory, plus the runs in progress. Read-only; behind the API key like every
route but /health. This is how an operator (and scripts/soak, and
`model-compose models`) sees that a server is idle again and what it costs."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

from runtime.engine.types import EngineStats, ModelMemory
from runtime.process_memory import process_memory
from runtime.server.deps import ServiceDep

router = APIRouter()


class SamplingDefaults(BaseModel):
    """What a request that leaves a sampler unset gets on this model: what the
    model recommends (its GGUF's `general.sampling.*` keys, or its model
    card), else the global defaults."""

    temperature: float
    top_p: float
    top_k: int
    min_p: float
    repeat_penalty: float


class MemoryStatus(BaseModel):
    """What llama.cpp allocated for the model, in bytes, as it logs it while
    loading (the memory preflight estimates the same parts)."""

    weights: int  # weights in RAM: resident once, mapped from the file or copied
    weights_on_device: int  # weights in GPU memory
    kv_cache: int  # the KV cache allocated: every slot's context
    kv_cache_used: int  # the part of it the slots' sequences hold now
    kv_cache_type: str  # its element type: "f16", "q8_0", ...
    compute: int  # llama.cpp's compute and output buffers

    @classmethod
    def of(cls, memory: ModelMemory, stats: EngineStats) -> MemoryStatus:
        return cls(
            weights=memory.weights,
            weights_on_device=memory.weights_on_device,
            kv_cache=memory.kv_cache,
            kv_cache_used=memory.kv_bytes(stats.kv_cells_used),
            kv_cache_type=memory.kv_cache_type,
            compute=memory.compute,
        )


class ProcessMemoryStatus(BaseModel):
    """The server process's resident memory, in bytes (/proc/self/status).
    File-backed pages (the model file served in place, libraries) are a cache
    the kernel can drop and read again; anonymous ones only swap can free."""

    rss: int  # every resident page
    rss_anon: int  # anonymous: heap, copied weights, KV cache, compute buffers
    rss_file: int  # file-backed
    peak_rss: int  # the highest RSS so far


class LoadedModel(BaseModel):
    name: str
    path: str
    components: list[str]  # the component ids that share this loaded model
    # `unloaded`: after its keep_alive without requests; the next one loads it
    # again (`loading`). What follows is from its last load; busy and waiting are 0.
    state: Literal["loaded", "loading", "unloaded"]
    context_length: int
    slots: int  # requests decoded together
    busy: int  # slots holding an unfinished request
    waiting: int  # requests queued for a slot
    sampling: SamplingDefaults
    memory: MemoryStatus | None = None  # None: the engine cannot say


class ModelsStatus(BaseModel):
    models: list[LoadedModel]
    running_tasks: int  # workflow runs pending or processing
    process_memory: ProcessMemoryStatus | None = None  # None: no /proc (macOS)


@router.get("/models")
async def loaded_models(service: ServiceDep) -> ModelsStatus:
    models = []
    for model in service.pool.models():
        info, engine = model.info, model.engine
        if info is None:  # not listed by models(): it never loaded
            continue
        stats = engine.stats() if engine else EngineStats(model.spec.parallel, 0, 0)
        components = service.config.model_components
        sharing = [c.id for c in components if service.components.pooled(c.id) is model]
        models.append(
            LoadedModel(
                name=info.name,
                path=info.path,
                components=sharing,
                state=model.state.value,
                context_length=info.context_length,
                slots=stats.slots,
                busy=stats.busy,
                waiting=stats.waiting,
                sampling=SamplingDefaults.model_validate(info.sampling, from_attributes=True),
                memory=MemoryStatus.of(info.memory, stats) if info.memory else None,
            )
        )
    resident = process_memory()
    return ModelsStatus(
        models=models,
        running_tasks=len(service.tasks.running()),
        process_memory=(
            ProcessMemoryStatus.model_validate(resident, from_attributes=True) if resident else None
        ),
    )
