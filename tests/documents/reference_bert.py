"""A second implementation of all-MiniLM-L6-v2, to check llama.cpp's vectors against: Hugging
Face's own tokenizer (the Rust ``tokenizers``) and a BERT forward pass in numpy, float32, on
the same safetensors weights, with sentence-transformers' mean pooling and normalization."""

from __future__ import annotations

import json
import zipfile

import numpy as np

from assistant.documents import bert_gguf


class ReferenceMiniLM:
    def __init__(self, model_zip: str):
        from tokenizers import Tokenizer

        with zipfile.ZipFile(model_zip) as z:
            self.config = json.loads(z.read("config.json"))
            self.tokenizer = Tokenizer.from_str(z.read("tokenizer.json").decode("utf-8"))
            weights = bert_gguf.read_safetensors(z.read("model.safetensors"))
        self.w = {k: v.astype(np.float32) for k, v in weights.items()}
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(256)  # sentence-transformers' max_seq_length

    def token_ids(self, text: str) -> list[int]:
        return self.tokenizer.encode(text).ids

    def embed(self, text: str) -> np.ndarray:
        w, c = self.w, self.config
        ids = np.array(self.token_ids(text))
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][: len(ids)]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _norm(x, w, "embeddings.LayerNorm", c["layer_norm_eps"])
        heads = c["num_attention_heads"]
        d = c["hidden_size"] // heads
        for i in range(c["num_hidden_layers"]):
            p = f"encoder.layer.{i}."
            q, k, v = (
                _linear(x, w, p + f"attention.self.{n}").reshape(len(ids), heads, d)
                for n in ("query", "key", "value")
            )
            scores = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(d)
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            attn = np.einsum("hqk,khd->qhd", scores, v).reshape(len(ids), -1)
            x = _norm(
                x + _linear(attn, w, p + "attention.output.dense"),
                w,
                p + "attention.output.LayerNorm",
                c["layer_norm_eps"],
            )
            h = _linear(x, w, p + "intermediate.dense")
            h = 0.5 * h * (1 + _erf(h / np.sqrt(2)))  # exact GELU, as BERT's "gelu"
            x = _norm(x + _linear(h, w, p + "output.dense"), w, p + "output.LayerNorm",
                      c["layer_norm_eps"])  # fmt: skip
        pooled = x.mean(0)
        return pooled / np.linalg.norm(pooled)


def _linear(x: np.ndarray, w: dict, name: str) -> np.ndarray:
    return x @ w[name + ".weight"].T + w[name + ".bias"]


def _norm(x: np.ndarray, w: dict, name: str, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w[name + ".weight"] + w[name + ".bias"]


def _erf(x: np.ndarray) -> np.ndarray:
    from math import erf

    return np.vectorize(erf, otypes=[np.float32])(x)
