"""The chat view of a chat-completion workflow: the conversation stays on the
page, and each turn goes to the workflow's model with the whole history."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from nicegui import ui

from runtime.engine.types import FinishReason, GenerationResult
from runtime.errors import ModelComposeError
from runtime.service import Service
from runtime.webui.answer import AnswerView
from runtime.webui.chat_target import ChatTarget, chat_request, default_system_prompt
from runtime.webui.conversation import Conversation, Turn, TurnState
from runtime.webui.run_panel import GRACEFUL_CANCEL_S
from runtime.webui.stats import RunStats, format_stats, run_stats
from runtime.workflow.context import RunContext

logger = logging.getLogger(__name__)


class _ReplyListener:
    def __init__(self, turn: Turn, answer: AnswerView) -> None:
        self.turn = turn
        self.answer = answer

    def on_delta(self, job_id: str, text: str, streaming: bool) -> None:
        self.turn.reply += text
        self.answer.set_text(self.turn.reply)

    def on_result(self, job_id: str, result: GenerationResult) -> None:
        pass


class ChatView:
    """Markers: `system-prompt`, `chat-messages`, `chat-user`, `chat-assistant`,
    `chat-input`, `chat-send`, `chat-cancel`, `new-chat`, `chat-stats`, `chat-error`.

    `form_input` gives the Form tab's current input: the action's settings
    that read inputs (say, `temperature: ${input.temperature | 0.7}`) take it.
    """

    def __init__(
        self, service: Service, target: ChatTarget, form_input: Callable[[], dict[str, Any]]
    ) -> None:
        self.service = service
        self.target = target
        self.form_input = form_input
        self.conversation = Conversation()
        self.generation: asyncio.Task[GenerationResult] | None = None
        self.context: RunContext | None = None
        with ui.column().classes("w-full gap-3") as self.root:
            with ui.row().classes("w-full items-start no-wrap gap-2"):
                self.system_prompt = (
                    ui.textarea("System prompt", value=default_system_prompt(target, form_input()))
                    .props("outlined dense autogrow")
                    .classes("grow")
                    .mark("system-prompt")
                )
                ui.button("New chat", on_click=self.new_chat).props("outline").mark("new-chat")
            self.messages = ui.column().classes("w-full gap-2").mark("chat-messages")
            self.error = ui.label().classes("text-negative whitespace-pre-wrap").mark("chat-error")
            self.error.set_visibility(False)
            self.stats = ui.label().classes("text-caption text-grey-7").mark("chat-stats")
            with ui.row().classes("w-full items-end no-wrap gap-2"):
                self.input = (
                    ui.textarea(placeholder="Message (Enter to send, Shift+Enter for a new line)")
                    .props("outlined dense autogrow")
                    .classes("grow")
                    .mark("chat-input")
                )
                self.input.on("keydown.enter.exact.prevent", self.send)
                self.send_button = (
                    ui.button("Send", on_click=self.send).props("color=primary").mark("chat-send")
                )
                self.cancel_button = (
                    ui.button("Cancel", on_click=self.cancel).props("outline").mark("chat-cancel")
                )
                self.cancel_button.disable()

    @property
    def is_answering(self) -> bool:
        return self.generation is not None and not self.generation.done()

    async def send(self) -> None:
        text = (self.input.value or "").strip()
        if self.is_answering or not text:
            return
        self.error.set_visibility(False)
        messages = self.conversation.messages(self.system_prompt.value or "", text)
        try:
            request = chat_request(self.target, messages, self.form_input())
        except ModelComposeError as error:
            self._show_error(str(error))
            return
        self.input.set_value("")
        turn = self.conversation.add(text)
        with self.messages:
            with ui.chat_message(name="You", sent=True).classes("w-full"):
                ui.label(text).classes("whitespace-pre-wrap").mark("chat-user")
            with ui.chat_message(name="Assistant").classes("w-full").mark("chat-assistant"):
                answer = AnswerView(marker="chat-answer")
        self.context = RunContext(listener=_ReplyListener(turn, answer))
        self.generation = asyncio.create_task(
            self.service.components.generate(self.target.component_id, request, self.context)
        )
        self._set_answering(True)
        try:
            result = await self.generation
        except asyncio.CancelledError:
            turn.state = TurnState.DONE
            self._show_stats(RunStats(FinishReason.CANCELLED))
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # this handler itself is being cancelled, not just the turn
        except ModelComposeError as error:
            turn.state = TurnState.FAILED
            self._show_error(str(error))
        except Exception as error:  # a bug: say so, keep the page alive
            logger.exception("chat turn failed")
            turn.state = TurnState.FAILED
            self._show_error(f"internal error: {error}")
        else:
            turn.state = TurnState.DONE
            self._show_stats(run_stats([result], result.finish_reason))
        finally:
            self._set_answering(False)

    async def cancel(self) -> None:
        generation, context = self.generation, self.context
        if generation is None or generation.done() or context is None:
            return
        self.cancel_button.disable()
        context.cancel.cancel()
        # send() reports how the turn ended; here it only has to end.
        _, running = await asyncio.wait({generation}, timeout=GRACEFUL_CANCEL_S)
        if running:
            generation.cancel()

    async def new_chat(self) -> None:
        generation = self.generation
        if generation is not None and not generation.done():
            self.stop()
            await asyncio.wait({generation})
        self.conversation.clear()
        self.messages.clear()
        self.stats.set_text("")
        self.error.set_visibility(False)

    def stop(self) -> None:
        """Stop the turn being answered now (the page is gone, or New chat)."""
        if self.context is not None:
            self.context.cancel.cancel()
        if self.generation is not None and not self.generation.done():
            self.generation.cancel()

    def _set_answering(self, answering: bool) -> None:
        self.send_button.set_enabled(not answering)
        self.cancel_button.set_enabled(answering)

    def _show_stats(self, stats: RunStats) -> None:
        self.stats.set_text(format_stats(stats))

    def _show_error(self, message: str) -> None:
        self.error.set_text(message)
        self.error.set_visibility(True)
