"""Tools and the tool history reach each chat template the way it reads
them: `xml_tools` for SmolLM3's, OpenAI's `tools` and `tool_calls` for
templates that read those (a Qwen2.5-style template), and for a template
with no tool support (SmolLM2's) a description in the system message, calls
written as `<tool_call>` blocks and results as `<tool_response>` user turns.
SmolLM3's own prompts are checked against transformers in
tests/engine/llama/test_smollm3_template.py."""

from __future__ import annotations

from convert.smollm3_standin import chat_template
from runtime.engine.llama.chat_template import ChatTemplate
from runtime.engine.tool_prompt import TOOLS_INTRO, TOOLS_OUTRO, ToolStyle
from runtime.engine.types import ChatMessage, ToolCall

# SmolLM2-135M-Instruct's template (the embedded model's), as its GGUF holds it.
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# What Qwen2.5's and Hermes' templates do with tools, shortened.
QWEN_STYLE_TEMPLATE = (
    "{%- if tools %}[tools]{% for tool in tools %}{{ tool | tojson }}\n{% endfor %}"
    "{% endif %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'assistant' and message.tool_calls %}[assistant]"
    "{%- for call in message.tool_calls %}{{ call.function.name }}"
    "{{ call.function.arguments | tojson }}{% endfor %}"
    '{%- elif message.role == "tool" %}[result]{{ message.content }}'
    "{%- else %}[{{ message.role }}]{{ message.content }}{% endif %}"
    "{%- endfor %}[assistant]"
)
WEATHER = {"name": "get_weather", "parameters": {"type": "object"}}
CALL = ToolCall("get_weather", '{"city": "Paris"}', id="call_1")
HISTORY = [
    ChatMessage("user", "Weather?"),
    ChatMessage("assistant", "", tool_calls=(CALL,)),
    ChatMessage("tool", "sunny", tool_call_id="call_1"),
]


def render(template: str, messages: list[ChatMessage], tools: list[dict] | None) -> str:
    return ChatTemplate(template, bos_token="", eos_token="").render(messages, tools=tools)


def test_each_template_is_read_for_what_it_does_with_tools() -> None:
    assert ToolStyle.of(chat_template()) == ToolStyle("xml_tools", False, True)
    assert ToolStyle.of(QWEN_STYLE_TEMPLATE) == ToolStyle("tools", True, True)
    assert ToolStyle.of(SMOLLM2_TEMPLATE) == ToolStyle(None, False, False)


def test_words_in_the_templates_text_or_comments_are_not_its_variables() -> None:
    template = "{# tools, tool_calls #}Use tools wisely. {{ 'tools and tool_calls' }}"
    assert ToolStyle.of(template) == ToolStyle(None, False, False)


def test_a_template_that_reads_tools_gets_them_and_the_calls_in_openais_shape() -> None:
    prompt = render(QWEN_STYLE_TEMPLATE, HISTORY, [WEATHER])
    assert prompt == (
        '[tools]{"type": "function", "function": {"name": "get_weather", "parameters": '
        '{"type": "object"}}}\n'
        '[user]Weather?[assistant]get_weather{"city": "Paris"}[result]sunny[assistant]'
    )


def test_a_template_without_tool_support_gets_them_described_and_written_out() -> None:
    prompt = render(SMOLLM2_TEMPLATE, HISTORY, [WEATHER])
    listed = (
        '{"type": "function", "function": {"name": "get_weather", "parameters": '
        '{"type": "object"}}}'
    )
    assert prompt == (
        f"<|im_start|>system\n{TOOLS_INTRO}{listed}\n{TOOLS_OUTRO}<|im_end|>\n"
        "<|im_start|>user\nWeather?<|im_end|>\n"
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": '
        '{"city": "Paris"}}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_the_description_goes_after_the_system_message_there_is() -> None:
    system = ChatMessage("system", "Be brief.")
    prompt = render(SMOLLM2_TEMPLATE, [system, HISTORY[0]], [WEATHER])
    assert prompt.startswith(f"<|im_start|>system\nBe brief.\n\n{TOOLS_INTRO}")


def test_without_tools_the_prompt_is_the_plain_one() -> None:
    messages = [ChatMessage("user", "Hi")]
    assert render(SMOLLM2_TEMPLATE, messages, None) == render(SMOLLM2_TEMPLATE, messages, [])
    assert "tools" not in render(SMOLLM2_TEMPLATE, messages, None)


def test_a_call_after_text_follows_the_text() -> None:
    message = ChatMessage("assistant", "Checking.", tool_calls=(CALL,))
    payload = ToolStyle(None, False, False).message(message)
    assert payload["content"] == (
        'Checking.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n'
        "</tool_call>"
    )


def test_a_conversation_that_ends_with_a_call_is_answered_not_continued() -> None:
    prompt = render(SMOLLM2_TEMPLATE, HISTORY[:2], [WEATHER])
    assert prompt.endswith("</tool_call><|im_end|>\n<|im_start|>assistant\n")
