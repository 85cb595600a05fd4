"""SmolLM3's chat template through our ChatTemplate gives what transformers'
`apply_chat_template` gives: the seed workflow's prompts, thinking on and
off, the `/think` and `/no_think` flags, `/system_override`, history and
tools. The date is pinned (the template writes today's into every prompt).

The goldens are transformers' output (5.25, with its own sandboxed Jinja),
made once in a scratch virtualenv; transformers is not a dependency. To make
them again (`pip install transformers jinja2`, no torch needed):

    import datetime
    from transformers.utils import chat_template_utils

    class Pinned(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2025, 7, 8)

    chat_template_utils.datetime = Pinned  # its strftime_now calls datetime.now()
    template = open("convert/data/smollm3_chat_template.jinja").read()
    rendered, _ = chat_template_utils.render_jinja_template(
        conversations=[messages], chat_template=template, add_generation_prompt=True,
        **kwargs,  # enable_thinking=False, xml_tools=[...]
    )
    print(rendered[0])

Without tools the template never closes the system turn (it writes
`<|im_end|>` only inside its tools section): "...\\n\\n<|im_start|>user".
That is the real template, not a slip here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from convert.smollm3_standin import chat_template
from runtime.engine.llama.chat_template import ChatTemplate
from runtime.engine.types import ChatMessage, ToolCall

PINNED = datetime(2025, 7, 8)
SYSTEM = ChatMessage("system", "You are a helpful AI assistant.")
USER = ChatMessage("user", "Explain quantum computing in simple terms.")

# The template's default instructions when thinking is on and no system message says otherwise.
THINKING_INSTRUCTIONS = (
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face. Your role as an "
    "assistant involves thoroughly exploring questions through a systematic thinking process "
    "before providing the final precise and accurate solutions. This requires engaging in a "
    "comprehensive cycle of analysis, summarizing, exploration, reassessment, reflection, "
    "backtracking, and iteration to develop well-considered thinking process. Please "
    "structure your response into two main sections: Thought and Solution using the specified"
    " format: <think> Thought section </think> Solution section. In the Thought section, "
    "detail your reasoning process in steps. Each step should include detailed considerations"
    " such as analysing questions, summarizing relevant findings, brainstorming new ideas, "
    "verifying the accuracy of the current steps, refining any errors, and revisiting "
    "previous steps. In the Solution section, based on various attempts, explorations, and "
    "reflections from the Thought section, systematically present the final solution that you"
    " deem correct. The Solution section should be logical, accurate, and concise and detail "
    "necessary steps needed to reach the conclusion."
)
PLAIN_INSTRUCTIONS = "You are a helpful AI assistant named SmolLM, trained by Hugging Face."


def system_turn(mode: str, instructions: str) -> str:
    """The system turn the template writes (left open: see the module docstring)."""
    return (
        "<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\n"
        f"Today Date: 08 July 2025\nReasoning Mode: {mode}\n\n"
        f"## Custom Instructions\n\n{instructions}\n\n"
    )


USER_TURN = "<|im_start|>user\nExplain quantum computing in simple terms.<|im_end|>\n"
REPLY = "<|im_start|>assistant\n"
REPLY_WITHOUT_THINKING = "<|im_start|>assistant\n<think>\n\n</think>\n"

# transformers' output, date pinned (see the module docstring).
SEED_WITH_SYSTEM = system_turn("/think", SYSTEM.content) + USER_TURN + REPLY
SEED_WITHOUT_SYSTEM = system_turn("/think", THINKING_INSTRUCTIONS) + USER_TURN + REPLY
# enable_thinking=False (chat_template_kwargs):
GOLDEN_NO_THINK = system_turn("/no_think", PLAIN_INSTRUCTIONS) + USER_TURN + REPLY_WITHOUT_THINKING
GOLDEN_NO_THINK_WITH_SYSTEM = (
    system_turn("/no_think", SYSTEM.content) + USER_TURN + REPLY_WITHOUT_THINKING
)
# enable_thinking=True is the default: the same prompts as without the option.
GOLDEN_THINK = SEED_WITHOUT_SYSTEM
GOLDEN_THINK_WITH_SYSTEM = SEED_WITH_SYSTEM
NO_THINK_FLAG_IN_SYSTEM = GOLDEN_NO_THINK_WITH_SYSTEM  # system "... assistant. /no_think"
# system "/think You are...", enable_thinking=False: the flag wins; the text keeps its space.
THINK_FLAG_BEATS_OPTION = system_turn("/think", " " + SYSTEM.content) + USER_TURN + REPLY
SYSTEM_OVERRIDE = (
    "<|im_start|>system\n Answer in French.<|im_end|>\n" + USER_TURN + REPLY
)  # system "/system_override Answer in French."
HISTORY = [USER, ChatMessage("assistant", "\nQubits are 0 and 1."), ChatMessage("user", "And?")]
HISTORY_THINKING = (
    system_turn("/think", THINKING_INSTRUCTIONS)
    + USER_TURN
    + "<|im_start|>assistant\nQubits are 0 and 1.<|im_end|>\n"
    + "<|im_start|>user\nAnd?<|im_end|>\n"
    + REPLY
)
HISTORY_NOT_THINKING = (  # enable_thinking=False: past replies get an empty thought too
    system_turn("/no_think", PLAIN_INSTRUCTIONS)
    + USER_TURN
    + "<|im_start|>assistant\n<think>\n\n</think>\nQubits are 0 and 1.<|im_end|>\n"
    + "<|im_start|>user\nAnd?<|im_end|>\n"
    + REPLY_WITHOUT_THINKING
)
SEARCH_TOOL = {
    "name": "search",
    "description": "Search the web",
    "parameters": {"query": {"type": "string"}},
}
WITH_XML_TOOLS = (  # xml_tools=[SEARCH_TOOL]: the one case that closes the system turn
    system_turn("/think", THINKING_INSTRUCTIONS)
    + "### Tools\n\nYou may call one or more functions to assist with the user query.\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n\n<tools>\n"
    "{'name': 'search', 'description': 'Search the web', 'parameters': {'query': "
    "{'type': 'string'}}}\n</tools>\n\nFor each function call, return a json object with "
    "function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>\n\n'
    "<|im_end|>\n" + USER_TURN + REPLY
)


@pytest.fixture
def smollm3() -> ChatTemplate:
    return ChatTemplate(
        chat_template(), bos_token="<|begin_of_text|>", eos_token="<|im_end|>", now=lambda: PINNED
    )


def render_with_options(chat: ChatTemplate, messages: list[ChatMessage], **options: Any) -> str:
    """Render with template options (enable_thinking, xml_tools): a request's
    `chat_template_kwargs`."""
    return chat.render(messages, options)


def test_the_seed_prompt_with_a_system_message_is_transformers(smollm3: ChatTemplate) -> None:
    assert smollm3.render([SYSTEM, USER]) == SEED_WITH_SYSTEM


def test_the_seed_prompt_without_a_system_message_is_transformers(smollm3: ChatTemplate) -> None:
    assert smollm3.render([USER]) == SEED_WITHOUT_SYSTEM


def test_no_think_in_the_system_message_turns_thinking_off(smollm3: ChatTemplate) -> None:
    system = ChatMessage("system", "You are a helpful AI assistant. /no_think")
    prompt = smollm3.render([system, USER])
    assert prompt == NO_THINK_FLAG_IN_SYSTEM
    assert "/no_think" not in prompt.split("Reasoning Mode: /no_think")[1]  # the flag is cut


def test_system_override_replaces_the_whole_system_turn(smollm3: ChatTemplate) -> None:
    system = ChatMessage("system", "/system_override Answer in French.")
    assert smollm3.render([system, USER]) == SYSTEM_OVERRIDE


def test_past_replies_lose_leading_newlines(smollm3: ChatTemplate) -> None:
    assert smollm3.render(HISTORY) == HISTORY_THINKING


@pytest.mark.parametrize(
    ("messages", "enable_thinking", "golden"),
    [
        ([USER], False, GOLDEN_NO_THINK),
        ([SYSTEM, USER], False, GOLDEN_NO_THINK_WITH_SYSTEM),
        ([USER], True, GOLDEN_THINK),
        ([SYSTEM, USER], True, GOLDEN_THINK_WITH_SYSTEM),
        (HISTORY, False, HISTORY_NOT_THINKING),
    ],
)
def test_enable_thinking_renders_as_transformers(
    smollm3: ChatTemplate, messages: list[ChatMessage], enable_thinking: bool, golden: str
) -> None:
    assert render_with_options(smollm3, messages, enable_thinking=enable_thinking) == golden


def test_a_think_flag_in_the_system_message_beats_the_option(smollm3: ChatTemplate) -> None:
    system = ChatMessage("system", "/think You are a helpful AI assistant.")
    prompt = render_with_options(smollm3, [system, USER], enable_thinking=False)
    assert prompt == THINK_FLAG_BEATS_OPTION


def test_xml_tools_are_listed_in_the_system_turn(smollm3: ChatTemplate) -> None:
    assert render_with_options(smollm3, [USER], xml_tools=[SEARCH_TOOL]) == WITH_XML_TOOLS


def test_unpinned_the_prompt_carries_todays_date() -> None:
    chat = ChatTemplate(chat_template(), bos_token="<|begin_of_text|>", eos_token="<|im_end|>")
    before = datetime.now().strftime("%d %B %Y")
    prompt = chat.render([USER])
    after = datetime.now().strftime("%d %B %Y")  # the same, unless midnight passed
    assert any(f"\nToday Date: {day}\n" in prompt for day in (before, after))


# A request's `tools` (OpenAI's function objects) and its tool history: what
# our renderer gives SmolLM3's template must come out as transformers renders
# `xml_tools=[WEATHER]` and the history below (made as in the module docstring).
WEATHER = {
    "name": "get_weather",
    "description": "Get the current weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "The city"}},
        "required": ["city"],
    },
}
WEATHER_QUESTION = ChatMessage("user", "What is the weather in Paris?")
WEATHER_CALL = ToolCall("get_weather", '{"city": "Paris"}', id="call_1")
WEATHER_TOOLS_SECTION = (  # each tool written with `(tool | string)`: Python's repr
    "### Tools\n\nYou may call one or more functions to assist with the user query.\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n\n<tools>\n"
    "{'name': 'get_weather', 'description': 'Get the current weather in a city', "
    "'parameters': {'type': 'object', 'properties': {'city': {'type': 'string', "
    "'description': 'The city'}}, 'required': ['city']}}\n</tools>\n\nFor each function "
    "call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>\n\n'
    "<|im_end|>\n"
)
WEATHER_USER_TURN = "<|im_start|>user\nWhat is the weather in Paris?<|im_end|>\n"
GOLDEN_TOOLS = (
    system_turn("/think", THINKING_INSTRUCTIONS) + WEATHER_TOOLS_SECTION + WEATHER_USER_TURN + REPLY
)
GOLDEN_TOOLS_NO_THINK = (
    system_turn("/no_think", PLAIN_INSTRUCTIONS)
    + WEATHER_TOOLS_SECTION
    + WEATHER_USER_TURN
    + REPLY_WITHOUT_THINKING
)
# The call as the model writes it, in the assistant turn; the result as a user turn.
GOLDEN_TOOL_HISTORY = (
    system_turn("/no_think", PLAIN_INSTRUCTIONS)
    + WEATHER_TOOLS_SECTION
    + WEATHER_USER_TURN
    + REPLY_WITHOUT_THINKING
    + '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    + "<|im_end|>\n"
    + '<|im_start|>user\n{"temperature": 22, "sky": "sunny"}<|im_end|>\n'
    + REPLY_WITHOUT_THINKING
)


def test_the_requests_tools_reach_the_template_as_xml_tools(smollm3: ChatTemplate) -> None:
    assert smollm3.render([WEATHER_QUESTION], tools=[WEATHER]) == GOLDEN_TOOLS
    no_think = smollm3.render([WEATHER_QUESTION], {"enable_thinking": False}, tools=[WEATHER])
    assert no_think == GOLDEN_TOOLS_NO_THINK


def test_a_call_and_its_result_render_as_the_model_wrote_and_read_them(
    smollm3: ChatTemplate,
) -> None:
    history = [
        WEATHER_QUESTION,
        ChatMessage("assistant", "", tool_calls=(WEATHER_CALL,)),
        ChatMessage("tool", '{"temperature": 22, "sky": "sunny"}', tool_call_id="call_1"),
    ]
    prompt = smollm3.render(history, {"enable_thinking": False}, tools=[WEATHER])
    assert prompt == GOLDEN_TOOL_HISTORY
