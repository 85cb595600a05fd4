"""The model panel: per model component, what is loaded and how, and what
it holds in memory; and the process's resident memory."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from nicegui import ui

from runtime.config.schema import ModelComponent
from runtime.engine.pooled_model import ModelState
from runtime.engine.sampling_defaults import describe
from runtime.memory_view import describe_model_memory, describe_process_memory
from runtime.process_memory import process_memory
from runtime.service import Service, ServiceState

REFRESH_S = 1.0


class LoadState(enum.StrEnum):
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"
    NOT_LOADED = "not loaded"  # `preload: false`, not used yet
    UNLOADED = "unloaded"  # after its keep_alive; the next request loads it again
    STOPPING = "stopping"


@dataclass(frozen=True)
class ModelStatus:
    component_id: str
    task: str
    model: str  # as the compose file names it
    state: LoadState
    name: str | None = None
    file: str | None = None
    quantization: str | None = None
    context_length: int | None = None
    trained_context_length: int | None = None
    n_threads: int | None = None
    n_gpu_layers: int | None = None
    sampling: str | None = None  # the model's sampling defaults, described
    memory: str | None = None  # what it holds in memory, described
    error: str | None = None

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) pairs as the panel shows them."""
        rows = [("model", self.model), ("state", str(self.state))]
        if self.error:
            rows.append(("error", self.error))
        if self.name is not None:
            context = str(self.context_length)
            if self.trained_context_length:
                context += f" (trained on {self.trained_context_length})"
            rows += [
                ("name", self.name),
                ("file", Path(self.file or "").name),
                ("quantization", self.quantization or "unknown"),
                ("context length", context),
                ("threads", str(self.n_threads)),
                ("GPU layers", "all" if self.n_gpu_layers == -1 else str(self.n_gpu_layers)),
                ("sampling defaults", self.sampling or ""),
            ]
            if self.memory is not None:
                rows.append(("memory", self.memory))
        return rows


def model_status(service: Service, component: ModelComponent) -> ModelStatus:
    base = {"component_id": component.id, "task": component.task, "model": component.model_name}
    model = service.components.pooled(component.id)
    if model is not None and model.info is not None:
        # Loaded, or unloaded after keep_alive (or loading again): the details
        # are the last load's.
        info, memory, engine = model.info, model.info.memory, model.engine
        states = {ModelState.LOADED: LoadState.READY, ModelState.LOADING: LoadState.LOADING}
        return ModelStatus(
            **base,
            state=states.get(model.state, LoadState.UNLOADED),
            name=info.name,
            file=info.path,
            quantization=info.quantization,
            context_length=info.context_length,
            trained_context_length=info.trained_context_length,
            n_threads=info.n_threads,
            n_gpu_layers=info.n_gpu_layers,
            sampling=describe(info.sampling),
            memory=describe_model_memory(
                memory.weights,
                memory.weights_on_device,
                memory.kv_bytes(engine.stats().kv_cells_used if engine else 0),
                memory.kv_cache,
                memory.compute,
            )
            if memory is not None
            else None,
        )
    if service.state == ServiceState.FAILED:
        error = str(service.failure) if service.failure else None
        return ModelStatus(**base, state=LoadState.FAILED, error=error)
    if service.state == ServiceState.STOPPING:
        return ModelStatus(**base, state=LoadState.STOPPING)
    if not component.preload:
        return ModelStatus(**base, state=LoadState.NOT_LOADED)
    return ModelStatus(**base, state=LoadState.LOADING)


_STATE_COLORS = {
    LoadState.READY: "positive",
    LoadState.LOADING: "warning",
    LoadState.FAILED: "negative",
    LoadState.NOT_LOADED: "grey",
    LoadState.UNLOADED: "grey",
    LoadState.STOPPING: "grey",
}


class ModelPanel:
    """One card per component, marked `model-<component id>`, refreshed while
    the page is open (a model loads after the page may have been shown)."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self._shown: dict[str, ModelStatus] = {}
        self._cards: dict[str, ui.column] = {}
        with ui.column().classes("w-full gap-2") as self.root:
            ui.label("Models").classes("text-subtitle1 text-weight-medium")
            # The whole process: every model's share, Python and the server.
            self._process = (
                ui.label().classes("text-sm text-grey-7 break-all").mark("process-memory")
            )
            for component in service.config.model_components:
                with ui.card().classes("w-full").props("flat bordered"):
                    with ui.row().classes("w-full items-baseline gap-2"):
                        ui.label(component.title or component.id).classes("text-weight-medium")
                        ui.label(component.task).classes("text-caption text-grey-7")
                    self._cards[component.id] = (
                        ui.column().classes("w-full gap-0").mark(f"model-{component.id}")
                    )
        self.refresh()
        self.timer = ui.timer(REFRESH_S, self.refresh)

    def refresh(self) -> None:
        resident = process_memory()
        if resident is not None:
            text = "process memory: " + describe_process_memory(
                resident.rss, resident.rss_anon, resident.rss_file
            )
            if self._process.text != text:  # an update goes to the browser
                self._process.text = text
        for component in self.service.config.model_components:
            status = model_status(self.service, component)
            if self._shown.get(component.id) == status:
                continue
            self._shown[component.id] = status
            card = self._cards[component.id]
            card.clear()
            with card:
                for label, value in status.rows():
                    with ui.row().classes("w-full gap-2 no-wrap text-sm"):
                        ui.label(label).classes("text-grey-7 w-28 shrink-0")
                        shown = ui.label(value).classes("break-all")
                        if label == "state":
                            shown.classes(f"text-{_STATE_COLORS[status.state]}")
                            shown.mark("model-state")
                        if label == "memory":
                            shown.mark("model-memory")
                        if label == "file" and status.file:
                            shown.tooltip(status.file)
