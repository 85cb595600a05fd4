"""What the clients ask. Load: a small fixed set of questions, every one sent
many times. Soak: a pool of prompts from a few tokens to a few hundred (seeded,
so a run can be repeated), each request drawing one at random."""

from __future__ import annotations

import random

QUESTIONS = (
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Explain in one sentence why the sky is blue.",
    "List three colors.",
    "What is 12 times 12?",
    "Give me a tip for learning to cook.",
    "Who wrote Romeo and Juliet?",
    "Describe a cat to someone who has never seen one.",
)

_NOTES = (
    "harbour ferry island morning ticket bicycle weather river mountain village "
    "lantern market bread garden letter window station bridge forest winter "
    "summer teacher library engine signal orchard meadow candle compass harvest"
)
_WORDS = tuple(_NOTES.split())

_ASK = "\n\nSummarize the notes above in one sentence."


def load_prompts(count: int) -> list[str]:
    """The first `count` questions (at most all of them)."""
    return list(QUESTIONS[: max(1, count)])


def soak_prompts(count: int, seed: int, max_words: int = 300) -> list[str]:
    """`count` prompts of 1 to `max_words` words of notes (log-uniform, so
    short and long prompts are equally common), always the shortest and the
    longest among them."""
    rng = random.Random(seed)
    lengths = [1, max_words] + [round(max_words ** rng.random()) for _ in range(max(0, count - 2))]
    prompts = []
    for number, words in enumerate(lengths[:count]):
        notes = " ".join(rng.choice(_WORDS) for _ in range(words))
        # The shortest are a few bare words: a prompt of a few tokens.
        prompts.append(notes if words <= 3 else f"Notes {number}: {notes}.{_ASK}")
    return prompts
