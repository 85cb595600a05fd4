import pytest

from runtime.engine.request_state import RequestState, TokenBudget, token_budget
from runtime.engine.types import FinishReason
from runtime.errors import PromptTooLongError

VOCAB = {0: b"Hello", 1: b" wor", 2: b"ld", 3: b"!", 4: "é".encode()[:1], 5: "é".encode()[1:]}
EOG = 99


def make_state(budget: int = 10, stops: tuple[str, ...] = ()) -> RequestState:
    return RequestState(
        prompt_tokens=5,
        budget=TokenBudget(budget),
        token_bytes=lambda t: VOCAB.get(t, b""),
        stops=stops,
        context_length=64,
    )


def feed(state: RequestState, tokens: list[int]) -> list[str]:
    pieces = []
    for token in tokens:
        delta = state.append_token(token, is_eog=token == EOG)
        if delta is not None:
            pieces.append(delta.text)
        if state.is_finished:
            break
    return pieces


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


def test_an_eog_token_stops_without_adding_text() -> None:
    state = make_state()
    assert feed(state, [0, 1, 2, EOG, 3]) == ["Hello", " wor", "ld"]
    result = state.result()
    assert result.text == "Hello world"
    assert result.finish_reason is FinishReason.STOP
    assert result.usage.completion_tokens == 3


def test_the_budget_running_out_finishes_with_length() -> None:
    state = make_state(budget=2)
    assert feed(state, [0, 1, 2]) == ["Hello", " wor"]
    assert state.result().finish_reason is FinishReason.LENGTH
    assert state.result().usage.completion_tokens == 2


def test_running_out_of_context_says_so() -> None:
    state = RequestState(
        prompt_tokens=62,
        budget=token_budget(62, 64),
        token_bytes=lambda t: VOCAB.get(t, b""),
        context_length=64,
    )
    feed(state, [0, 1, 2])
    result = state.result()
    assert result.finish_reason is FinishReason.LENGTH
    assert result.detail == "stopped at the end of the 64-token context"


def test_a_stop_sequence_across_tokens_finishes_with_stop() -> None:
    state = make_state(stops=("world",))
    assert feed(state, [0, 1, 2, 3]) == ["Hello", " "]
    result = state.result()
    assert result.text == "Hello " and result.finish_reason is FinishReason.STOP


def test_held_back_text_is_emitted_when_the_budget_ends() -> None:
    state = make_state(budget=2, stops=("world",))
    assert feed(state, [0, 1]) == ["Hello", " wor"]
    assert state.result().text == "Hello wor"


def test_cancel_releases_held_text_and_finishes_cancelled() -> None:
    state = make_state(stops=("world",))
    feed(state, [0, 1])
    delta = state.cancel()
    assert delta is not None and delta.text == "wor"
    assert state.result().finish_reason is FinishReason.CANCELLED
    assert state.result().text == "Hello wor"


def test_a_partial_character_at_the_budget_end_becomes_a_replacement() -> None:
    state = make_state(budget=2)
    assert feed(state, [0, 4]) == ["Hello", "\ufffd"]


def test_deltas_count_completion_tokens_so_far() -> None:
    state = make_state()
    counts = [state.append_token(t, is_eog=False) for t in (0, 4, 5)]
    assert [d.num_tokens if d else None for d in counts] == [1, None, 3]


def test_a_zero_budget_finishes_before_any_token() -> None:
    state = make_state(budget=0)
    assert state.is_finished
    assert state.result().finish_reason is FinishReason.LENGTH
    assert state.result().text == ""
