"""`GET {base_path}/models`: the models the server has loaded and how busy
each one is right now (slots in use, requests waiting), plus the runs in
progress. Read-only; behind the API key like every route but /health. This is
how an operator (and scripts/soak) sees that a server is idle again."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

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
    for engine in service.pool.engines():
        stats, info = engine.stats(), engine.info
        sharing = [
            c.id for c in service.config.components if service.components.loaded(c.id) is engine
        ]
        models.append(
            LoadedModel(
                name=info.name,
                path=info.path,
                components=sharing,
                context_length=info.context_length,
                slots=stats.slots,
                busy=stats.busy,
                waiting=stats.waiting,
                sampling=SamplingDefaults.model_validate(info.sampling, from_attributes=True),
            )
        )
    return ModelsStatus(models=models, running_tasks=len(service.tasks.running()))
