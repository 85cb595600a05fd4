import pytest

from runtime.engine.llama.chat_template import CHATML_TEMPLATE, ChatTemplate
from runtime.engine.types import ChatMessage
from runtime.errors import InputError


def test_the_template_gets_messages_bos_and_the_generation_prompt() -> None:
    template = ChatTemplate(
        "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{{ eos_token }}"
        "{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}",
        bos_token="<s>",
        eos_token="</s>",
    )
    messages = [ChatMessage("user", "Hi"), ChatMessage("assistant", "Yo"), ChatMessage("user", "?")]
    text = template.render(messages)
    assert text == "<s>[user]Hi</s>[assistant]Yo</s>[user]?</s>[assistant]"


def test_a_final_assistant_message_is_continued_not_answered() -> None:
    template = ChatTemplate(None, bos_token="", eos_token="")
    text = template.render([ChatMessage("user", "Hi"), ChatMessage("assistant", "<think>\nWell, ")])
    assert text == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\nWell, "


def test_an_empty_final_assistant_message_is_answered() -> None:
    template = ChatTemplate(None, bos_token="", eos_token="")
    text = template.render([ChatMessage("user", "Hi"), ChatMessage("assistant", " ")])
    assert text == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_chat_template_kwargs_reach_the_template() -> None:
    template = ChatTemplate(
        "{% if enable_thinking is defined and not enable_thinking %}/no_think{% endif %}"
        "{{ messages[0].content }}",
        bos_token="",
        eos_token="",
    )
    assert template.render([ChatMessage("user", "Hi")]) == "Hi"
    assert template.render([ChatMessage("user", "Hi")], {"enable_thinking": False}) == "/no_thinkHi"


def test_chat_template_kwargs_cannot_replace_the_messages() -> None:
    template = ChatTemplate(None, bos_token="", eos_token="")
    with pytest.raises(InputError, match="cannot set add_generation_prompt, messages"):
        template.render([ChatMessage("user", "Hi")], {"messages": [], "add_generation_prompt": 1})


def test_a_model_without_a_template_gets_chatml() -> None:
    template = ChatTemplate(None, bos_token="", eos_token="")
    assert template.source == CHATML_TEMPLATE
    text = template.render([ChatMessage("user", "Hi")])
    assert text == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_a_template_that_rejects_the_messages_is_an_input_error() -> None:
    template = ChatTemplate(
        "{% if messages[0].role != 'user' %}{{ raise_exception('first must be user') }}{% endif %}",
        bos_token="",
        eos_token="",
    )
    with pytest.raises(InputError, match="first must be user"):
        template.render([ChatMessage("assistant", "Hi")])


def test_multibyte_content_passes_through_unchanged() -> None:
    template = ChatTemplate(None, bos_token="", eos_token="")
    assert "café 日本語 😀" in template.render([ChatMessage("user", "café 日本語 😀")])
