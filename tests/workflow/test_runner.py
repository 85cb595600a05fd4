"""WorkflowRunner: job order, concurrency, repeats, bindings between jobs,
input checks, workflow selection and failures, on a fake component layer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from runtime.errors import InputError, NotFoundError
from runtime.workflow import RunContext, WorkflowRunner
from tests.conftest import example_yaml

# Long enough never to fire when the runner is right, short enough to fail
# fast (instead of hanging) when it is wrong.
HANDSHAKE_TIMEOUT = 5.0


async def yield_a_few_times(count: int = 5) -> None:
    """Give every other ready task a chance to run (and to start too early)."""
    for _ in range(count):
        await asyncio.sleep(0)


def handshake(mine: asyncio.Event, theirs: asyncio.Event, result: Any = None):
    """A handler that finishes only once the other side has started too."""

    async def handler(input: Any) -> Any:
        mine.set()
        await asyncio.wait_for(theirs.wait(), HANDSHAKE_TIMEOUT)
        return result

    return handler


class Barrier:
    """Lets `parties` callers through once all of them have arrived."""

    def __init__(self, parties: int) -> None:
        self.parties = parties
        self.arrived = 0
        self.all_here = asyncio.Event()

    async def wait(self) -> None:
        self.arrived += 1
        if self.arrived == self.parties:
            self.all_here.set()
        await asyncio.wait_for(self.all_here.wait(), HANDSHAKE_TIMEOUT)


# Job `a` once and job `b` twice: three component calls, all at the same time.
THREE_CALLS = """
workflow:
  jobs:
    - id: a
    - id: b
      repeat_count: 2
"""


class Boom(Exception):
    pass


def fail_once_slow_runs(fake) -> None:
    """Job `slow` runs until cancelled; job `fails` raises Boom once `slow` has started."""
    slow_started = asyncio.Event()

    async def fail(input):
        await asyncio.wait_for(slow_started.wait(), HANDSHAKE_TIMEOUT)
        raise Boom("fails failed")

    async def run_forever(input):
        slow_started.set()
        await asyncio.Event().wait()

    fake.handlers["fails"] = fail
    fake.handlers["slow"] = run_forever


# -- order and concurrency ------------------------------------------------------


async def test_a_job_waits_for_the_jobs_it_depends_on(compose, fake):
    config = compose(
        """
        workflow:
          jobs:
            - id: first
            - id: second
              depends_on: [first]
        """
    )

    async def slow(input):
        await yield_a_few_times()
        return "first done"

    fake.handlers["first"] = slow
    await WorkflowRunner(config, fake).run(None, {})
    assert fake.position("end", "first") < fake.position("start", "second")


async def test_jobs_run_in_dependency_order_whatever_order_the_file_lists_them(compose, fake):
    config = compose(
        """
        workflow:
          jobs:
            - id: last
              depends_on: [middle]
            - id: middle
              depends_on: [first]
            - id: first
        """
    )
    for job_id in ("first", "middle"):

        async def slow(input):
            await yield_a_few_times()

        fake.handlers[job_id] = slow
    await WorkflowRunner(config, fake).run(None, {})
    assert [event for event in fake.log if event[0] == "start"] == [
        ("start", "first"),
        ("start", "middle"),
        ("start", "last"),
    ]
    assert fake.position("end", "first") < fake.position("start", "middle")
    assert fake.position("end", "middle") < fake.position("start", "last")


async def test_independent_jobs_run_at_the_same_time(compose, fake):
    config = compose(
        """
        workflow:
          jobs:
            - id: left
            - id: right
        """
    )
    left_started, right_started = asyncio.Event(), asyncio.Event()
    # Each finishes only after the other has started: run one after the other,
    # they would time out.
    fake.handlers["left"] = handshake(left_started, right_started, "L")
    fake.handlers["right"] = handshake(right_started, left_started, "R")
    output = await WorkflowRunner(config, fake).run(None, {})
    assert output == {"left": "L", "right": "R"}


async def test_a_job_with_two_dependencies_starts_after_both_and_they_overlap(compose, fake):
    config = compose(
        """
        workflow:
          jobs:
            - id: root
            - id: left
              depends_on: [root]
            - id: right
              depends_on: [root]
            - id: join
              depends_on: [left, right]
              input:
                both: ["${jobs.left.output}", "${jobs.right.output}"]
        """
    )
    left_started, right_started = asyncio.Event(), asyncio.Event()
    fake.handlers["left"] = handshake(left_started, right_started, "L")
    fake.handlers["right"] = handshake(right_started, left_started, "R")
    output = await WorkflowRunner(config, fake).run(None, {})
    assert fake.position("end", "root") < fake.position("start", "left")
    assert fake.position("end", "root") < fake.position("start", "right")
    assert fake.position("end", "left") < fake.position("start", "join")
    assert fake.position("end", "right") < fake.position("start", "join")
    assert output == {"job": "join", "input": {"both": ["L", "R"]}}


# -- repeats ----------------------------------------------------------------------


async def test_repeats_run_at_the_same_time(compose, fake):
    config = compose(
        """
        workflow:
          jobs:
            - id: gen
              repeat_count: 3
              input:
                index: ${index}
        """
    )
    barrier = Barrier(3)

    async def wait_for_the_others(input):
        await barrier.wait()
        return input["index"]

    fake.handlers["gen"] = wait_for_the_others
    assert await WorkflowRunner(config, fake).run(None, {}) == [0, 1, 2]


async def test_repeats_give_a_list_in_index_order_even_when_they_finish_out_of_order(compose, fake):
    config = compose(
        """
        workflow:
          jobs:
            - id: gen
              repeat_count: 4
              input:
                index: ${index}
        """
    )
    finished: list[int] = []

    async def later_for_lower_indexes(input):
        await yield_a_few_times(2 * (4 - input["index"]))
        finished.append(input["index"])
        return f"result {input['index']}"

    fake.handlers["gen"] = later_for_lower_indexes
    output = await WorkflowRunner(config, fake).run(None, {})
    assert finished == [3, 2, 1, 0]
    assert output == ["result 0", "result 1", "result 2", "result 3"]


async def test_index_picks_each_prompt_from_a_list_input(compose, fake):
    # The seed's "Batch Processing" snippet.
    config = compose(example_yaml("batch-generation"))

    async def echo_prompt(input):
        return f"generated from {input['prompt']}"

    fake.handlers["generate-multiple"] = echo_prompt
    output = await WorkflowRunner(config, fake).run(
        None, {"batch_size": 3, "prompts": ["alpha", "beta", "gamma"]}
    )
    assert output == ["generated from alpha", "generated from beta", "generated from gamma"]
    assert sorted(call.input["prompt"] for call in fake.calls) == ["alpha", "beta", "gamma"]
    assert {call.component_id for call in fake.calls} == {"text-generator"}


@pytest.mark.parametrize(
    ("binding", "batch_size"),
    [
        ("${input.batch_size}", 3),
        ("${input.batch_size}", "3"),
        ("${input.batch_size}", " 3 "),
        ("${input.batch_size}", 3.0),
        ("${input.batch_size as integer}", "3"),
        ("${input.batch_size as number}", 3),  # renders 3.0
    ],
)
async def test_repeat_count_comes_from_the_input_as_a_number_or_a_string(
    compose, fake, binding, batch_size
):
    config = compose(
        f"""
        workflow:
          jobs:
            - id: gen
              repeat_count: {binding}
              input:
                index: ${{index}}
        """
    )
    output = await WorkflowRunner(config, fake).run(None, {"batch_size": batch_size})
    assert [item["input"]["index"] for item in output] == [0, 1, 2]


async def test_a_repeat_count_written_in_the_file_repeats_that_many_times(compose, fake):
    config = compose(
        """
        workflow:
          jobs:
            - id: gen
              repeat_count: 2
              input: ${index}
        """
    )
    output = await WorkflowRunner(config, fake).run(None, {})
    assert [item["input"] for item in output] == [0, 1]


async def test_a_repeat_count_of_zero_gives_an_empty_list_and_runs_nothing(compose, fake):
    config = compose(
        """
        workflow:
          jobs:
            - id: gen
              repeat_count: ${input.batch_size}
              input:
                prompt: ${input.prompts[${index}]}
        """
    )
    output = await WorkflowRunner(config, fake).run(None, {"batch_size": 0, "prompts": []})
    assert output == []
    assert fake.calls == []


@pytest.mark.parametrize(
    ("batch_size", "shown"),
    [("three", "'three'"), (-1, "-1"), ("-2", "-2"), (2.5, "2.5"), (True, "True"), ([], "[]")],
)
async def test_a_bad_repeat_count_is_an_input_error(compose, fake, batch_size, shown):
    config = compose(
        """
        workflow:
          jobs:
            - id: gen
              repeat_count: ${input.batch_size}
        """
    )
    with pytest.raises(InputError) as error:
        await WorkflowRunner(config, fake).run(None, {"batch_size": batch_size})
    assert str(error.value) == (
        f"job 'gen': repeat_count must be a whole number of 0 or more, got {shown}"
    )
    assert fake.calls == []


async def test_a_job_after_a_repeated_job_reads_its_whole_list(compose, fake):
    config = compose(
        """
        workflow:
          jobs:
            - id: gen
              repeat_count: 2
              input: ${index}
              output: ${output.input}
            - id: summary
              depends_on: [gen]
              input:
                all: ${jobs.gen.output}
                second: ${jobs.gen.output[1]}
        """
    )
    output = await WorkflowRunner(config, fake).run(None, {})
    assert output == {"job": "summary", "input": {"all": [0, 1], "second": 1}}


async def test_a_job_output_mapping_can_use_the_repeat_index(compose, fake):
    config = compose(
        """
        workflow:
          jobs:
            - id: gen
              repeat_count: 2
              output:
                index: ${index}
                job: ${output.job}
        """
    )
    output = await WorkflowRunner(config, fake).run(None, {})
    assert output == [{"index": 0, "job": "gen"}, {"index": 1, "job": "gen"}]


async def test_a_failing_repeat_cancels_the_other_repeats(compose, fake):
    config = compose(
        """
        workflow:
          jobs:
            - id: gen
              repeat_count: 3
              input: ${index}
        """
    )
    barrier = Barrier(3)

    async def second_one_fails(index):
        await barrier.wait()
        if index == 1:
            raise Boom("repeat 1 failed")
        await asyncio.Event().wait()  # never finishes on its own

    fake.handlers["gen"] = second_one_fails
    with pytest.raises(Boom, match="repeat 1 failed"):
        await WorkflowRunner(config, fake).run(None, {})
    others = [call for call in fake.calls if call.input != 1]
    assert [call.cancelled for call in others] == [True, True]


# -- outputs and bindings between jobs ------------------------------------------------


async def test_a_job_output_mapping_reads_the_component_result(compose, fake):
    config = compose(
        """
        workflow:
          jobs:
            - id: gen
              input:
                prompt: hello
              output:
                text: ${output.input.prompt}
                same: ${result.job}
        """
    )
    output = await WorkflowRunner(config, fake).run(None, {})
    assert output == {"text": "hello", "same": "gen"}


async def test_a_later_job_reads_an_earlier_jobs_output_in_its_input(compose, fake):
    config = compose(
        """
        workflow:
          jobs:
            - id: draft
              input:
                prompt: ${input.topic}
              output: ${output.input.prompt}
            - id: polish
              depends_on: [draft]
              input:
                prompt: "Polish this: ${jobs.draft.output}"
        """
    )
    output = await WorkflowRunner(config, fake).run(None, {"topic": "owls"})
    assert fake.inputs("polish") == [{"prompt": "Polish this: owls"}]
    assert output == {"job": "polish", "input": {"prompt": "Polish this: owls"}}


async def test_the_workflow_output_mapping_reads_the_last_jobs_output(compose, fake):
    # The seed workflows: `output: {generated: ${output}}`.
    config = compose(
        """
        workflow:
          job:
            input: ${input}
            output: ${output.input.prompt}
          output:
            generated: ${output}
        """
    )
    output = await WorkflowRunner(config, fake).run(None, {"prompt": "Once upon a time"})
    assert output == {"generated": "Once upon a time"}


async def test_the_workflow_output_mapping_reads_any_jobs_output(compose, fake):
    config = compose(
        """
        workflow:
          jobs:
            - id: a
              output: from a
            - id: b
              depends_on: [a]
              output: from b
          output:
            first: ${jobs.a.output}
            last: ${output}
            asked: ${input.question}
        """
    )
    output = await WorkflowRunner(config, fake).run(None, {"question": "why?"})
    assert output == {"first": "from a", "last": "from b", "asked": "why?"}


async def test_several_jobs_that_nothing_depends_on_give_a_mapping_by_job_id(compose, fake):
    config = compose(
        """
        workflow:
          jobs:
            - id: root
              output: r
            - id: left
              depends_on: [root]
              output: l
            - id: right
              depends_on: [root]
              output: r2
        """
    )
    output = await WorkflowRunner(config, fake).run(None, {})
    assert output == {"left": "l", "right": "r2"}


async def test_a_job_without_input_gets_the_workflow_input_unchanged(compose, fake):
    config = compose(
        """
        workflow:
          jobs:
            - id: only
        """
    )
    given = {"prompt": "hi", "extra": [1, 2]}
    output = await WorkflowRunner(config, fake).run(None, given)
    assert output == {"job": "only", "input": given}


async def test_a_workflow_without_jobs_runs_its_only_component_once(compose, fake):
    config = compose(
        """
        workflow:
          title: Generate Text from Prompt
        """
    )
    output = await WorkflowRunner(config, fake).run(None, {"prompt": "Once"})
    assert output == {"job": "__job__", "input": {"prompt": "Once"}}
    [call] = fake.calls
    assert (call.component_id, call.action_id) == ("model", None)


async def test_a_job_runs_the_action_it_names(compose, fake):
    config = compose(
        """
        workflow:
          jobs:
            - id: gen
              action: short
        components:
          - id: model
            type: model
            task: text-generation
            model: ./unused.gguf
            actions:
              - id: long
                text: ${input.prompt | "x"}
              - id: short
                text: ${input.prompt | "x"}
        """
    )
    await WorkflowRunner(config, fake).run(None, {})
    assert [call.action_id for call in fake.calls] == ["short"]


async def test_the_run_context_reaches_every_job(compose, fake):
    config = compose(THREE_CALLS)
    context = RunContext()
    await WorkflowRunner(config, fake).run(None, {}, context)
    assert len(fake.contexts) == 3
    assert all(seen is context for seen in fake.contexts)


# -- role-based workflows (a workflow-level `input:` mapping) ---------------------------

ROLE_BASED = example_yaml("role-based")


async def test_a_workflow_input_mapping_is_what_the_jobs_receive(compose, fake):
    config = compose(ROLE_BASED)
    runner = WorkflowRunner(config, fake)
    await runner.run("customer-support", {"customer_question": "Where is my order?"})
    await runner.run("code-reviewer", {"code_to_review": "def f(): pass"})
    assert [call.input for call in fake.calls] == [
        {
            "system_prompt": (
                "You are a customer support agent. Be helpful, patient, and professional."
            ),
            "user_prompt": "Where is my order?",
        },
        {
            "system_prompt": (
                "You are a senior software engineer. "
                "Review code for bugs, style, and best practices."
            ),
            "user_prompt": "def f(): pass",
        },
    ]


async def test_a_role_based_workflow_requires_the_inputs_its_mapping_reads(compose, fake):
    config = compose(ROLE_BASED)
    runner = WorkflowRunner(config, fake)
    # The component's own inputs are filled by the mapping, so not asked for.
    with pytest.raises(InputError, match=r"^missing required input 'customer_question'$"):
        await runner.run("customer-support", {"user_prompt": "hi", "system_prompt": "x"})
    assert fake.calls == []


async def test_the_workflow_input_mapping_feeds_job_input_bindings(compose, fake):
    config = compose(
        """
        workflow:
          input:
            topic: ${input.subject | "owls"}
          jobs:
            - id: gen
              input:
                prompt: "Write about ${input.topic}"
        """
    )
    runner = WorkflowRunner(config, fake)
    assert (await runner.run(None, {}))["input"] == {"prompt": "Write about owls"}
    assert (await runner.run(None, {"subject": "cats"}))["input"] == {"prompt": "Write about cats"}


# -- input checks --------------------------------------------------------------------

# The seed's chat workflow.
CHAT = example_yaml("chat-completion")


async def test_a_missing_required_input_is_an_input_error_naming_it(compose, fake):
    config = compose(CHAT)
    with pytest.raises(InputError) as error:
        await WorkflowRunner(config, fake).run(None, {"system_prompt": "Be brief."})
    assert str(error.value) == "missing required input 'user_prompt'"
    assert error.value.name == "user_prompt"
    assert fake.calls == []


async def test_a_null_input_counts_as_missing(compose, fake):
    config = compose(CHAT)
    with pytest.raises(InputError, match=r"^missing required input 'user_prompt'$"):
        await WorkflowRunner(config, fake).run(
            None, {"system_prompt": "Be brief.", "user_prompt": None}
        )


async def test_dashes_and_underscores_in_input_keys_are_the_same(compose, fake):
    # The seed's curl example sends `system-prompt`; its YAML reads `system_prompt`.
    config = compose(CHAT)
    given = {
        "system-prompt": "You are a helpful AI assistant.",
        "user-prompt": "Explain quantum computing in simple terms.",
    }
    output = await WorkflowRunner(config, fake).run(None, given)
    assert output == {"generated": {"job": "__job__", "input": given}}


async def test_a_job_input_binding_finds_a_key_spelled_with_dashes(compose, fake):
    config = compose(
        """
        workflow:
          jobs:
            - id: gen
              input:
                prompt: ${input.user_prompt}
        """
    )
    output = await WorkflowRunner(config, fake).run(None, {"user-prompt": "hello"})
    assert output["input"] == {"prompt": "hello"}


async def test_an_input_with_a_default_may_be_left_out(compose, fake):
    config = compose(
        """
        workflow:
          jobs:
            - id: gen
              input:
                tone: ${input.tone | "friendly"}
                prompt: ${input.prompt}
        """
    )
    output = await WorkflowRunner(config, fake).run(None, {"prompt": "hi"})
    assert output["input"] == {"tone": "friendly", "prompt": "hi"}


async def test_no_input_at_all_is_an_empty_input(compose, fake):
    config = compose(
        """
        workflow:
          jobs:
            - id: gen
              input:
                tone: ${input.tone | "friendly"}
        """
    )
    output = await WorkflowRunner(config, fake).run(None, None)
    assert output["input"] == {"tone": "friendly"}


@pytest.mark.parametrize(("given", "kind"), [(["a"], "list"), ("text", "str"), (3, "int")])
async def test_an_input_that_is_not_a_mapping_is_an_input_error(compose, fake, given, kind):
    config = compose("workflow:\n  title: t\n")
    with pytest.raises(InputError) as error:
        await WorkflowRunner(config, fake).run(None, given)
    assert str(error.value) == f"the input must be a JSON object, got {kind}"


# -- which workflow ------------------------------------------------------------------

TWO_WORKFLOWS = """
workflows:
  - id: first
    job:
      output: first
  - id: second
    {default}
    job:
      output: second
"""


async def test_an_unknown_workflow_is_not_found_and_the_known_ones_are_listed(compose, fake):
    config = compose(TWO_WORKFLOWS.format(default=""))
    with pytest.raises(NotFoundError) as error:
        await WorkflowRunner(config, fake).run("third", {})
    assert str(error.value) == "unknown workflow 'third' (known: 'first', 'second')"


async def test_the_default_workflow_is_the_one_marked_default(compose, fake):
    config = compose(TWO_WORKFLOWS.format(default="default: true"))
    runner = WorkflowRunner(config, fake)
    assert await runner.run("__default__", {}) == "second"
    assert await runner.run(None, {}) == "second"
    assert await runner.run("first", {}) == "first"


async def test_the_default_workflow_is_the_only_one(compose, fake):
    config = compose(
        """
        workflow:
          job:
            output: only
        """
    )
    runner = WorkflowRunner(config, fake)
    assert await runner.run("__default__", {}) == "only"
    assert await runner.run("__workflow__", {}) == "only"


# -- failures and cancellation ----------------------------------------------------------


async def test_a_failing_jobs_error_propagates_unchanged(compose, fake):
    config = compose(
        """
        workflow:
          jobs:
            - id: gen
        """
    )
    raised = Boom("the component broke")

    async def fail(input):
        raise raised

    fake.handlers["gen"] = fail
    with pytest.raises(Boom) as error:
        await WorkflowRunner(config, fake).run(None, {})
    assert error.value is raised


async def test_a_failing_job_cancels_the_jobs_still_running(compose, fake):
    config = compose(
        """
        workflow:
          jobs:
            - id: fails
            - id: slow
        """
    )
    fail_once_slow_runs(fake)
    context = RunContext()
    with pytest.raises(Boom, match="fails failed"):
        await WorkflowRunner(config, fake).run(None, {}, context)
    assert ("cancelled", "slow") in fake.log
    # Generations in flight see the run's cancel token.
    assert context.cancel.is_cancelled


async def test_jobs_that_depend_on_a_failed_job_never_start(compose, fake):
    config = compose(
        """
        workflow:
          jobs:
            - id: fails
            - id: after
              depends_on: [fails]
            - id: after-after
              depends_on: [after]
        """
    )

    async def fail(input):
        await yield_a_few_times()
        raise Boom("no")

    fake.handlers["fails"] = fail
    with pytest.raises(Boom):
        await WorkflowRunner(config, fake).run(None, {})
    assert [call.job_id for call in fake.calls] == ["fails"]


async def test_a_user_error_in_a_job_reaches_the_caller(compose, fake):
    config = compose(
        """
        workflow:
          jobs:
            - id: gen
        """
    )

    async def reject(input):
        raise InputError("the prompt is empty")

    fake.handlers["gen"] = reject
    with pytest.raises(InputError, match="the prompt is empty"):
        await WorkflowRunner(config, fake).run(None, {})


async def test_cancelling_a_run_cancels_its_running_jobs(compose, fake):
    config = compose(THREE_CALLS)
    barrier = Barrier(3)

    async def run_forever(input):
        await barrier.wait()
        await asyncio.Event().wait()

    fake.handlers["a"] = fake.handlers["b"] = run_forever
    context = RunContext()
    run = asyncio.create_task(WorkflowRunner(config, fake).run(None, {}, context))
    await asyncio.wait_for(barrier.all_here.wait(), HANDSHAKE_TIMEOUT)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert [call.cancelled for call in fake.calls] == [True, True, True]
    assert context.cancel.is_cancelled


async def test_a_failing_job_cancels_a_running_job_that_others_wait_for(compose, fake):
    config = compose(
        """
        workflow:
          jobs:
            - id: fails
            - id: slow
            - id: after-slow
              depends_on: [slow]
        """
    )
    fail_once_slow_runs(fake)
    with pytest.raises(Boom, match="fails failed"):
        await WorkflowRunner(config, fake).run(None, {})
    assert ("cancelled", "slow") in fake.log
    assert [call.job_id for call in fake.calls] == ["fails", "slow"]
