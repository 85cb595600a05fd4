"""How many tokens a request may generate, decided when it is submitted."""

from __future__ import annotations

from dataclasses import dataclass

from runtime.errors import PromptTooLongError


@dataclass(frozen=True)
class TokenBudget:
    max_new_tokens: int
    # Set when the request asked for more than fits, for people to read.
    detail: str | None = None
    # True when the budget is the room left in the context, not the request's own limit.
    context_bound: bool = False


def token_budget(
    prompt_tokens: int,
    context_length: int,
    max_tokens: int | None = None,
    max_length: int | None = None,
) -> TokenBudget:
    """How many tokens a request may generate; `PromptTooLongError` if none fit."""
    if prompt_tokens >= context_length:
        raise PromptTooLongError(prompt_tokens, context_length)
    room = context_length - prompt_tokens
    wanted, asked = max_tokens, f"max output length {max_tokens}"
    if max_length is not None:
        by_length = max(max_length - prompt_tokens, 0)
        if wanted is None or by_length < wanted:
            wanted, asked = by_length, f"max_length {max_length} (prompt + output)"
            if by_length == 0:
                detail = (
                    f"the prompt ({prompt_tokens} tokens) already fills max_length {max_length}"
                )
                return TokenBudget(0, detail)
    if wanted is None:
        return TokenBudget(room, None, context_bound=True)
    if wanted > room:
        detail = (
            f"{asked} clamped to the {room} tokens left in the "
            f"{context_length}-token context (the prompt is {prompt_tokens} tokens)"
        )
        return TokenBudget(room, detail, context_bound=True)
    return TokenBudget(wanted)
