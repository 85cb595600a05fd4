"""A chat kept on the page: what each new turn sends."""

from __future__ import annotations

from runtime.engine.types import ChatMessage
from runtime.webui.conversation import Conversation, TurnState


def test_a_turn_sends_the_system_prompt_the_answered_turns_and_the_new_message() -> None:
    chat = Conversation()
    first = chat.add("Hi")
    first.add("greet back", reasoning=True)
    first.add("Hello!", reasoning=False)
    first.state = TurnState.DONE
    failed = chat.add("Lost question")
    failed.state = TurnState.FAILED
    assert chat.messages("Be brief.", "Bye") == [
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "Hi"),
        ChatMessage("assistant", "Hello!"),  # reasoning is not sent back
        ChatMessage("user", "Bye"),
    ]
    assert chat.messages("  ", "Bye")[0] == ChatMessage("user", "Hi")
    chat.clear()
    assert chat.messages("", "Again") == [ChatMessage("user", "Again")]


def test_a_turn_keeps_its_streamed_reasoning_apart_from_its_answer() -> None:
    turn = Conversation().add("Capital of France?")
    for text, reasoning in [("Paris is ", True), ("the capital.", True), ("It is ", False)]:
        turn.add(text, reasoning)
    turn.add("**Paris**.", reasoning=False)
    assert (turn.reasoning, turn.reply) == ("Paris is the capital.", "It is **Paris**.")
