"""Render chat messages into a prompt with the model's own chat template.

The template comes from the GGUF metadata (`tokenizer.chat_template`, the same
Jinja template transformers uses) and is rendered the way transformers renders
it, through llama-cpp-python's `Jinja2ChatFormatter` (sandboxed Jinja, `tojson`,
`strftime_now`, `raise_exception`). BOS handling and stopping live elsewhere:
`Vocabulary.encode` never adds a second BOS, and generation stops at the
model's end-of-generation tokens.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

import jinja2
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

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
        try:
            self._formatter = Jinja2ChatFormatter(
                template=template,
                bos_token=bos_token,
                eos_token=eos_token,
                add_generation_prompt=True,
            )
        except jinja2.TemplateError as exc:
            raise ModelLoadError(f"the model's chat template does not compile: {exc}") from exc
        if now is not None:
            clock = now
            # The formatter hands its own `strftime_now` to every render.
            self._formatter.strftime_now = lambda fmt: clock().strftime(fmt)  # type: ignore[method-assign]

    def render(self, messages: Sequence[ChatMessage]) -> str:
        payload = [{"role": m.role, "content": m.content} for m in messages]
        try:
            # The formatter's type hints ask for OpenAI message dicts; plain dicts are them.
            return self._formatter(messages=payload).prompt  # type: ignore[arg-type]
        except (jinja2.TemplateError, ValueError, TypeError) as exc:
            # Templates call raise_exception() for e.g. roles out of order:
            # that is about the messages the user sent.
            raise InputError(f"the model's chat template rejected the messages: {exc}") from exc


def prompt_text(chat: ChatTemplate, request: GenerationRequest) -> str:
    """The text an engine tokenizes for a request: the chat template over its
    messages, or its raw prompt."""
    if request.messages is not None:
        return chat.render(request.messages)
    return request.prompt or ""
