"""Tiny but real llama-architecture GGUF models for tests, written with the `gguf` package.

The weights are random (seeded) F32, so the text is gibberish, but llama.cpp loads the file,
tokenizes any text (byte-level BPE, like GPT-2) and generates thousands of tokens a second.

Two tricks make the gibberish predictable enough to test with:
- every token embedding carries a large constant in dimension 0, and the output matrix gives the
  special tokens (and non-ASCII bytes) a large negative weight there, so they are practically
  never sampled: a reply is ASCII and runs until max_tokens unless the test asks otherwise;
- ``eos_first=True`` flips that for the end-of-text token, so the model ends every reply at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from gguf import GGUFWriter, LlamaFileType, TokenType

# ChatML, as used by Qwen and many fine-tunes.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# ChatML that opens the reply's <think> itself, as DeepSeek R1's newer templates do.
THINKING_TEMPLATE = CHATML_TEMPLATE.replace(
    "'<|im_start|>assistant\\n'", "'<|im_start|>assistant\\n<think>\\n'"
)

# Like Gemma's: no system role, "model" for the assistant, and an exception for a system message.
NO_SYSTEM_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}"
    "{% if message['role'] == 'assistant' %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\\n' + message['content'] + '<end_of_turn>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<start_of_turn>", "<end_of_turn>"]
# A few merges so the tokenizer is a real BPE one, not just bytes.
_MERGES = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("e", "r"), ("o", "n"), ("a", "n")]


def _byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (what "gpt2" vocabularies store)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(printable, chars, strict=True)}


def vocabulary(extra: Sequence[str] = ()) -> tuple[list[str], list[int]]:
    """Tokens and their types: 256 bytes, a few merged pieces, then the special tokens (and
    ``extra`` ones, control tokens too)."""
    byte_chars = _byte_to_unicode()
    tokens = [byte_chars[b] for b in range(256)] + [a + b for a, b in _MERGES]
    types = [TokenType.NORMAL] * len(tokens)
    tokens += [*SPECIAL_TOKENS, *extra]
    types += [TokenType.CONTROL] * (len(SPECIAL_TOKENS) + len(extra))
    return tokens, [int(t) for t in types]


def write_tiny_model(
    path: str | Path,
    *,
    chat_template: str | None = None,
    n_layers: int = 2,
    n_embd: int = 64,
    n_head: int = 4,
    n_head_kv: int = 2,
    context_length: int = 2048,
    n_ff: int = 128,
    seed: int = 0,
    name: str = "Tiny Llama",
    eos_first: bool = False,
    f16: bool = False,
    tied: bool = False,
    special_tokens: Sequence[str] = (),
    favour: Sequence[str] = (),
) -> Path:
    """Write a loadable llama-architecture GGUF to ``path`` and return the path.

    ``special_tokens``: control tokens added to the vocabulary (a model's own markers, such as
    ``[TOOL_CALLS]``); like the others, they are practically never sampled, but for those in
    ``favour``, which the model then writes whenever it may.
    ``tied=True`` leaves out ``output.weight``: llama.cpp then uses the embedding as output head.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tokens, token_types = vocabulary(special_tokens)
    n_vocab = len(tokens)
    eos_id = tokens.index("<|endoftext|>")
    head_dim = n_embd // n_head
    wtype = np.float16 if f16 else np.float32

    w = GGUFWriter(str(path), "llama")
    w.add_name(name)
    w.add_file_type(LlamaFileType.MOSTLY_F16 if f16 else LlamaFileType.ALL_F32)
    w.add_context_length(context_length)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layers)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_rope_dimension_count(head_dim)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(n_vocab)

    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(token_types)
    w.add_token_merges([f"{a} {b}" for a, b in _MERGES])
    w.add_bos_token_id(eos_id)
    w.add_eos_token_id(eos_id)
    w.add_add_bos_token(False)
    if chat_template is not None:
        w.add_chat_template(chat_template)

    def normal(*shape: int, scale: float = 0.02) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    # Dimension 0 of the residual stream is a large constant (see the module docstring).
    embd = normal(n_vocab, n_embd)
    embd[:, 0] = 1.0
    output = normal(n_vocab, n_embd, scale=1.0)
    output[:, 0] = 0.0
    # Special tokens, control characters and the bytes of multi-byte characters are never
    # sampled: replies are printable ASCII that tokenizes back much the same way.
    unwanted = [tokens.index(t) for t in [*SPECIAL_TOKENS, *special_tokens]]
    unwanted += [b for b in range(256) if not (0x20 <= b < 0x7F or b == 0x0A)]
    output[unwanted, 0] = -5.0
    if eos_first:
        output[eos_id, 0] = 5.0
    for token in favour:
        output[tokens.index(token), 0] = 5.0

    def add(tensor_name: str, array: np.ndarray, *, keep_f32: bool = False) -> None:
        # llama.cpp wants norms in F32; everything else may be F16.
        w.add_tensor(tensor_name, array if keep_f32 else array.astype(wtype))

    add("token_embd.weight", embd)
    add("output_norm.weight", np.ones(n_embd, np.float32), keep_f32=True)
    if not tied:
        add("output.weight", output)
    for i in range(n_layers):
        add(f"blk.{i}.attn_norm.weight", np.ones(n_embd, np.float32), keep_f32=True)
        add(f"blk.{i}.attn_q.weight", normal(n_head * head_dim, n_embd))
        add(f"blk.{i}.attn_k.weight", normal(n_head_kv * head_dim, n_embd))
        add(f"blk.{i}.attn_v.weight", normal(n_head_kv * head_dim, n_embd))
        add(f"blk.{i}.attn_output.weight", normal(n_embd, n_head * head_dim))
        add(f"blk.{i}.ffn_norm.weight", np.ones(n_embd, np.float32), keep_f32=True)
        add(f"blk.{i}.ffn_gate.weight", normal(n_ff, n_embd))
        add(f"blk.{i}.ffn_up.weight", normal(n_ff, n_embd))
        add(f"blk.{i}.ffn_down.weight", normal(n_embd, n_ff))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def write_header_only(
    path: str | Path,
    arch: str,
    *,
    n_layers: int,
    n_embd: int,
    n_head: int | Sequence[int],
    n_head_kv: int | Sequence[int] | None = None,
    key_length: int | None = None,
    n_vocab: int = 1000,
    n_ff: int = 0,
    tied: bool = False,
    split_count: int | None = None,
) -> Path:
    """Write a GGUF header (metadata and tensor infos, no tensor data: a remote header's bytes).

    The tensors are F16: ``token_embd.weight``, ``output.weight`` unless ``tied``, and per layer
    an ``ffn_up`` of ``n_ff x n_embd``. Parse the bytes with ``parse_gguf_header``.
    """
    path = Path(path)
    w = GGUFWriter(str(path), arch)
    w.add_name(f"Header-only {arch}")
    w.add_file_type(LlamaFileType.MOSTLY_F16)
    w.add_context_length(4096)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layers)
    if n_ff:
        w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    if n_head_kv is not None:
        w.add_head_count_kv(n_head_kv)
    if key_length is not None:
        w.add_key_length(key_length)
        w.add_value_length(key_length)
    if split_count is not None:
        w.add_uint16("split.no", 0)
        w.add_uint16("split.count", split_count)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"t{i}" for i in range(n_vocab)])
    w.add_token_types([int(TokenType.NORMAL)] * n_vocab)

    def info(name: str, *shape: int) -> None:
        w.add_tensor_info(name, shape, np.dtype(np.float16), int(np.prod(shape)) * 2)

    info("token_embd.weight", n_vocab, n_embd)
    if not tied:
        info("output.weight", n_vocab, n_embd)
    for i in range(n_layers):
        info(f"blk.{i}.ffn_up.weight", max(n_ff, 1), n_embd)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    return path


def write_streaming_model(path: str | Path) -> Path:
    """A 50 MB random-weight llama that never ends a reply by itself and streams a few hundred
    tokens a second on a small CPU: for tests and benchmarks that need a long, steady reply."""
    return write_tiny_model(
        path,
        chat_template=CHATML_TEMPLATE,
        n_embd=512,
        n_layers=8,
        n_ff=1408,
        n_head=8,
        n_head_kv=8,
        context_length=8192,
        f16=True,
    )
