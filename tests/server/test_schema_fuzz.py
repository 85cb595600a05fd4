"""Schemathesis against our own OpenAPI document, on a real uvicorn server on
loopback with the embedded model: every operation of the model-compose API
(under /api) and of the OpenAI API (/v1), with valid and invalid requests
from every phase (the document's examples, coverage of each field's
boundaries and wrong types, random fuzzing), must answer without a 5xx and
exactly as the document says (status codes, content types, headers, bodies,
each event of an event stream). Every built-in check runs. scripts/fuzz-api
runs the long profile."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from pydantic import ValidationError
from schemathesis.specs.openapi.checks import positive_data_acceptance

from runtime.server.api_models import Task
from runtime.server.openai_tools import INVALID_PARAMETERS, UNKNOWN_FUNCTION
from tests.server.conftest import free_port, make_app
from tests.server.schema_fuzz import (
    COMPOSE_FILE,
    MAX_TOKENS,
    MODEL,
    OperationTally,
    StatusTally,
    clamp_tokens,
    profile,
)

pytestmark = pytest.mark.fuzz

PROFILE = profile()

# The document the server serves, read from an app built on the same compose
# file (building it loads no model): schemathesis parametrizes at collection,
# before any server runs. A test checks the live server serves this document.
DOCUMENT = make_app(COMPOSE_FILE).openapi()
schema = schemathesis.openapi.from_dict(
    DOCUMENT,
    config=schemathesis.Config.from_dict(
        {"generation": {"max-examples": PROFILE.max_examples}, "request-timeout": 60}
    ),
)


class FuzzedServer:
    """A uvicorn server on a free loopback port, with its tallies."""

    def __init__(self) -> None:
        self.tally = StatusTally(make_app(COMPOSE_FILE))
        self.operations = OperationTally()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self.tally,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            timeout_graceful_shutdown=5,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.cases = itertools.count()

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.url + "/api/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the server did not become ready")
            time.sleep(0.05)
        self.tally.statuses.clear()  # the 503s of /health while the model loaded

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)

    def call(self, case: schemathesis.Case) -> schemathesis.Response:
        """Send a case, and count its answer."""
        started = time.monotonic()
        response = case.call(base_url=self.url)
        self.operations.record(
            case.operation.label,
            response.status_code,
            response.headers.get("content-type", [""])[0],
            time.monotonic() - started,
        )
        return response

    def summary(self) -> str:
        tally = self.tally
        seconds = time.monotonic() - self.operations.started
        return (
            f"schema fuzz, {PROFILE.name} profile ({PROFILE.max_examples} examples per "
            f"operation and phase): {len(self.operations.cases)} operations, "
            f"{sum(self.operations.cases.values())} cases, {tally.requests} requests in "
            f"{seconds:.0f} s, {tally.server_errors} answered 5xx; statuses "
            f"{dict(sorted(tally.statuses.items()))}\n{self.operations.table()}"
        )


@pytest.fixture(scope="module")
def fuzzed_server(embedded_model_path: Path) -> Iterator[FuzzedServer]:
    server = FuzzedServer()
    server.start()
    yield server
    # After everything the fuzzer sent, the server still answers a plain request.
    body = {"model": MODEL, "prompt": "Once upon a time", "max_tokens": MAX_TOKENS}
    answer = httpx.post(server.url + "/v1/completions", json=body, timeout=60)
    server.stop()
    print("\n" + server.summary())
    assert answer.status_code == 200, answer.text
    assert server.tally.server_errors == 0


def test_the_server_serves_the_document_being_fuzzed(fuzzed_server: FuzzedServer) -> None:
    served = httpx.get(fuzzed_server.url + "/openapi.json").json()
    assert served == DOCUMENT
    paths = set(served["paths"])
    assert any(path.startswith("/api/") for path in paths)
    assert any(path.startswith("/v1/") for path in paths)


# Refusals of well-formed requests for reasons the document cannot express: a
# prompt longer than the model's context (counted in tokens), on workflow
# runs the input the workflow needs (published per workflow by
# GET /workflows/{workflow_id}/schema, not in the document), on chat
# completions a forced tool call whose function's JSON schema llama.cpp's
# converter cannot read or whose named function is not among the tools, and
# on /v1 a GBNF grammar that does not parse or a JSON schema the grammar
# cannot enforce (any string is a grammar to the document, any object a schema).
# Only these 400s do not count against `positive_data_acceptance`; every
# other check runs.
CONTEXT_TOO_SMALL = "context_length_exceeded"
WORKFLOW_INPUT = "invalid_input"
FORCED_CALL = {INVALID_PARAMETERS, UNKNOWN_FUNCTION}
UNUSABLE_STRUCTURE = {"invalid_grammar", "invalid_json_schema"}


def excluded_checks(
    case: schemathesis.Case, response: schemathesis.Response
) -> list[schemathesis.CheckFunction]:
    if response.status_code != 400:
        return []
    try:
        error = response.json()["error"]
        reasons = {error.get("type"), error.get("code")}
    except (ValueError, KeyError, TypeError, AttributeError):
        return []
    runs_workflow = case.operation.path.endswith("/runs")
    if (
        CONTEXT_TOO_SMALL in reasons
        or (runs_workflow and WORKFLOW_INPUT in reasons)
        or FORCED_CALL & reasons
        or reasons & UNUSABLE_STRUCTURE
    ):
        return [positive_data_acceptance]
    return []


def ask_for_streams(case: schemathesis.Case, number: int) -> None:
    """Make a third of the cases that could stream ask for it, so that the
    streams are checked as often as the plain answers: a workflow run with
    `Accept: text/event-stream` (no parameter the document can declare, so
    no generated case sends it), and a /v1 body that leaves `stream` out
    (random bodies rarely set it), every other time with the usage chunk.
    Both ways a valid request stays valid; schemathesis re-checks anyway."""
    if number % 3 == 0:
        return
    if case.operation.path.endswith("/runs"):
        case.headers = {**(case.headers or {}), "Accept": "text/event-stream"}
    elif isinstance(case.body, dict) and "model" in case.body and "stream" not in case.body:
        case.body["stream"] = True
        if number % 3 == 2 and "stream_options" not in case.body:
            case.body["stream_options"] = {"include_usage": True}


def a_run_answers_its_task(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """The document gives a run's JSON answer as "the task, or with
    output_only the bare output" (any JSON), which validates anything: so
    check here that a run without output_only answers a task."""
    if not case.operation.path.endswith("/runs") or response.status_code != 200:
        return None
    content_type = response.headers.get("content-type", [""])[0]
    if not content_type.startswith("application/json"):
        return None
    if isinstance(case.body, dict) and case.body.get("output_only") is True:
        return None
    try:
        Task.model_validate_json(response.content)
    except ValidationError as error:
        raise AssertionError(f"a run answered something other than its task: {error}") from None
    return True


def check(
    fuzzed_server: FuzzedServer, case: schemathesis.Case, response: schemathesis.Response
) -> None:
    """Every check on an answer (see `excluded_checks` for the one exception)."""
    case.validate_response(
        response,
        additional_checks=[a_run_answers_its_task],
        excluded_checks=excluded_checks(case, response),
        transport_kwargs={"base_url": fuzzed_server.url},
    )


@settings(
    max_examples=PROFILE.max_examples,
    deadline=None,  # a request runs the model: its time is not the property under test
    database=None,
    derandomize=PROFILE.derandomize,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@schema.parametrize()
def test_every_operation_answers_as_documented_and_never_5xx(
    case: schemathesis.Case, fuzzed_server: FuzzedServer
) -> None:
    clamp_tokens(case.body)
    ask_for_streams(case, next(fuzzed_server.cases))
    response = fuzzed_server.call(case)
    check(fuzzed_server, case, response)


def test_chains_of_calls_answer_as_documented(fuzzed_server: FuzzedServer) -> None:
    """Stateful: sequences that follow the document's links with real ids
    (a run, then polling or cancelling its task while it may still run; the
    workflow list, then a workflow's schema or a run of it; the models,
    then one of them), every step checked like the cases above."""

    class Chains(schema.as_state_machine()):  # type: ignore[misc]
        def step(self, input: Any) -> Any:
            clamp_tokens(input.case.body)
            return super().step(input)

        def call(self, case: schemathesis.Case, **kwargs: Any) -> schemathesis.Response:
            return fuzzed_server.call(case)

        def validate_response(
            self,
            response: schemathesis.Response,
            case: schemathesis.Case,
            *args: Any,
            **kwargs: Any,
        ) -> None:
            check(fuzzed_server, case, response)

    Chains.run(
        settings=settings(
            max_examples=PROFILE.max_examples * 2,
            stateful_step_count=6,
            deadline=None,
            database=None,
            derandomize=PROFILE.derandomize,
            suppress_health_check=list(HealthCheck),
        )
    )
