"""Turn a sentence-transformers BERT model (safetensors, tokenizer.json) into a GGUF llama.cpp
embeds with, without PyTorch or the network.

llama.cpp's own ``convert_hf_to_gguf.py`` does this too, but needs PyTorch and transformers
(gigabytes) for what is a rename of tensors and a copy of the vocabulary. This writes the same
file for the BERT family that sentence-transformers ships (all-MiniLM-L6-v2, bge-small): the
tensors under llama.cpp's names (gguf's own TensorNameMap), 2-D weights as F16, the WordPiece
vocabulary in llama.cpp's "phantom space" form (a word start is "▁word", a continuation drops
its "##"), and the pooling that the model's 1_Pooling/config.json names.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from assistant.errors import ModelError

if TYPE_CHECKING:
    import gguf

_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}


def read_safetensors(data: bytes) -> dict[str, np.ndarray]:
    """The tensors of a .safetensors file's bytes (F32, F16, BF16 and integers), as numpy
    arrays."""
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    base = 8 + header_len
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        raw = np.frombuffer(data, dtype=np.uint8, count=end - start, offset=base + start)
        kind = entry["dtype"]
        if kind == "BF16":  # the high half of a float32
            array = (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
        elif kind in _DTYPES:
            array = raw.view(_DTYPES[kind])
        else:
            raise ModelError(f"The tensor {name} has a type this converter does not read: {kind}")
        tensors[name] = array.reshape(entry["shape"])
    return tensors


def convert(read: Callable[[str], bytes | None], out: Path, name: str) -> Path:
    """Write ``out`` from a model folder's files, given through ``read(relative_name)`` (None
    when a file is absent), so a zip or a folder serve alike."""
    import gguf

    def load_json(rel: str) -> dict:
        raw = read(rel)
        return json.loads(raw) if raw is not None else {}

    config = load_json("config.json")
    if config.get("model_type") != "bert":
        raise ModelError(f"{name} is not a BERT model ({config.get('model_type')!r}).")
    tokenizer = load_json("tokenizer.json")
    model = tokenizer.get("model", {})
    if model.get("type") != "WordPiece":
        raise ModelError(f"{name} has no WordPiece tokenizer in tokenizer.json.")
    weights = read("model.safetensors")
    if weights is None:
        raise ModelError(f"{name} has no model.safetensors.")
    tensors = read_safetensors(weights)

    n_layers = int(config["num_hidden_layers"])
    writer = gguf.GGUFWriter(str(out), "bert")
    writer.add_name(name)
    writer.add_context_length(int(config["max_position_embeddings"]))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_block_count(n_layers)
    writer.add_head_count(int(config["num_attention_heads"]))
    writer.add_layer_norm_eps(float(config.get("layer_norm_eps", 1e-12)))
    writer.add_causal_attention(False)
    writer.add_pooling_type(_pooling(load_json("1_Pooling/config.json")))
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)

    # The vocabulary, id by id; special tokens (added, "special") are control tokens.
    vocab: dict[str, int] = model["vocab"]
    size = max(int(config.get("vocab_size", 0)), max(vocab.values()) + 1)
    tokens = [f"[PAD{i}]" for i in range(size)]
    types = [gguf.TokenType.UNUSED] * size
    for text, i in vocab.items():
        tokens[i], types[i] = text, gguf.TokenType.NORMAL
    for added in tokenizer.get("added_tokens", []):
        if added.get("special"):
            types[added["id"]] = gguf.TokenType.CONTROL
    for i, text in enumerate(tokens):
        if types[i] != gguf.TokenType.CONTROL:
            tokens[i] = text[2:] if text.startswith("##") else "\u2581" + text
    writer.add_token_type_count(int(config.get("type_vocab_size", 1)))
    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = {text: i for text, i in vocab.items()}
    for key, adder in (
        ("[UNK]", writer.add_unk_token_id),
        ("[CLS]", writer.add_bos_token_id),
        ("[SEP]", writer.add_sep_token_id),
        ("[PAD]", writer.add_pad_token_id),
        ("[MASK]", writer.add_mask_token_id),
    ):
        if key in special:
            adder(special[key])
    writer.add_add_bos_token(True)
    writer.add_add_sep_token(True)  # [CLS] text [SEP], as BertTokenizer

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, n_layers)
    for hf_name, array in tensors.items():
        short = hf_name.removeprefix("bert.")
        if short in ("embeddings.position_ids",) or short.startswith(("pooler.", "cls.")):
            continue
        target = names.get_name(short, try_suffixes=(".weight", ".bias"))
        if target is None:
            raise ModelError(f"{name}: no llama.cpp name for the tensor {hf_name}.")
        data = array.astype(np.float32)
        if data.ndim == 2 and not target.startswith("token_types"):
            data = data.astype(np.float16)
        writer.add_tensor(target, data)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def _pooling(config: dict) -> gguf.PoolingType:
    import gguf

    if config.get("pooling_mode_cls_token"):
        return gguf.PoolingType.CLS
    return gguf.PoolingType.MEAN  # sentence-transformers' default
