"""chat-completion on the embedded model through the workflow runner:
the seed's chat workflow, its role-based and multi-turn snippets."""

from __future__ import annotations

import pytest

from runtime.engine.types import ChatMessage
from runtime.errors import InputError
from runtime.tasks.chat_completion import chat_messages
from tests.conftest import example_yaml

QUESTION = "What is the capital of France?"
HELPFUL = "You are a helpful assistant."

# The seed's chat workflow on the embedded model (examples/quickstart), greedy
# and short.
CHAT = example_yaml(
    "quickstart",
    (
        "max_output_length: 512",
        "max_output_length: 24\n    streaming: true\n    params:\n      do_sample: false",
    ),
)
SYSTEM_MESSAGE = """\
      - role: system
        content: ${input.system_prompt | "You are a helpful assistant."}
"""


def greedy(max_output_length: int) -> tuple[str, str]:
    """A change to an example's action (256 tokens, sampled): greedy and shorter."""
    return (
        "max_output_length: 256",
        f"max_output_length: {max_output_length}\n    params:\n      do_sample: false",
    )


async def test_the_answer_to_the_capital_of_france_names_paris(harness):
    compose = harness(CHAT)
    output = await compose.run(None, {"system_prompt": HELPFUL, "user_prompt": QUESTION})
    assert "Paris" in output["generated"]
    [request] = compose.engine.requests
    assert request.messages == [
        ChatMessage("system", HELPFUL),
        ChatMessage("user", QUESTION),
    ]
    assert request.prompt is None
    assert request.max_tokens == 24
    assert request.sampling.greedy


async def test_the_seeds_curl_input_with_dashed_keys_works(harness):
    compose = harness(CHAT)
    output = await compose.run(None, {"system-prompt": HELPFUL, "user-prompt": QUESTION})
    assert "Paris" in output["generated"]
    assert compose.engine.requests[0].messages[1] == ChatMessage("user", QUESTION)


async def test_streamed_deltas_concatenate_to_the_answer(harness, recorder):
    output = await harness(CHAT).run(
        None, {"system_prompt": HELPFUL, "user_prompt": QUESTION}, recorder
    )
    assert recorder.text == output["generated"]
    assert len(recorder.deltas) > 1
    assert all(streaming for _, _, streaming in recorder.deltas)
    [(job_id, result)] = recorder.results
    assert (job_id, result.text) == ("__job__", output["generated"])


# What SmolLM2's own chat template writes when the chat has no system message.
SMOLLM2_DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


async def test_without_a_system_prompt_the_models_own_default_applies(harness):
    compose = harness(CHAT)
    output = await compose.run(None, {"user_prompt": QUESTION})
    assert output["generated"].strip()
    [request] = compose.engine.requests
    # The system message is left out, not sent empty...
    assert request.messages == [ChatMessage("user", QUESTION)]
    # ...so the template puts its own system turn in its place, and the
    # engine feeds the model exactly that prompt.
    engine = compose.engine.inner
    expected = (
        f"<|im_start|>system\n{SMOLLM2_DEFAULT_SYSTEM}<|im_end|>\n"
        f"<|im_start|>user\n{QUESTION}<|im_end|>\n<|im_start|>assistant\n"
    )
    assert engine.prompt_tokens(request) == engine.model.encode(expected)


async def test_a_missing_user_prompt_is_reported_before_the_model_runs(harness):
    compose = harness(CHAT)
    with pytest.raises(InputError, match=r"^missing required input 'user_prompt'$"):
        await compose.run(None, {"system_prompt": HELPFUL})
    assert compose.engine is None  # the model was not even loaded


async def test_the_role_based_workflows_send_their_own_system_prompts(harness):
    compose = harness(example_yaml("role-based", greedy(12)))
    support = await compose.run(None, {"customer_question": "Where is my order?"})
    review = await compose.run("code-reviewer", {"code_to_review": "def add(a, b): return a - b"})
    assert isinstance(support, str) and support.strip()
    assert isinstance(review, str) and review.strip()
    first, second = (request.messages for request in compose.engine.requests)
    assert first == [
        ChatMessage(
            "system", "You are a customer support agent. Be helpful, patient, and professional."
        ),
        ChatMessage("user", "Where is my order?"),
    ]
    assert second[0] == ChatMessage(
        "system",
        "You are a senior software engineer. Review code for bugs, style, and best practices.",
    )
    assert second[1] == ChatMessage("user", "def add(a, b): return a - b")


async def test_the_multi_turn_snippet_sends_the_previous_turn(harness):
    compose = harness(example_yaml("multi-turn", greedy(12)))
    history = [{"content": QUESTION, "response": "The capital of France is Paris."}]
    output = await compose.run(
        None, {"conversation_history": history, "user_prompt": "And of Italy?"}
    )
    assert isinstance(output, str) and output.strip()
    assert compose.engine.requests[0].messages == [
        ChatMessage("system", HELPFUL),
        ChatMessage("user", QUESTION),
        ChatMessage("assistant", "The capital of France is Paris."),
        ChatMessage("user", "And of Italy?"),
    ]


async def test_a_turn_missing_from_the_history_is_left_out_of_the_chat(harness):
    # The multi-turn example without its system message.
    compose = harness(example_yaml("multi-turn", (SYSTEM_MESSAGE, ""), greedy(4)))
    await compose.run(None, {"conversation_history": [], "user_prompt": QUESTION})
    assert compose.engine.requests[0].messages == [ChatMessage("user", QUESTION)]


# -- chat_messages: rendered `messages` → ChatMessages (no model) ---------------------


def test_messages_with_null_content_are_dropped():
    messages = chat_messages(
        [{"role": "system", "content": None}, {"role": "user", "content": "hi"}]
    )
    assert messages == [ChatMessage("user", "hi")]


def test_non_text_content_is_sent_as_json():
    messages = chat_messages([{"role": "user", "content": {"a": [1, "é"]}}])
    assert messages == [ChatMessage("user", '{"a": [1, "é"]}')]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("hello", "messages must be a list of {role, content}, got 'hello'"),
        (["hello"], "messages[0] must be a mapping with 'role' and 'content'"),
        ([{"content": "x"}], "messages[0] must be a mapping with 'role' and 'content'"),
        (
            [{"role": "robot", "content": "x"}],
            "messages[0].role must be one of system, user, assistant, tool, got 'robot'",
        ),
        ([{"role": "system", "content": "x"}], "the chat has no user message to answer"),
        ([{"role": "user", "content": None}], "the chat has no user message to answer"),
    ],
)
def test_bad_messages_are_an_input_error(value, message):
    with pytest.raises(InputError) as error:
        chat_messages(value)
    assert str(error.value) == message
