"""Properties of the compose-file loader on arbitrary input: random text and
bytes, random YAML built from our schema's keys mixed with junk, and random
edits of the real example files either load or raise `ConfigError` whose
every problem names this file and a line in it. Never another exception,
never a hang (HYPOTHESIS_PROFILE=long runs more examples)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.config import load_config
from runtime.config.schema import (
    ChatCompletionAction,
    ControllerConfig,
    HttpServerAdapter,
    JobConfig,
    LlamaCppOptions,
    ModelComponent,
    ModelSource,
    TextGenerationAction,
    WebUIConfig,
    WorkflowConfig,
)
from runtime.errors import ConfigError
from runtime.workflow.inputs import workflow_inputs, workflow_outputs
from tests.conftest import EXAMPLES, time_limit

pytestmark = pytest.mark.fuzz

SEED_SNIPPETS = Path(__file__).parent.parent / "data" / "seed_snippets"
REAL_FILES = sorted(EXAMPLES.glob("*/model-compose.yml")) + sorted(SEED_SNIPPETS.glob("*.yml"))


@pytest.fixture(scope="module")
def compose_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One file every example overwrites (a function-scoped tmp_path would be
    shared by all of a test's examples anyway)."""
    return tmp_path_factory.mktemp("fuzz") / "model-compose.yml"


def line_count(path: Path) -> int:
    data = path.read_bytes()
    try:
        # YAML's line breaks: an error in the text points at one of these lines.
        return len(re.split("\r\n|[\r\n\x85\u2028\u2029]", data.decode("utf-8")))
    except UnicodeDecodeError:
        return data.count(b"\n") + 1


def loads_or_fails_with_locations(*paths: Path) -> None:
    """The property itself: a config, or a ConfigError whose every problem
    is located on a line of one of `paths`."""
    lines = {str(path): line_count(path) for path in paths}
    try:
        with time_limit(20):
            config = load_config(paths, env={"SET": "1"}).config
    except ConfigError as error:
        assert error.problems
        for problem in error.problems:
            assert problem.location.file in lines, str(problem)
            assert problem.location.line is not None, str(problem)
            assert 1 <= problem.location.line <= lines[problem.location.file], str(problem)
            assert problem.message, str(problem)
        return
    # What `validate`, the Web UI and `GET …/schema` compute from any file that loads.
    with time_limit(20):
        for workflow in config.workflows:
            workflow_inputs(config, workflow)
            workflow_outputs(config, workflow)
        config.workflow(None)


# -- random text -------------------------------------------------------------


@given(st.text())
def test_any_text_loads_or_fails_with_a_location(compose_file: Path, text: str) -> None:
    compose_file.write_text(text, encoding="utf-8")
    loads_or_fails_with_locations(compose_file)


@given(st.binary())
def test_any_bytes_load_or_fail_with_a_location(compose_file: Path, data: bytes) -> None:
    compose_file.write_bytes(data)
    loads_or_fails_with_locations(compose_file)


# -- YAML documents shaped like compose files ----------------------------------

SCHEMA = (
    ControllerConfig,
    HttpServerAdapter,
    WebUIConfig,
    ModelComponent,
    ModelSource,
    LlamaCppOptions,
    ChatCompletionAction,
    TextGenerationAction,
    WorkflowConfig,
    JobConfig,
)
KNOWN_KEYS = sorted(
    {f.name for struct in SCHEMA for f in msgspec.structs.fields(struct)}
    | {"component", "workflow", "job", "action", "adapter", "controller", "components"}
    | {"workflows", "jobs", "temperature", "do_sample", "max_new_tokens", "num_beams"}
)
PLAUSIBLE = [
    "chat-completion",
    "text-generation",
    "./m.gguf",
    "HuggingFaceTB/SmolLM2-135M-Instruct",
    "model",
    "http-server",
    "nicegui",
    "gradio",
    "auto",
    "cpu",
    "30s",
    "1MB",
    "__default__",
    "a",
    "b",
    "${input.prompt}",
    "${input.n as number | 3}",
    "${input.prompts[${index}]}",
    "${jobs.a.output}",
    "${env.SET}",
    "${env.UNSET}",
    '${input.t | "About: ${input.topic}"}',
    "${nope}",
    "${input.x as select}",
]
ids = st.sampled_from(["a", "b", "c", "__default__", "chat"])
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=10)
    | st.sampled_from(PLAUSIBLE)
)
junk = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(KNOWN_KEYS) | st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=10,
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the plausible value, sometimes anything at all."""
    return st.one_of(strategy, strategy, strategy, junk)


def fields(**named: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A mapping with any subset of `named` (plausible or junk values), and
    now and then a misspelt or unknown key."""
    extra = st.dictionaries(st.sampled_from(KNOWN_KEYS) | st.text(max_size=6), junk, max_size=1)
    return st.builds(
        lambda chosen, more: {**chosen, **more},
        st.fixed_dictionaries({}, optional={k: maybe(v) for k, v in named.items()}),
        st.one_of(st.just({}), st.just({}), extra),
    )


action = fields(
    id=ids,
    messages=st.just([{"role": "user", "content": "${input.q}"}]),
    prompt=st.sampled_from(PLAUSIBLE),
    text=st.sampled_from(PLAUSIBLE),
    max_output_length=st.integers(-5, 100) | st.sampled_from(PLAUSIBLE),
    params=st.dictionaries(
        st.sampled_from(["temperature", "do_sample", "num_beams", "temprature"]), scalars
    ),
)
component = fields(
    id=ids,
    type=st.just("model"),
    task=st.sampled_from(["chat-completion", "text-generation", "chat"]),
    model=st.sampled_from(["./m.gguf", "owner/name", "m"])
    | st.fixed_dictionaries({"provider": st.just("local"), "path": st.just("./m.gguf")}),
    action=action,
    actions=st.lists(action, max_size=3) | st.dictionaries(ids, action, max_size=2),
    prompt=st.sampled_from(PLAUSIBLE),
    parallel=st.integers(-1, 8),
    max_queue=st.integers(-1, 8),
    keep_alive=st.sampled_from(["5m", "-1", "-1m", "x", "-", "0"])
    | st.floats()
    | st.integers(-2, 2),
    context_length=st.integers(-1, 4096) | st.just("auto"),
    options=fields(n_ctx=st.integers(0, 4096), n_threads=st.integers(-1, 8)),
)
job = fields(
    id=ids,
    component=ids | component,
    action=ids,
    input=junk,
    output=junk,
    depends_on=st.lists(ids, max_size=3),
    repeat_count=st.integers(-2, 3) | st.sampled_from(PLAUSIBLE),
)
workflow = fields(
    id=ids,
    title=st.text(max_size=8),
    default=st.booleans(),
    job=job,
    jobs=st.lists(job, max_size=4) | st.dictionaries(ids, job, max_size=3),
    input=junk,
    output=junk,
)
controller = fields(
    name=st.text(max_size=5),
    adapter=fields(type=st.just("http-server"), port=st.integers(-1, 70000), base_path=ids),
    adapters=st.lists(fields(port=st.integers(0, 9000)), max_size=2),
    port=st.integers(0, 9000),
    webui=fields(driver=st.sampled_from(["gradio", "nicegui", "x"]), port=st.integers(0, 9)),
    max_concurrent_count=st.integers(-1, 4),
    shutdown_timeout=st.sampled_from(["30s", "1h", "x", "-1", ".5m"]) | st.floats(),
    max_request_size=st.sampled_from(["1MB", "0", "1.5GB", "x"]) | st.integers(-1, 10),
    max_tasks=st.integers(-1, 10),
)
documents = fields(
    controller=controller,
    component=component,
    components=st.lists(component, max_size=3) | st.dictionaries(ids, component, max_size=3),
    workflow=workflow,
    workflows=st.lists(workflow, max_size=3) | st.dictionaries(ids, workflow, max_size=3),
)


binding_strings = st.sampled_from(
    [
        "${input.prompt}",
        "Say: ${input.text | 'hi'}",
        '${input.t | "About: ${input.topic}"}',
        "${input.prompts[${index}]}",
        "${jobs.j0.output}",
        "${input.n as number | 3}",
        "${input.x as select/a,b | a}",
        "plain text",
    ]
)


def dicts_in(value: Any) -> Iterator[dict[Any, Any]]:
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from dicts_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from dicts_in(item)


@st.composite
def near_valid_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A file that would load, with up to two faults: a key removed, a value
    replaced by junk, or a key added. Reaches the checks that random
    documents rarely get past the schema to (references, cycles, params)."""
    count = draw(st.integers(1, 2))
    components = []
    for index in range(count):
        task = draw(st.sampled_from(["chat-completion", "text-generation"]))
        content = draw(binding_strings)
        action: dict[str, Any] = (
            {"messages": [{"role": "user", "content": content}]}
            if task == "chat-completion"
            else {"prompt": content}
        )
        if draw(st.booleans()):
            action["params"] = draw(
                st.dictionaries(
                    st.sampled_from(["temperature", "do_sample", "num_beams", "seed"]),
                    st.integers(0, 2) | st.booleans(),
                    max_size=2,
                )
            )
        model = draw(st.sampled_from(["./m.gguf", "HuggingFaceTB/SmolLM2-135M-Instruct"]))
        components.append(
            {"id": f"c{index}", "type": "model", "task": task, "model": model, "action": action}
        )
    document: dict[str, Any] = {"components": components}
    workflows = []
    for number in range(draw(st.integers(0 if count == 1 else 1, 2))):
        jobs = []
        job_count = draw(st.integers(1, 3))
        for index in range(job_count):
            job: dict[str, Any] = {
                "id": f"j{index}",
                "component": f"c{draw(st.integers(0, count - 1))}",
            }
            # Mostly earlier jobs; now and then any job, which may close a cycle.
            rare = draw(st.integers(0, 5)) == 0
            pool = [f"j{k}" for k in range(job_count if rare else index)]
            depends = draw(st.lists(st.sampled_from(pool), max_size=2)) if pool else []
            if depends:
                job["depends_on"] = depends
            if draw(st.booleans()):
                job["input"] = {"prompt": draw(binding_strings)}
            if draw(st.booleans()):
                job["repeat_count"] = draw(st.integers(0, 3) | st.just("${input.n}"))
            jobs.append(job)
        workflows.append({"id": f"w{number}", "jobs": jobs})
    if workflows:
        document["workflows"] = workflows
    if draw(st.booleans()):
        document["controller"] = {"adapter": {"port": draw(st.integers(1, 65535))}}
    for _ in range(draw(st.integers(0, 2))):
        target = draw(st.sampled_from(list(dicts_in(document))))
        keys = sorted(target, key=str)
        fault = draw(st.sampled_from(["delete", "junk", "add"]))
        if fault == "delete" and keys:
            del target[draw(st.sampled_from(keys))]
        elif fault == "junk" and keys:
            target[draw(st.sampled_from(keys))] = draw(junk)
        else:
            target[draw(st.sampled_from(KNOWN_KEYS) | st.text(max_size=6))] = draw(junk)
    return document


@given(near_valid_documents() | documents, st.booleans())
def test_compose_shaped_yaml_loads_or_fails_with_a_location(
    compose_file: Path, document: dict[str, Any], flow_style: bool
) -> None:
    compose_file.write_text(
        yaml.safe_dump(document, sort_keys=False, default_flow_style=flow_style, width=60)
    )
    loads_or_fails_with_locations(compose_file)


@given(near_valid_documents() | documents, near_valid_documents() | documents)
def test_two_merged_files_load_or_fail_with_a_location(
    compose_file: Path, first: dict[str, Any], second: dict[str, Any]
) -> None:
    override = compose_file.with_name("override.yml")
    compose_file.write_text(yaml.safe_dump(first, sort_keys=False))
    override.write_text(yaml.safe_dump(second, sort_keys=False))
    loads_or_fails_with_locations(compose_file, override)


# -- edits of real files -------------------------------------------------------

PAYLOADS = [
    ": ",
    "- ",
    "\t",
    "  ",
    "${",
    "}",
    "&a ",
    "*a",
    "<<: *a\n",
    "'",
    '"',
    "[",
    "{",
    "\n",
    "# ",
    "!!int ",
    "!!float ",
    "!!timestamp ",
    "2001-13-45",
    "~",
    "---\n",
    "%YAML 1.1\n",
    "\x00",
    "\ufeff",
    "id: a\n",
    "depends_on: [a]\n",
    "task: chat\n",
    "job:\n",
    "component: b\n",
]
Edit = tuple[str, float, float, str]
edits = st.lists(
    st.tuples(
        st.sampled_from(["delete", "insert", "replace", "dup-line", "swap-lines", "indent"]),
        st.floats(0, 1),
        st.floats(0, 1),
        st.sampled_from(PAYLOADS) | st.text(max_size=4),
    ),
    min_size=1,
    max_size=4,
)


def apply(text: str, edit: Edit) -> str:
    kind, where, other, payload = edit
    at = int(where * len(text))
    if kind == "delete":
        return text[:at] + text[at + 1 + int(other * 20) :]
    if kind == "insert":
        return text[:at] + payload + text[at:]
    if kind == "replace":
        return text[:at] + payload + text[at + len(payload) :]
    lines = text.split("\n")
    first, second = int(where * (len(lines) - 1)), int(other * (len(lines) - 1))
    if kind == "dup-line":
        lines.insert(first, lines[first])
    elif kind == "swap-lines":
        lines[first], lines[second] = lines[second], lines[first]
    else:  # indent: shift a line by -2..+2 spaces, or by a tab
        shift = int(other * 5) - 2
        line = lines[first]
        lines[first] = (
            "\t" + line if payload == "\t" else " " * max(shift, 0) + line[max(-shift, 0) :]
        )
    return "\n".join(lines)


def edited(text: str, changes: list[Edit]) -> str:
    for change in changes:
        text = apply(text, change)
    return text


@given(st.sampled_from(REAL_FILES), edits)
def test_edited_example_files_load_or_fail_with_a_location(
    compose_file: Path, original: Path, changes: list[Edit]
) -> None:
    compose_file.write_text(edited(original.read_text(), changes), encoding="utf-8")
    loads_or_fails_with_locations(compose_file)


# -- long runs of one fragment ---------------------------------------------------
# Backtracking regexes and recursive parsers are fast on short input and
# quadratic (or worse) on long runs of the same characters: these catch that.

RUNS = [" ", "${", "${env.A | ", '${env.A | "', "${input.a | ", "- ", "[", "{", "a: ", "\\", "'"]
runs = st.tuples(st.sampled_from(RUNS), st.integers(1_000, 40_000), st.sampled_from(["", "}"]))


@settings(max_examples=max(10, settings.default.max_examples // 5))
@given(st.sampled_from(REAL_FILES), st.floats(0, 1), runs)
def test_a_long_run_of_one_fragment_loads_or_fails_in_time(
    compose_file: Path, original: Path, where: float, run: tuple[str, int, str]
) -> None:
    fragment, count, end = run
    text = original.read_text()
    at = int(where * len(text))
    compose_file.write_text(text[:at] + fragment * count + end + text[at:], encoding="utf-8")
    loads_or_fails_with_locations(compose_file)


@settings(max_examples=max(10, settings.default.max_examples // 5))
@given(runs, st.sampled_from(["prompt", "model", "shutdown_timeout", "max_request_size"]))
def test_a_long_value_loads_or_fails_in_time(
    compose_file: Path, run: tuple[str, int, str], key: str
) -> None:
    fragment, count, end = run
    value = "1" + fragment * count + end
    document: dict[str, Any] = {
        "component": {"task": "text-generation", "model": "./m.gguf", "prompt": "${input.p}"}
    }
    if key in ("prompt", "model"):
        document["component"][key] = value
    else:
        document["controller"] = {key: value}
    compose_file.write_text(yaml.safe_dump(document, width=2**20))
    loads_or_fails_with_locations(compose_file)
