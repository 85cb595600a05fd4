import pytest

from runtime.engine.budget import TokenBudget, token_budget
from runtime.errors import PromptTooLongError


def test_a_budget_is_the_room_left_when_no_limit_is_asked() -> None:
    assert token_budget(10, 64) == TokenBudget(54, None, context_bound=True)


def test_a_limit_that_fits_is_kept_as_is() -> None:
    assert token_budget(10, 64, max_tokens=20) == TokenBudget(20)


def test_a_limit_larger_than_the_room_is_clamped_with_a_reason() -> None:
    budget = token_budget(106, 4096, max_tokens=32768)
    assert budget.max_new_tokens == 3990
    assert budget.detail is not None
    assert "32768" in budget.detail and "3990" in budget.detail and "4096" in budget.detail


def test_max_length_caps_prompt_plus_output() -> None:
    assert token_budget(10, 64, max_length=30).max_new_tokens == 20
    assert token_budget(10, 64, max_tokens=5, max_length=30).max_new_tokens == 5
    assert token_budget(10, 64, max_tokens=50, max_length=30).max_new_tokens == 20


def test_max_length_already_reached_by_the_prompt_allows_nothing() -> None:
    budget = token_budget(10, 64, max_length=8)
    assert budget.max_new_tokens == 0 and budget.detail and "max_length 8" in budget.detail


def test_a_prompt_that_fills_the_context_is_too_long() -> None:
    with pytest.raises(PromptTooLongError) as caught:
        token_budget(64, 64)
    assert (caught.value.prompt_tokens, caught.value.context_length) == (64, 64)
    assert "64" in str(caught.value)
