"""A SmolLM3-3B stand-in: everything around the weights is SmolLM3's, the
weights are random.

Tests of SmolLM3's own behaviour (its chat template, thinking on and off, its
special tokens, where generation stops) and the benchmark's 3B model use it:
the real GGUF is 1.9 GB on the Hub, which these machines cannot reach. What a
stand-in copies from ggml-org/SmolLM3-3B-GGUF, and where each fact comes from:

fact                        value                                         source
architecture                `smollm3`: llama tensors, tied embeddings     [L] smollm3.cpp
                            (no output.weight), no RoPE in every 4th
                            layer (hard-coded n_no_rope_layer_step = 4;
                            nothing in the GGUF says so)
hyperparameters             context 65536, width 2048, 36 blocks, FFN     [P] [N] [H]
                            11008, 16 heads, 4 KV heads, RoPE dims 128,
                            freq base 5e6, RMS eps 1e-6, vocab 128256
tokenizer                   gpt2 BPE, pre-tokenizer smaug-bpe (llama3's   [C] [P] [L]
                            regex), 280,147 merges
tokens 0-127999, merges     llama.cpp's models/ggml-vocab-llama-bpe.gguf  [C]: the real file
                                                                          tokenizes the same
BOS, EOS, padding           128000 <|begin_of_text|>, 128012 <|im_end|>,  [C] [P] (config.json
                            128012                                        says pad 128004 [H])
add BOS, add EOS            keys absent: smaug-bpe makes both false       [C] [L]
token types                 128000 NORMAL, 248 CONTROL, 8 USER_DEFINED    [C]
                            (128002-128003, 128013-128018)
<think> </think>            128002 128003                                 [C] [N]
<|finetune_right_pad_id|>   128004                                        [N]
<|start_header_id|> <|end_header_id|> <|eom_id|> <|eot_id|> <|python_tag|>
                            128006 to 128010                              [C]
<|im_start|> <|im_end|>     128011 128012                                 [C] [H] (eos)
<tool_response> </tool_response> <tool_call> </tool_call> <code> </code>
                            128013 to 128018                              [C]
other reserved tokens       <|reserved_special_token_N|>, numbered as in  [R]
                            Llama-3.1 (128005 is 2, 128019 is 11)
chat template               convert/data/smollm3_chat_template.jinja,     [C]
                            5,493 bytes, sha256 b9b66f04...69b7d30e

[C] karan68/Camelid, qa/model-qualification/ and qa/prompt-packs/: receipts
    of ggml-org/SmolLM3-3B-GGUF `SmolLM3-Q8_0.gguf` at revision 4965cb60
    (header inspection; llama.cpp b9632 `llama-tokenize` ids; the embedded
    template's text, length and sha256).
[P] ggml-org/llama.cpp pull request 14581 ("model : add SmolLM3"): the
    metadata a SmolLM3 Q4_K_M GGUF loads with.
[H] HuggingFaceTB/SmolLM3-3B config.json (a copy in
    fetchwiki/HuggingFaceTB-SmolLM3-3B).
[N] 21-grams/notso-smollm3-bot, doc/: an inspection of a Q4_K_M file (326
    tensors) and the special token ids.
[L] llama.cpp's source in the llama-cpp-python 0.3.36 sdist.
[R] inferred, not verified: SmolLM3 took Llama-3.2's tokenizer, whose
    reserved tokens are numbered so; only the text of unused tokens depends
    on it.

The template is the original HuggingFaceTB one (`Today Date:` from
`strftime_now`, `/system_override`, `xml_tools` and `python_tools`,
`{% generation %}`), not llama.cpp's Unsloth-edited copy. Without tools it
does not close the system turn: `<|im_end|>` is written only inside the tools
section, so the prompt reads "...\\n\\n<|im_start|>user". transformers renders
it so too (tests/engine/llama/test_smollm3_template.py holds its output).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

import gguf

from convert.llama3_vocab import BpeVocabulary, read_llama3_vocab
from convert.synthetic import AddTokenizer, LlamaDims, write_model

ARCH = "smollm3"
TOKENIZER_PRE = "smaug-bpe"
TEMPLATE_FILE = "data/smollm3_chat_template.jinja"

BOS_ID = 128000
IM_START_ID = 128011
IM_END_ID = 128012  # EOS and padding
THINK_ID, END_THINK_ID = 128002, 128003
TOOL_CALL_ID, END_TOOL_CALL_ID = 128015, 128016

# SmolLM3's tokens from 128000 on that differ from the reserved-token pattern.
_SPECIAL_TOKENS = {
    128000: "<|begin_of_text|>",
    128001: "<|end_of_text|>",
    128002: "<think>",
    128003: "</think>",
    128004: "<|finetune_right_pad_id|>",
    128005: "<|reserved_special_token_2|>",
    128006: "<|start_header_id|>",
    128007: "<|end_header_id|>",
    128008: "<|eom_id|>",
    128009: "<|eot_id|>",
    128010: "<|python_tag|>",
    128011: "<|im_start|>",
    128012: "<|im_end|>",
    128013: "<tool_response>",
    128014: "</tool_response>",
    128015: "<tool_call>",
    128016: "</tool_call>",
    128017: "<code>",
    128018: "</code>",
}
# llama.cpp parses these wherever they appear in text and prints them when
# generated; CONTROL tokens print as nothing.
USER_DEFINED_IDS = frozenset({128002, 128003, 128013, 128014, 128015, 128016, 128017, 128018})
FIRST_SPECIAL_ID = 128000
N_VOCAB = 128256

# HuggingFaceTB/SmolLM3-3B: 3.08B parameters, 6.2 GB in F16, 1.9 GB in Q4_K_M.
SMOLLM3_3B = LlamaDims(
    n_layers=36,
    n_embd=2048,
    n_ff=11008,
    n_head=16,
    n_head_kv=4,
    n_vocab=N_VOCAB,
    n_ctx_train=65536,
    tied_embeddings=True,
    rope_freq_base=5_000_000.0,
    rms_norm_eps=1e-6,
)
# For tests: 4 layers (the last one without RoPE), rows of 256 so that
# K-quants apply, heads of 128 as SmolLM3's, the whole vocabulary (which makes
# it 33M parameters, nearly all embeddings: 66 MB in F16).
SMOLLM3_TINY = LlamaDims(
    n_layers=4,
    n_embd=256,
    n_ff=512,
    n_head=2,
    n_head_kv=1,
    n_vocab=N_VOCAB,
    n_ctx_train=65536,
    tied_embeddings=True,
    rope_freq_base=5_000_000.0,
    rms_norm_eps=1e-6,
)


def chat_template() -> str:
    """SmolLM3's chat template as the ggml-org GGUF embeds it (byte for byte)."""
    return resources.files("convert").joinpath(TEMPLATE_FILE).read_text(encoding="utf-8")


def special_token(token_id: int) -> str:
    """The text of SmolLM3's token `token_id` (128000 and up)."""
    if token_id in _SPECIAL_TOKENS:
        return _SPECIAL_TOKENS[token_id]
    return f"<|reserved_special_token_{token_id - 128008}|>"


def write_smollm3_standin(
    path: str | Path,
    dims: LlamaDims = SMOLLM3_TINY,
    *,
    file_type: str = "F16",
    seed: int = 0,
    name: str = "smollm3-standin",
    progress: Callable[[int, int], None] | None = None,
    vocab: BpeVocabulary | None = None,
) -> Path:
    """Write a SmolLM3 stand-in with `dims` (the whole vocabulary: n_vocab
    must be 128256) and return its path. `vocab` defaults to llama.cpp's
    Llama-3 vocabulary (`convert.llama3_vocab`)."""
    if dims.n_vocab != N_VOCAB:
        raise ValueError(f"a SmolLM3 stand-in has SmolLM3's {N_VOCAB} tokens, not {dims.n_vocab}")
    return write_model(
        path,
        dims,
        arch=ARCH,
        add_tokenizer=smollm3_tokenizer(vocab or read_llama3_vocab()),
        file_type=file_type,
        seed=seed,
        name=name,
        progress=progress,
    )


def smollm3_tokenizer(vocab: BpeVocabulary) -> AddTokenizer:
    """Writes SmolLM3's tokenizer: `vocab`'s ordinary tokens and merges, then
    SmolLM3's special tokens, ids and chat template."""
    if len(vocab.tokens) != N_VOCAB:
        raise ValueError(f"the Llama-3 vocabulary has {N_VOCAB} tokens, not {len(vocab.tokens)}")
    tokens = [*vocab.tokens[:FIRST_SPECIAL_ID]]
    tokens += [special_token(i) for i in range(FIRST_SPECIAL_ID, N_VOCAB)]
    types = [gguf.TokenType.NORMAL] * FIRST_SPECIAL_ID
    types += [
        gguf.TokenType.USER_DEFINED if i in USER_DEFINED_IDS else gguf.TokenType.CONTROL
        for i in range(FIRST_SPECIAL_ID, N_VOCAB)
    ]
    template = chat_template()

    def add(writer: gguf.GGUFWriter) -> None:
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(TOKENIZER_PRE)
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        writer.add_token_merges(list(vocab.merges))
        writer.add_eos_token_id(IM_END_ID)
        writer.add_pad_token_id(IM_END_ID)
        writer.add_bos_token_id(BOS_ID)
        # No add_bos/add_eos keys, as in the real file: llama.cpp adds neither.
        writer.add_chat_template(template)

    return add
