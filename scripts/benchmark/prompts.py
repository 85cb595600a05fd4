"""The prompts every system gets: numbered story openings for throughput (a
small model keeps a story going, so greedy decoding rarely stops before
max_tokens), and a long fixed system prompt for the warm-prefix measurement."""

from __future__ import annotations

from collections.abc import Callable

_STORY = (
    "Story {number}. The following is a long story for children.\n\n"
    "Once upon a time, in a small village by the sea, there lived an old fisherman "
    "and his granddaughter. Every morning"
)
_WARMUP = "Note {number}. The weather today is"


def rounds(clients: list[int], repetitions: int, start: int = 0) -> list[list[str]]:
    """The prompts of every measured round, in order: each client count once
    per repetition, one prompt per client. Every prompt is new (its number comes
    first), so no system can reuse a cached prefix: each request is prefilled,
    as a new user's would be. Every system gets the same list. `start`: the
    first number (another set of rounds in the same process needs new ones)."""
    number = start
    plan = []
    for _ in range(repetitions):
        for n in clients:
            plan.append([_STORY.format(number=number + i) for i in range(n)])
            number += n
    return plan


def warmup(clients: int) -> list[str]:
    """Short prompts for a warm-up round (not measured)."""
    return [_WARMUP.format(number=i) for i in range(clients)]


QUESTIONS = (
    "\n\nPassenger: Can I bring my bicycle on the morning ferry to the island?\nAssistant:",
    "\n\nPassenger: What happens to my ticket if the evening ferry is cancelled?\nAssistant:",
)

_PLACES = (
    "Northpoint",
    "Gull Island",
    "Saltmarsh",
    "Old Harbour",
    "Eastcliff",
    "Fennick Bay",
    "Lantern Rock",
    "Marrow Quay",
)
_TOPICS = (
    "tickets",
    "luggage",
    "pets",
    "bicycles",
    "delays",
    "refunds",
    "accessibility",
    "timetables",
    "parking",
    "group bookings",
)


def system_prompt(count_tokens: Callable[[str], int], target_tokens: int = 1000) -> str:
    """A support-assistant system prompt of about `target_tokens` tokens (at
    least that many, in whole rules), deterministic for a given tokenizer."""
    text = (
        "You are the customer support assistant of the Harbour Line ferry company. "
        "Answer passengers politely and briefly, following these rules exactly.\n"
    )
    rule = 0
    while count_tokens(text) < target_tokens:
        rule += 1
        place = _PLACES[rule % len(_PLACES)]
        topic = _TOPICS[rule % len(_TOPICS)]
        text += (
            f"Rule {rule}: for questions about {topic} on the {place} route, "
            f"check the {place} notice board first, quote the fare table for {topic}, "
            f"and never promise anything the timetable does not show.\n"
        )
    return text


def system_prompt_for(model: str, target_tokens: int) -> str:
    """`system_prompt` of about `target_tokens` tokens of `model`'s vocabulary."""
    from scripts.benchmark.ceiling import RawModel

    vocab = RawModel(model, 1, vocab_only=True)
    try:
        return system_prompt(lambda text: len(vocab.encode(text)), target_tokens)
    finally:
        vocab.close()
