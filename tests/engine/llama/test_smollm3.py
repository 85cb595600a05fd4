"""The SmolLM3 stand-in on the real path: our engine loads it and generates;
llama.cpp tokenizes with it as with the real GGUF; `<|im_end|>` ends a
generation while `<think>` and `<tool_call>` are printed text.

The token ids of REAL_GGUF come from llama.cpp's `llama-tokenize` over
ggml-org/SmolLM3-3B-GGUF's SmolLM3-Q8_0.gguf (karan68/Camelid,
qa/model-qualification/smollm3-3b-q8-header-tokenizer-parity.json; the texts
were recovered by detokenizing and match the receipt's sha256 of each text).
LLAMA3 holds cases of llama.cpp's own Llama-3 tokenizer test
(models/ggml-vocab-llama-bpe.gguf.inp and .out, in its source).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from convert.smollm3_standin import (
    BOS_ID,
    END_THINK_ID,
    END_TOOL_CALL_ID,
    IM_END_ID,
    IM_START_ID,
    THINK_ID,
    TOOL_CALL_ID,
)
from runtime.engine.batched import BatchedEngine
from runtime.engine.llama.backend import Backend
from runtime.engine.types import (
    ChatMessage,
    FinishReason,
    GenerationRequest,
    GenerationResult,
    ModelSpec,
    SamplingParams,
)

GREEDY = SamplingParams(greedy=True)

REAL_GGUF = {
    "Hello": [9906],
    "  naïve café 中文１２３ can't I'M we'd": [
        220, 95980, 588, 53050, 73958, 17161, 20713, 25963, 34617, 649, 956, 358, 28703, 584, 4265
    ],
    "x  y 1234 a/b\nCAN'T we're!!!": [
        87, 220, 379, 220, 4513, 19, 264, 3554, 198, 43055, 17773, 584, 2351, 12340
    ],
    "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n": [
        128011, 882, 198, 9906, 128012, 198, 128011, 78191, 198
    ],
    (
        "<|im_start|>user\nFirst<|im_end|>\n<|im_start|>assistant\nOne<|im_end|>\n"
        "<|im_start|>user\nSecond<|im_end|>\n<|im_start|>assistant\n"
    ): [
        128011, 882, 198, 5451, 128012, 198, 128011, 78191, 198, 4054, 128012, 198,
        128011, 882, 198, 16041, 128012, 198, 128011, 78191, 198,
    ],
    '<tool_call>{"name":"weather"}</tool_call>': [128015, 5018, 609, 3332, 15561, 9388, 128016],
}  # fmt: skip

LLAMA3 = {
    "ied 4 ½ months": [1142, 220, 19, 220, 27154, 4038],
    "Äpfel": [88075, 16276, 301],
    " Hello World": [22691, 4435],
    "Hello, world!": [9906, 11, 1917, 0],
    " this is 🦙.cpp": [420, 374, 11410, 99, 247, 13, 11055],
    "нещо на Български": [79862, 102118, 13373, 64571, 34694, 3114, 112203, 80112],
    "    Hello\n    Hello": [262, 22691, 198, 262, 22691],
    "3333333": [8765, 8765, 18],
    " discards": [2624, 2402],
    "Hello, y'all! How are you 😁 ?我想在apple工作1314151天～": [
        9906, 11, 379, 65948, 0, 2650, 527, 499, 27623, 223, 949, 37046, 101067,
        19000, 23182, 102301, 9263, 18136, 16, 36827, 21909,
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def smollm3(smollm3_model_path: Path) -> Iterator[BatchedEngine]:
    engine = BatchedEngine.load(ModelSpec(str(smollm3_model_path), n_ctx=512))
    yield engine
    engine.shutdown()


@pytest.fixture
def vocab(smollm3: BatchedEngine) -> Backend:
    return smollm3.model


async def generate(engine: BatchedEngine, request: GenerationRequest) -> GenerationResult:
    generation = engine.submit(request)
    async for _ in generation:
        pass
    return await generation.result()


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("<|im_start|>", IM_START_ID),
        ("<|im_end|>", IM_END_ID),
        ("<think>", THINK_ID),
        ("</think>", END_THINK_ID),
        ("<tool_call>", TOOL_CALL_ID),
        ("</tool_call>", END_TOOL_CALL_ID),
        ("<tool_response>", 128013),
        ("<code>", 128017),
        ("<|begin_of_text|>", BOS_ID),
    ],
)
def test_each_special_token_is_one_token_at_smollm3s_id(
    vocab: Backend, text: str, token: int
) -> None:
    assert vocab.encode(text) == [token]


@pytest.mark.parametrize("text", REAL_GGUF)
def test_text_tokenizes_as_with_the_real_gguf(vocab: Backend, text: str) -> None:
    assert vocab.encode(text) == REAL_GGUF[text]


@pytest.mark.parametrize("text", LLAMA3)
def test_ordinary_text_tokenizes_as_llama_3(vocab: Backend, text: str) -> None:
    assert vocab.encode(text) == LLAMA3[text]


def test_words_are_merged_not_looked_up_as_the_real_ggufs_smaug_bpe_does(vocab: Backend) -> None:
    # llama.cpp's Llama-3 test expects 101798 (" Việt" whole: llama-bpe
    # ignores merges for a word in the vocabulary). SmolLM3's GGUF says
    # smaug-bpe, the same split without that shortcut: the merges give three.
    assert vocab.encode("Cửa Việt") == [34, 91163, 11655, 26298, 83]


def test_no_bos_is_added_and_eos_is_im_end(vocab: Backend) -> None:
    assert vocab.special.adds_bos is False
    assert (vocab.special.bos_id, vocab.special.bos_text) == (BOS_ID, "<|begin_of_text|>")
    assert vocab.special.eos_text == "<|im_end|>"
    assert vocab.encode("Hello") == [9906]


def test_im_end_ends_a_generation_and_im_start_does_not(vocab: Backend) -> None:
    assert vocab.is_eog(IM_END_ID)
    # llama.cpp also ends on Llama-3's own end tokens, found by their text.
    assert [vocab.is_eog(t) for t in (128001, 128008, 128009)] == [True, True, True]
    assert not any(vocab.is_eog(t) for t in (IM_START_ID, THINK_ID, END_THINK_ID, TOOL_CALL_ID))


def test_reasoning_and_tool_tags_are_printed_and_chat_controls_are_not(vocab: Backend) -> None:
    # USER_DEFINED tokens are text; CONTROL tokens print as nothing.
    assert vocab.token_bytes(THINK_ID) == b"<think>"
    assert vocab.token_bytes(END_TOOL_CALL_ID) == b"</tool_call>"
    assert vocab.token_bytes(IM_START_ID) == b""
    assert vocab.token_bytes(IM_END_ID) == b""


async def test_the_stand_in_loads_and_answers_a_chat_request(smollm3: BatchedEngine) -> None:
    assert smollm3.info.trained_context_length == 65536
    messages = [ChatMessage("user", "Hi!")]
    result = await generate(
        smollm3, GenerationRequest(messages=messages, sampling=GREEDY, max_tokens=8)
    )
    assert result.finish_reason in (FinishReason.STOP, FinishReason.LENGTH)
    assert 1 <= result.usage.completion_tokens <= 8
    prompt = smollm3.chat_template.render(messages)
    assert prompt.startswith("<|im_start|>system\n## Metadata\n\n")
    assert result.usage.prompt_tokens == len(smollm3.model.encode(prompt))


async def test_generation_stops_at_im_end_with_finish_reason_stop(
    smollm3: BatchedEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Random weights never choose <|im_end|>: the sampler is made to, after a
    # thought. The engine decides on the stop with llama.cpp's is_eog.
    forced = iter([THINK_ID, 9906, END_THINK_ID, 9906, IM_END_ID, 9906])
    monkeypatch.setattr(smollm3.model, "sample", lambda sampler, row, **_: next(forced))
    request = GenerationRequest(prompt="Hi", sampling=GREEDY, max_tokens=16)
    result = await generate(smollm3, request)
    assert result.finish_reason is FinishReason.STOP
    assert (result.reasoning, result.text) == ("Hello", "Hello")
    assert result.usage.completion_tokens == 4
    assert result.usage.reasoning_tokens == 3


def test_the_stand_in_samples_with_smollm3s_recommended_settings(smollm3: BatchedEngine) -> None:
    # SmolLM3's model card: temperature 0.6, top_p 0.95 (its GGUF carries no
    # general.sampling keys); the rest are our defaults.
    sampling = smollm3.info.sampling
    assert (sampling.temperature, sampling.top_p) == (0.6, 0.95)
