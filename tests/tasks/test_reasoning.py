"""Reasoning through workflows on the real embedded model: the output is the
answer, `${reasoning}` is the thinking, the component's and the action's
settings reach the engine, and the budget bounds the block.

The embedded model does not think by itself: these workflows prefill an open
`<think>` block as the assistant's message, so the output starts inside it
(the same engine path as a block the model opens; see
tests/engine/test_reasoning_budget.py).
"""

from __future__ import annotations

import pytest

from runtime.errors import InputError

THINKING_CHAT = """\
workflow:
  output:
    answer: ${output}
    thinking: ${reasoning}
component:
  type: model
  task: chat-completion
  model: HuggingFaceTB/SmolLM2-135M-Instruct
  reasoning_budget: 6
  action:
    messages:
      - role: user
        content: ${input.question}
      - role: assistant
        content: "<think>\\n"
    max_output_length: 40
    streaming: true
    params:
      do_sample: false
"""


async def test_the_output_is_the_answer_and_reasoning_binds_the_thinking(harness, recorder):
    compose = harness(THINKING_CHAT)
    output = await compose.run(None, {"question": "What is 2+2?"}, listener=recorder)
    assert output["thinking"] and output["answer"]
    assert "<think>" not in output["answer"] and "</think>" not in output["answer"]
    assert recorder.reasoning == output["thinking"]
    assert recorder.text == output["answer"]
    [request] = compose.engine.requests
    assert request.reasoning_budget == 6
    [(_, result)] = recorder.results
    assert result.usage.reasoning_tokens > 6  # the budget, then the closing tag


async def test_an_action_setting_wins_over_the_components(harness):
    compose = harness(
        THINKING_CHAT.replace(
            "    max_output_length: 40\n",
            "    max_output_length: 40\n    reasoning_budget: ${input.budget as integer}\n"
            "    thinking: ${input.think}\n    chat_template_kwargs: {style: terse}\n",
        )
    )
    await compose.run(None, {"question": "Hi", "budget": 2, "think": False})
    [request] = compose.engine.requests
    assert request.reasoning_budget == 2
    assert request.chat_template_kwargs == {"style": "terse", "enable_thinking": False}


async def test_an_optional_setting_left_out_keeps_the_components(harness):
    compose = harness(
        THINKING_CHAT.replace(
            "  reasoning_budget: 6\n", "  reasoning_budget: 6\n  thinking: false\n"
        ).replace(
            "    max_output_length: 40\n",
            "    max_output_length: 40\n    thinking: ${input.think | null}\n",
        )
    )
    await compose.run(None, {"question": "Hi"})
    [request] = compose.engine.requests
    assert request.chat_template_kwargs == {"enable_thinking": False}
    assert request.reasoning_budget == 6


async def test_a_negative_budget_from_an_input_is_refused(harness):
    compose = harness(
        THINKING_CHAT.replace(
            "    max_output_length: 40\n",
            "    max_output_length: 40\n    reasoning_budget: ${input.budget}\n",
        )
    )
    with pytest.raises(InputError, match="reasoning_budget must be 0 or more"):
        await compose.run(None, {"question": "Hi", "budget": -3})


async def test_a_model_that_writes_no_block_has_no_reasoning(harness):
    compose = harness(
        THINKING_CHAT.replace('      - role: assistant\n        content: "<think>\\n"\n', "")
    )
    output = await compose.run(None, {"question": "What is the capital of France?"})
    assert output["thinking"] is None
    assert output["answer"]
