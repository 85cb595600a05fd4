"""Render chat messages into a prompt with the model's own chat template.

The template comes from the GGUF metadata (`tokenizer.chat_template`, the same
Jinja template transformers uses) and is rendered the way transformers renders
it, through llama-cpp-python's `Jinja2ChatFormatter` (sandboxed Jinja, `tojson`,
`strftime_now`, `raise_exception`), with the request's `chat_template_kwargs`
as extra variables. A conversation that ends with an assistant message is
continued, not answered (a prefill, as transformers' `continue_final_message`
renders it). Tools and the tool history go in as the template expects them
(`engine.tool_prompt`). BOS handling and stopping live elsewhere:
`Vocabulary.encode` never adds a second BOS, and generation stops at the
model's end-of-generation tokens.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import jinja2
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from runtime.engine.tool_prompt import ToolStyle
from runtime.engine.types import ChatMessage, GenerationRequest
from runtime.errors import InputError, ModelLoadError

logger = logging.getLogger(__name__)

# For models whose GGUF has no template (e.g. tiny test models): ChatML, the
# format most small instruction-tuned models use.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Variables the renderer sets itself: a request's chat_template_kwargs may not.
RESERVED_VARIABLES = frozenset(
    {
        "messages",
        "add_generation_prompt",
        "bos_token",
        "eos_token",
        "raise_exception",
        "strftime_now",
    }
)


class ChatTemplate:
    """A compiled chat template; `render` gives the prompt text for the next reply."""

    def __init__(
        self,
        template: str | None,
        *,
        bos_token: str,
        eos_token: str,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        """`now` is the clock of the templates' `strftime_now` (SmolLM3's
        writes today's date into every prompt); tests pin it."""
        if not template:
            logger.warning("the model has no chat template; using ChatML")
            template = CHATML_TEMPLATE
        self.source = template
        self.tool_style = ToolStyle.of(template)
        try:
            # The formatter fixes add_generation_prompt when it is made: one
            # that answers, one that continues a prefilled assistant message.
            self._answering, self._continuing = (
                Jinja2ChatFormatter(
                    template=template,
                    bos_token=bos_token,
                    eos_token=eos_token,
                    add_generation_prompt=answer,
                )
                for answer in (True, False)
            )
        except jinja2.TemplateError as exc:
            raise ModelLoadError(f"the model's chat template does not compile: {exc}") from exc
        if now is not None:
            clock = now
            # The formatter hands its own `strftime_now` to every render.
            for formatter in (self._answering, self._continuing):
                formatter.strftime_now = lambda fmt: clock().strftime(fmt)  # type: ignore[method-assign]

    def render(
        self,
        messages: Sequence[ChatMessage],
        options: Mapping[str, Any] | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> str:
        """The prompt for the reply to `messages`, or for the rest of their
        last message when it is the assistant's. `options` are extra template
        variables (`chat_template_kwargs`); `tools`, function objects the
        model may call."""
        options = dict(options or {})
        reserved = sorted(RESERVED_VARIABLES & options.keys())
        if reserved:
            raise InputError(f"chat_template_kwargs cannot set {', '.join(reserved)}")
        if _is_prefill(messages) and not messages[-1].content.strip():
            messages = messages[:-1]  # an empty prefill: just answer
        prefill = messages[-1].content if _is_prefill(messages) else None
        formatter = self._answering if prefill is None else self._continuing
        payload, variables = self.tool_style.prompt(messages, tools)
        options.update(variables)  # the request's tools over any in chat_template_kwargs
        try:
            # The formatter's type hints ask for OpenAI message dicts; plain dicts are them.
            prompt = formatter(messages=payload, **options).prompt  # type: ignore[arg-type]
        except (jinja2.TemplateError, ValueError, TypeError) as exc:
            # Templates call raise_exception() for e.g. roles out of order:
            # that is about the messages the user sent.
            raise InputError(f"the model's chat template rejected the messages: {exc}") from exc
        return prompt if prefill is None else _up_to_prefill(prompt, prefill)


def _is_prefill(messages: Sequence[ChatMessage]) -> bool:
    """Whether the conversation ends with an assistant message to continue
    (one that made calls is history: the reply answers after it)."""
    return bool(messages) and messages[-1].role == "assistant" and not messages[-1].tool_calls


def _up_to_prefill(prompt: str, prefill: str) -> str:
    """The rendered conversation cut right after the last assistant message's
    text, so that the model continues it (transformers' rule: templates may
    strip the message, so it is looked for stripped)."""
    at = prompt.rfind(prefill.strip())
    if at == -1:
        raise InputError(
            "the model's chat template does not render the final assistant message "
            "as it was sent, so the reply cannot continue it"
        )
    kept = prefill.lstrip()
    if prompt[at : at + len(kept)] == kept:
        return prompt[: at + len(kept)]
    return prompt[: at + len(prefill.strip())]


def prompt_text(chat: ChatTemplate, request: GenerationRequest) -> str:
    """The text an engine tokenizes for a request: the chat template over its
    messages, or its raw prompt."""
    if request.messages is not None:
        options = request.chat_template_kwargs
        if request.reasoning_budget == 0 and "enable_thinking" not in options:
            # No room to think: templates that can turn thinking off do
            # (llama-server's rule), and the engine closes any block at once.
            options = {**options, "enable_thinking": False}
        return chat.render(request.messages, options, request.tools)
    return request.prompt or ""
