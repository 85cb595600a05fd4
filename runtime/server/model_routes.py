"""`GET {base_path}/models`: the models the server has loaded (and those
unloaded after their keep_alive) and how busy each one is right now (slots in
use, requests waiting), plus the runs in progress. Read-only; behind the API
key like every route but /health. This is how an operator (and scripts/soak)
sees that a server is idle again."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

from runtime.engine.types import EngineStats
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


class ModelsStatus(BaseModel):
    models: list[LoadedModel]
    running_tasks: int  # workflow runs pending or processing


@router.get("/models")
async def loaded_models(service: ServiceDep) -> ModelsStatus:
    models = []
    for model in service.pool.models():
        info, engine = model.info, model.engine
        if info is None:  # not listed by models(): it never loaded
            continue
        stats = engine.stats() if engine else EngineStats(model.spec.parallel, 0, 0)
        sharing = [
            c.id for c in service.config.components if service.components.pooled(c.id) is model
        ]
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
            )
        )
    return ModelsStatus(models=models, running_tasks=len(service.tasks.running()))
