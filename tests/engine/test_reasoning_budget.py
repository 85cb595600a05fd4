"""The engine's side of reasoning, on the real embedded model: what a
reasoning block holds never reaches the answer, its tokens are counted
apart, and the budget ends a block the model would not end itself.

A random or small model does not open a block by itself; these tests open it
in the prompt (as a template or a prefill does), which puts the output inside
the block from its first token: the same path as a block the model opened.
"""

from __future__ import annotations

from runtime.engine.batched import BatchedEngine
from runtime.engine.reasoning import CLOSE, OPEN
from runtime.engine.types import ChatMessage, Delta, GenerationRequest, SamplingParams

GREEDY = SamplingParams(greedy=True)
THINKING_PROMPT = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n"


async def run(engine: BatchedEngine, request: GenerationRequest) -> tuple[list[Delta], object]:
    generation = engine.submit(request)
    deltas = [delta async for delta in generation]
    return deltas, await generation.result()


async def test_a_block_past_its_budget_is_closed_and_the_model_answers(
    batched: BatchedEngine,
) -> None:
    request = GenerationRequest(
        prompt=THINKING_PROMPT, sampling=GREEDY, max_tokens=40, reasoning_budget=6
    )
    deltas, result = await run(batched, request)
    close = len(batched.model.encode_piece("\n" + CLOSE + "\n\n"))
    assert result.reasoning
    assert result.usage.reasoning_tokens == 6 + close
    assert result.usage.completion_tokens > result.usage.reasoning_tokens
    assert result.text and CLOSE not in result.text and OPEN not in result.text
    assert "".join(d.text for d in deltas if d.reasoning) == result.reasoning
    assert "".join(d.text for d in deltas if not d.reasoning) == result.text
    # The reasoning came first, then the answer: no interleaving.
    kinds = [d.reasoning for d in deltas]
    assert kinds == sorted(kinds, reverse=True)


async def test_without_a_budget_a_block_left_open_at_the_end_is_all_reasoning(
    batched: BatchedEngine,
) -> None:
    request = GenerationRequest(prompt=THINKING_PROMPT, sampling=GREEDY, max_tokens=12)
    _, result = await run(batched, request)
    assert result.reasoning and result.text == ""
    assert result.usage.reasoning_tokens == result.usage.completion_tokens


async def test_a_zero_budget_closes_the_block_in_the_prompt(batched: BatchedEngine) -> None:
    request = GenerationRequest(
        prompt=THINKING_PROMPT, sampling=GREEDY, max_tokens=8, reasoning_budget=0
    )
    deltas, result = await run(batched, request)
    assert result.usage.reasoning_tokens == 0
    assert not any(d.reasoning for d in deltas)
    assert result.text


async def test_the_forced_close_is_the_same_text_as_a_prompt_that_closed_it(
    batched: BatchedEngine,
) -> None:
    """The answer after a budget forced the close continues exactly as if the
    model had been given that reasoning and that closing tag."""
    forced = GenerationRequest(
        prompt=THINKING_PROMPT, sampling=GREEDY, max_tokens=30, reasoning_budget=5
    )
    _, first = await run(batched, forced)
    thought = (
        await run(batched, GenerationRequest(prompt=THINKING_PROMPT, sampling=GREEDY, max_tokens=5))
    )[1]
    replay = GenerationRequest(
        prompt=THINKING_PROMPT + thought.reasoning + "\n" + CLOSE + "\n\n",
        sampling=GREEDY,
        max_tokens=30 - first.usage.reasoning_tokens,
    )
    _, second = await run(batched, replay)
    assert second.text == first.text


async def test_a_chat_prefill_opens_the_block(batched: BatchedEngine) -> None:
    request = GenerationRequest(
        messages=[ChatMessage("user", "What is 2+2?"), ChatMessage("assistant", OPEN + "\n")],
        sampling=GREEDY,
        max_tokens=20,
        reasoning_budget=4,
    )
    _, result = await run(batched, request)
    assert result.reasoning
    assert result.usage.reasoning_tokens > 4
    assert OPEN not in result.text
