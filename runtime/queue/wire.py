"""The messages front and workers exchange through Redis, as model-compose
writes them (hanyeol/model-compose, src/mindor/core/controller/queue and
adapters/services/queue_subscriber), and the keys they live at.

Shapes (JSON text; `{Q}` is `{name}:{workflow_id}`):
- a run, LPUSHed to the list `{Q}`: {"task_id", "run_id", "input"}; ours add
  "attempt" (2, 3...) when a run goes back to the queue after its worker died;
  model-compose's workers ignore it;
- its result, SET (with the worker's result_ttl) at `{Q}:{run_id}` and
  PUBLISHed on the channel of the same name: {"task_id", "run_id", "status",
  "worker_id"} plus "output" (completed) or "error" (failed); "cancelled" has
  neither; "streaming" (PUBLISH only) names the "stream_key";
- a streamed run's text, XADDed to `{Q}:{run_id}:stream`: entries
  {event: chunk, data: text}, then {event: done} or {event: error, data:
  message}. Ours mark a reasoning block's text with {reasoning: 1} (a
  model-compose front shows it as text) and also SET the final result before
  `done`, so a front can read the whole output, not only its text;
- a cancel, PUBLISHed on `{name}:cancel`: {"task_id"}.

Keys only ours use carry `~` after the name, which no workflow run key has.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

# Result statuses (model-compose's TaskStatus values).
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
STREAMING = "streaming"


def new_id() -> str:
    """A task or run id (model-compose uses ULIDs; nothing reads their format)."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class QueueKeys:
    name: str

    def queue(self, workflow_id: str) -> str:
        return f"{self.name}:{workflow_id}"

    def result(self, workflow_id: str, run_id: str) -> str:
        return f"{self.name}:{workflow_id}:{run_id}"

    def stream(self, workflow_id: str, run_id: str) -> str:
        return f"{self.result(workflow_id, run_id)}:stream"

    def blob_prefix(self, workflow_id: str, run_id: str) -> str:
        return f"{self.result(workflow_id, run_id)}:blob:"

    @property
    def cancel(self) -> str:
        return f"{self.name}:cancel"

    # -- ours ---------------------------------------------------------------

    def cancelled(self, task_id: str) -> str:
        """Set with a TTL when a front cancels: a worker that takes the run
        later (the channel's message is gone by then) still sees it."""
        return f"{self.name}:~cancelled:{task_id}"

    def taken(self, worker_id: str, workflow_id: str) -> str:
        """The runs a worker holds (its processing list), each as it was queued."""
        return f"{self.name}:~taken:{worker_id}:{workflow_id}"

    def lease(self, worker_id: str) -> str:
        """Present while the worker is alive (renewed well within its TTL)."""
        return f"{self.name}:~lease:{worker_id}"

    @property
    def workers(self) -> str:
        """Hash: worker id → the workflows whose runs it may hold (JSON list)."""
        return f"{self.name}:~workers"


@dataclass(frozen=True)
class Dispatch:
    """One run as queued. `raw` is the exact text, which the worker's
    processing list holds and removes by value."""

    task_id: str
    run_id: str
    input: Any
    attempt: int
    raw: bytes


def dispatch_message(task_id: str, run_id: str, input: Any) -> bytes:
    """A run as a front queues it (a re-queued one: `requeued`)."""
    return json.dumps({"task_id": task_id, "run_id": run_id, "input": input}).encode()


class MalformedMessage(ValueError):
    """A queued message that is not a run: answered, if it names one, else dropped."""


def parse_dispatch(raw: bytes) -> Dispatch:
    try:
        message = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MalformedMessage(f"not JSON: {error}") from None
    if not isinstance(message, dict):
        raise MalformedMessage(f"expected a JSON object, got {type(message).__name__}")
    run_id, task_id = message.get("run_id"), message.get("task_id")
    if not isinstance(run_id, str) or not run_id:
        raise MalformedMessage("no run_id")
    attempt = message.get("attempt", 1)
    return Dispatch(
        task_id=task_id if isinstance(task_id, str) else run_id,
        run_id=run_id,
        input=message.get("input") or {},
        attempt=attempt if isinstance(attempt, int) and attempt > 0 else 1,
        raw=raw,
    )


def requeued(dispatch: Dispatch) -> bytes:
    """The message a run goes back to the queue as: the same, one attempt on."""
    message = json.loads(dispatch.raw)
    message["attempt"] = dispatch.attempt + 1
    return json.dumps(message).encode()


def result_message(dispatch: Dispatch, worker_id: str, status: str, **fields: Any) -> bytes:
    message = {
        "task_id": dispatch.task_id,
        "run_id": dispatch.run_id,
        "status": status,
        "worker_id": worker_id,
        **fields,
    }
    return json.dumps(message, default=str).encode()


def parse_result(raw: bytes | str) -> dict[str, Any]:
    """A result message; one that is not a JSON object reads as a failure."""
    try:
        message = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {"status": FAILED, "error": "the worker answered something that is not JSON"}
    if not isinstance(message, dict):
        return {"status": FAILED, "error": "the worker answered something that is not an object"}
    return message


def blob_markers(value: Any, prefix: str, path: str = "input") -> list[tuple[str, str]]:
    """(where, key) of every binary input model-compose sent as a blob: we
    carry text only, so a run with one fails with where it is."""
    if isinstance(value, dict):
        key = value.get("key")
        if isinstance(key, str) and key.startswith(prefix):
            return [(path, key)]
        return [m for k, v in value.items() for m in blob_markers(v, prefix, f"{path}.{k}")]
    if isinstance(value, list):
        return [m for i, v in enumerate(value) for m in blob_markers(v, prefix, f"{path}[{i}]")]
    return []


def chunk_text(fields: dict[bytes, bytes]) -> str:
    """A stream chunk's text. model-compose's front parses every chunk as
    JSON (a text "42" comes back a number); we keep text as text."""
    return fields.get(b"data", b"").decode()
