"""A chat kept on the page: its turns, and the messages each new turn sends."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from runtime.engine.types import ChatMessage


class TurnState(enum.StrEnum):
    ANSWERING = "answering"
    DONE = "done"  # answered, or cancelled after part of an answer
    FAILED = "failed"


@dataclass
class Turn:
    user: str
    reply: str = ""  # the answer, as the engine split it from the reasoning
    reasoning: str = ""
    state: TurnState = TurnState.ANSWERING

    def add(self, text: str, reasoning: bool) -> None:
        """A streamed piece of the reply: of its reasoning or of its answer."""
        if reasoning:
            self.reasoning += text
        else:
            self.reply += text


@dataclass
class Conversation:
    turns: list[Turn] = field(default_factory=list)

    def messages(self, system: str, user: str) -> list[ChatMessage]:
        """What a new turn sends: the system prompt, every earlier turn that
        got an answer, then the new user message.

        Earlier replies go back without their reasoning, as reasoning models'
        own chat templates do: it was for that turn only, and it would fill
        the context quickly. A failed turn is left out: its question was never
        answered, and the user can ask again.
        """
        messages = [ChatMessage("system", system)] if system.strip() else []
        for turn in self.turns:
            if turn.state is not TurnState.DONE:
                continue
            messages.append(ChatMessage("user", turn.user))
            if turn.reply:
                messages.append(ChatMessage("assistant", turn.reply))
        messages.append(ChatMessage("user", user))
        return messages

    def add(self, user: str) -> Turn:
        turn = Turn(user)
        self.turns.append(turn)
        return turn

    def clear(self) -> None:
        self.turns.clear()
