"""The chat view of a chat-completion workflow: the conversation stays on the
page, and each turn goes to the workflow's model with the whole history."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from nicegui import ui

from runtime.engine.logprobs import TokenLogprob
from runtime.engine.types import FinishReason, GenerationResult
from runtime.errors import ModelComposeError
from runtime.service import Service
from runtime.webui.answer import AnswerView
from runtime.webui.chat_target import ChatTarget, chat_request, default_system_prompt
from runtime.webui.conversation import Conversation, Turn, TurnState
from runtime.webui.run_panel import cancel_gracefully, stop_now
from runtime.webui.stats import RunStats, format_stats, run_stats
from runtime.workflow.tasks import Task, TaskStatus


def _show_reply(turn: Turn, answer: AnswerView) -> None:
    answer.set_text(turn.reply, turn.reasoning, live=turn.state is TurnState.ANSWERING)


class _ReplyListener:
    def __init__(self, turn: Turn, answer: AnswerView) -> None:
        self.turn = turn
        self.answer = answer

    def on_delta(
        self,
        job_id: str,
        text: str,
        streaming: bool,
        reasoning: bool = False,
        logprobs: tuple[TokenLogprob, ...] = (),
    ) -> None:
        self.turn.add(text, reasoning)
        _show_reply(self.turn, self.answer)

    def on_result(self, job_id: str, result: GenerationResult) -> None:
        pass


SYSTEM_PROMPT_HINT = "optional: left empty, the model's own default applies"


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
        self.task: Task | None = None
        with ui.column().classes("w-full gap-3") as self.root:
            with ui.row().classes("w-full items-start no-wrap gap-2"):
                self.system_prompt = (
                    ui.textarea("System prompt", value=default_system_prompt(target, form_input()))
                    # Left empty, no system message is sent (conversation.py).
                    .props(f'outlined dense autogrow hint="{SYSTEM_PROMPT_HINT}"')
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
        return self.task is not None and not self.task.is_finished

    async def send(self) -> None:
        text = (self.input.value or "").strip()
        if self.is_answering or not text:
            return
        self.error.set_visibility(False)
        messages = self.conversation.messages(self.system_prompt.value or "", text)
        form = self.form_input()
        try:
            # Settings that cannot render from the form's input fail here,
            # before the turn is shown; the turn itself runs as a workflow run.
            chat_request(self.target, messages, form)
            run = self.service.prepare(self.target.workflow.id, form, conversation=messages)
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
        try:
            self.task = self.service.start_run(run, _ReplyListener(turn, answer))
        except ModelComposeError as error:  # every task slot is busy
            turn.state = TurnState.FAILED
            self._show_error(str(error))
            return
        self._set_answering(True)
        try:
            await self.task.wait()
        except asyncio.CancelledError:
            self.stop()  # this handler itself is being cancelled (the page is gone)
            raise
        finally:
            self._set_answering(False)
        self._show_turn(turn, self.task)
        _show_reply(turn, answer)  # no longer live: "Reasoning…" ends

    def _show_turn(self, turn: Turn, task: Task) -> None:
        if task.status == TaskStatus.FAILED:
            turn.state = TurnState.FAILED
            self._show_error(str(task.error))
            return
        turn.state = TurnState.DONE
        if task.status == TaskStatus.CANCELLED:
            self._show_stats(RunStats(FinishReason.CANCELLED))
        else:
            self._show_stats(run_stats(task.context.results, task.finish_reason))

    async def cancel(self) -> None:
        if self.is_answering:
            self.cancel_button.disable()
            # send() reports how the turn ended; here it only has to end.
            await cancel_gracefully(self.task)

    async def new_chat(self) -> None:
        task = self.task
        if task is not None and not task.is_finished:
            self.stop()
            await task.wait()
        self.conversation.clear()
        self.messages.clear()
        self.stats.set_text("")
        self.error.set_visibility(False)

    def stop(self) -> None:
        """Stop the turn being answered now (the page is gone, or New chat)."""
        stop_now(self.task)

    def _set_answering(self, answering: bool) -> None:
        self.send_button.set_enabled(not answering)
        self.cancel_button.set_enabled(answering)

    def _show_stats(self, stats: RunStats) -> None:
        self.stats.set_text(format_stats(stats))

    def _show_error(self, message: str) -> None:
        self.error.set_text(message)
        self.error.set_visibility(True)
