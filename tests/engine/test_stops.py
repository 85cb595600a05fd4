import pytest

from runtime.engine.stops import StopMatcher


def run(stops: list[str], pieces: list[str]) -> tuple[list[str], bool, str]:
    """Feed pieces until a stop; returns the emitted pieces, whether it stopped,
    and the final text (emitted pieces + the flushed tail)."""
    matcher = StopMatcher(stops)
    emitted = []
    for piece in pieces:
        check = matcher.feed(piece)
        emitted.append(check.text)
        if check.stopped:
            return emitted, True, "".join(emitted)
    emitted.append(matcher.flush())
    return emitted, False, "".join(emitted)


def test_text_without_stops_passes_through_unchanged() -> None:
    assert run([], ["Hello", " world"]) == (["Hello", " world", ""], False, "Hello world")


def test_a_stop_inside_one_piece_cuts_the_text_before_it() -> None:
    _, stopped, text = run(["END"], ["abc END def"])
    assert stopped and text == "abc "


def test_a_stop_spanning_pieces_is_found_and_never_emitted() -> None:
    emitted, stopped, text = run(["\nUser:"], ["Hi", " there\n", "Us", "er", ": more"])
    assert stopped
    assert text == "Hi there"
    assert "\n" not in "".join(emitted)


def test_only_a_possible_stop_prefix_is_held_back() -> None:
    matcher = StopMatcher(["world"])
    check = matcher.feed("hello wor")
    assert check.text == "hello " and not check.stopped
    assert matcher.held == "wor"
    check = matcher.feed("ds")  # "words" is not "world": release it all
    assert check.text == "words" and matcher.held == ""


def test_held_text_is_released_when_generation_ends() -> None:
    emitted, stopped, text = run(["STOP"], ["go ST"])
    assert not stopped and emitted == ["go ", "ST"] and text == "go ST"


def test_the_earliest_of_several_stops_wins() -> None:
    _, stopped, text = run(["b", "abc"], ["xab", "c"])
    assert stopped and text == "xa"
    _, stopped, text = run(["cd", "bcx"], ["ab", "cd"])
    assert stopped and text == "ab"


def test_the_longest_possible_prefix_is_kept_across_overlapping_stops() -> None:
    matcher = StopMatcher(["aab"])
    assert matcher.feed("xaa").text == "x"
    assert matcher.feed("a").text == "a"  # "aaa": only the last "aa" may still start "aab"
    check = matcher.feed("b")
    assert check.stopped and check.text == ""


def test_empty_stop_strings_are_ignored() -> None:
    assert run(["", "Z"], ["abc"])[2] == "abc"


def test_nothing_is_emitted_after_a_stop() -> None:
    matcher = StopMatcher(["x"])
    assert matcher.feed("axb").text == "a"
    assert matcher.feed("more").text == ""
    assert matcher.flush() == ""


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_emitted_pieces_always_concatenate_to_the_final_text(size: int) -> None:
    text = "The café says 日本語 😀 and then <|im_end|> and more"
    pieces = [text[i : i + size] for i in range(0, len(text), size)]
    _, stopped, final = run(["<|im_end|>", "xyz"], pieces)
    assert stopped and final == "The café says 日本語 😀 and then "
