"""text-generation on the embedded model, run as users run it: a compose file,
the workflow runner, ModelComponents and the model pool. Greedy and short."""

from __future__ import annotations

import textwrap
from itertools import permutations

import pytest

from runtime.engine.types import FinishReason
from runtime.errors import InputError
from tests.conftest import example_yaml

# The embedded model, named by its Hub id as compose files do.
MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
PROMPT = "The capital of France is"

# The seed's text-generation workflow on the embedded model
# (examples/quickstart-text), greedy and short, its options read from the input.
TEXT_GENERATION = example_yaml(
    "quickstart-text",
    (
        "max_output_length: 256",
        "max_output_length: 16\n"
        "    streaming: ${input.streaming | false}\n"
        "    return_full_text: ${input.full | true}\n"
        "    num_return_sequences: ${input.n | 1}\n"
        "    params:\n"
        "      do_sample: false",
    ),
)


def text_component(settings: str) -> str:
    """A text-generation component on the embedded model with `settings` (YAML)."""
    head = f"component:\n  type: model\n  task: text-generation\n  model: {MODEL}\n"
    return head + textwrap.indent(textwrap.dedent(settings).strip("\n"), "  ") + "\n"


async def test_the_output_starts_with_the_prompt(harness):
    output = await harness(TEXT_GENERATION).run(None, {"prompt": PROMPT})
    generated = output["generated"]
    assert generated.startswith(PROMPT)
    assert len(generated) > len(PROMPT)


async def test_return_full_text_false_gives_only_the_continuation(harness):
    compose = harness(TEXT_GENERATION)
    full = (await compose.run(None, {"prompt": PROMPT}))["generated"]
    continuation = (await compose.run(None, {"prompt": PROMPT, "full": False}))["generated"]
    assert not continuation.startswith(PROMPT)
    # Greedy: the same continuation both times.
    assert full == PROMPT + continuation


@pytest.mark.parametrize(
    ("binding", "n"),
    [("${input.n | 1}", 2), ("${input.n | 1}", "2"), ("${input.n as number | 1}", 2)],
    ids=["number", "string", "cast-to-float"],
)
async def test_num_return_sequences_2_gives_a_list_of_two_texts(harness, binding, n):
    config = TEXT_GENERATION.replace("${input.n | 1}", binding)
    output = await harness(config).run(None, {"prompt": PROMPT, "n": n})
    generated = output["generated"]
    assert isinstance(generated, list)
    assert len(generated) == 2
    assert all(text.startswith(PROMPT) and len(text) > len(PROMPT) for text in generated)


async def test_streamed_deltas_concatenate_to_the_output(harness, recorder):
    output = await harness(TEXT_GENERATION).run(
        None, {"prompt": PROMPT, "streaming": True}, recorder
    )
    assert recorder.text == output["generated"]
    assert len(recorder.deltas) > 2
    assert {(job_id, streaming) for job_id, _, streaming in recorder.deltas} == {("__job__", True)}
    [(job_id, result)] = recorder.results
    assert job_id == "__job__"
    assert output["generated"] == PROMPT + result.text


async def test_without_streaming_the_listener_still_gets_the_text_marked_not_streaming(
    harness,
    recorder,
):
    output = await harness(TEXT_GENERATION).run(None, {"prompt": PROMPT, "full": False}, recorder)
    assert recorder.text == output["generated"]
    assert {streaming for _, _, streaming in recorder.deltas} == {False}


async def test_max_output_length_bounds_the_tokens_generated(harness, recorder):
    await harness(TEXT_GENERATION).run(None, {"prompt": "Once upon a time"}, recorder)
    [(_, result)] = recorder.results
    assert 0 < result.usage.completion_tokens <= 16
    if result.usage.completion_tokens == 16:
        assert result.finish_reason == FinishReason.LENGTH


async def test_a_stop_sequence_ends_the_text_before_it(harness, recorder):
    compose = harness(
        text_component(
            """
            prompt: ${input.prompt}
            stop_sequences: ["."]
            params:
              do_sample: false
              max_new_tokens: 16
              return_full_text: false
            """
        )
    )
    output = await compose.run(None, {"prompt": PROMPT}, recorder)
    assert "Paris" in output
    assert "." not in output
    assert recorder.results[0][1].finish_reason == FinishReason.STOP


async def test_the_seeds_batch_example_gives_one_text_per_prompt_in_order(harness, recorder):
    compose = harness(
        example_yaml(
            "batch-generation",
            ("  params:\n", "  streaming: true\n  params:\n"),
            ("max_output_length: 64", "max_output_length: 8\n    do_sample: false"),
        )
    )
    prompts = ["Once upon a time", "The weather today", "My favourite food"]
    output = await compose.run(None, {"batch_size": 3, "prompts": prompts}, recorder)
    assert isinstance(output, list)
    assert len(output) == 3
    for prompt, text in zip(prompts, output, strict=True):
        assert text.startswith(prompt)
        assert len(text) > len(prompt)
    assert len(recorder.results) == 3
    # Each repeat's streamed text (prompt, then continuation) stays together.
    assert recorder.text in {"".join(order) for order in permutations(output)}


async def test_the_batch_size_may_be_sent_as_a_string(harness):
    compose = harness(
        example_yaml(
            "batch-generation",
            ("max_output_length: 64", "max_output_length: 4\n    do_sample: false"),
        )
    )
    output = await compose.run(None, {"batch_size": "2", "prompts": ["Red", "Blue"]})
    assert len(output) == 2
    assert output[0].startswith("Red")
    assert output[1].startswith("Blue")


async def test_the_seeds_prompt_template_is_filled_from_the_input(harness):
    compose = harness(
        text_component(
            """
            text: |
              ### Instruction:
              ${input.instruction}

              ### Response:
            params:
              max_output_length: 8
              do_sample: false
            """
        )
    )
    output = await compose.run(None, {"instruction": "Name a colour."})
    assert output.startswith("### Instruction:\nName a colour.\n\n### Response:\n")
    request = compose.engine.requests[0]
    assert request.prompt == "### Instruction:\nName a colour.\n\n### Response:\n"
    assert request.messages is None
    assert request.max_tokens == 8
    assert request.sampling.greedy


async def test_an_empty_prompt_is_an_input_error(harness):
    with pytest.raises(InputError, match=r"^the prompt is empty$"):
        await harness(TEXT_GENERATION).run(None, {"prompt": ""})
