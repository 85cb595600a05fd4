from runtime.engine.detokenize import Detokenizer

# A made-up vocabulary whose tokens split multi-byte characters, as byte-level BPE does.
VOCAB = {
    0: b"caf",
    1: "é".encode()[:1],
    2: "é".encode()[1:],
    3: b" ",
    4: "日本".encode(),
    5: "語".encode()[:2],
    6: "語".encode()[2:],
    7: "😀".encode()[:1],
    8: "😀".encode()[1:3],
    9: "😀".encode()[3:],
    10: b"\xff",
    11: b"",
}


def decode_all(tokens: list[int]) -> list[str]:
    detokenizer = Detokenizer(VOCAB.__getitem__)
    pieces = [detokenizer.feed(token) for token in tokens]
    pieces.append(detokenizer.flush())
    return pieces


def test_pieces_never_split_a_character() -> None:
    pieces = decode_all([0, 1, 2, 3, 4, 5, 6, 3, 7, 8, 9])
    assert "".join(pieces) == "café 日本語 😀"
    assert pieces == ["caf", "", "é", " ", "日本", "", "語", " ", "", "", "😀", ""]
    assert "\ufffd" not in "".join(pieces)


def test_a_character_split_over_three_tokens_comes_out_whole() -> None:
    detokenizer = Detokenizer(VOCAB.__getitem__)
    assert detokenizer.feed(7) == ""
    assert detokenizer.pending_bytes == b"\xf0"
    assert detokenizer.feed(8) == ""
    assert detokenizer.feed(9) == "😀"
    assert detokenizer.pending_bytes == b""


def test_invalid_bytes_become_a_replacement_character() -> None:
    assert "".join(decode_all([0, 10, 3])) == "caf\ufffd "


def test_an_incomplete_character_at_the_end_is_dropped_not_replaced() -> None:
    pieces = decode_all([0, 5])
    assert pieces == ["caf", "", ""]


def test_after_a_flush_nothing_is_held_back() -> None:
    detokenizer = Detokenizer(VOCAB.__getitem__)
    detokenizer.feed(7)
    detokenizer.flush()
    assert detokenizer.pending_bytes == b""


def test_tokens_without_text_give_empty_pieces() -> None:
    assert decode_all([11, 0, 11]) == ["", "caf", "", ""]
