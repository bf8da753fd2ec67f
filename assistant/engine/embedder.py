"""An embedding model beside the chat model: its own llama.cpp model and context, on the same
inference thread, so indexing documents never takes the chat's model or its KV cache away.

Inputs are packed into batches of up to ``n_batch`` tokens, one sequence per input, and each
sequence's pooled vector is read back (llama.cpp pools as the GGUF says: mean for
all-MiniLM, CLS for bge), then normalized to unit length as OpenAI's and llama-server's are.
An encoder (BERT) sees a whole sequence in one micro-batch, so a batch is also one micro-batch.

Threading: like Engine, an Embedder belongs to the inference thread.
"""

from __future__ import annotations

import ctypes
import logging
import time
from pathlib import Path

import llama_cpp
import numpy as np

from assistant.engine import llama_log
from assistant.engine.llama import _init_backend, _load_failure
from assistant.errors import ModelError, RequestRejected

log = logging.getLogger(__name__)

MAX_SEQUENCES = 32  # inputs in one batch
MAX_BATCH = 2048  # tokens in one batch (and the longest input, where the model allows it)


class Embedder:
    def __init__(self, path: Path, *, n_threads: int):
        _init_backend()
        started = time.perf_counter()
        self.path = path
        params = llama_cpp.llama_model_default_params()
        params.n_gpu_layers = 0  # small models: the GPU stays the chat model's
        llama_log.recent_problems.clear()
        model = llama_cpp.llama_model_load_from_file(str(path).encode("utf-8"), params)
        if not model:
            raise ModelError(_load_failure(path.name))
        self._model = model
        trained = llama_cpp.llama_model_n_ctx_train(model) or 512
        self.n_ctx = min(trained, MAX_BATCH)  # the longest input
        cparams = llama_cpp.llama_context_default_params()
        cparams.embeddings = True
        # One batch at a time, its sequences side by side in one unified cache (a decoder used
        # for embeddings has one; BERT has none): the cache holds one batch, no more.
        cparams.n_batch = cparams.n_ubatch = cparams.n_ctx = max(self.n_ctx, 512)
        cparams.kv_unified = True
        cparams.n_seq_max = MAX_SEQUENCES
        cparams.n_threads = cparams.n_threads_batch = max(1, n_threads)
        ctx = llama_cpp.llama_init_from_model(model, cparams)
        if not ctx:
            llama_cpp.llama_model_free(model)
            raise ModelError(f"llama.cpp could not set up a context for {path.name}.")
        self._ctx = ctx
        if llama_cpp.llama_pooling_type(ctx) == llama_cpp.LLAMA_POOLING_TYPE_NONE:
            llama_cpp.llama_free(ctx)
            llama_cpp.llama_model_free(model)
            raise ModelError(
                f"{path.name} gives one vector per token, not per text (no pooling); it is not "
                "an embedding model."
            )
        self.n_batch = cparams.n_batch
        self.dimensions = llama_cpp.llama_model_n_embd_out(model) or llama_cpp.llama_model_n_embd(
            model
        )
        self._vocab = llama_cpp.llama_model_get_vocab(model)
        self._mem = llama_cpp.llama_get_memory(ctx)
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, MAX_SEQUENCES)
        log.info(
            "Loaded the embedding model %s (%d dimensions, %d tokens at most) in %.2f s",
            path.name,
            self.dimensions,
            self.n_ctx,
            time.perf_counter() - started,
        )

    def tokenize(self, text: str) -> list[int]:
        data = text.encode("utf-8")
        n_max = len(data) + 8
        buf = (llama_cpp.llama_token * n_max)()
        n = llama_cpp.llama_tokenize(self._vocab, data, len(data), buf, n_max, True, False)
        if n < 0:
            buf = (llama_cpp.llama_token * -n)()
            n = llama_cpp.llama_tokenize(self._vocab, data, len(data), buf, -n, True, False)
        return list(buf[: max(n, 0)])

    def truncate(self, tokens: list[int]) -> list[int]:
        """At most the model's length, keeping the closing token the tokenizer added ([SEP])."""
        if len(tokens) <= self.n_ctx:
            return tokens
        return tokens[: self.n_ctx - 1] + tokens[-1:]

    def check(self, tokens: list[int]) -> None:
        if not tokens:
            raise RequestRejected("An input is empty; there is nothing to embed.")
        if len(tokens) > self.n_ctx:
            raise RequestRejected(
                f"An input is {len(tokens):,} tokens; {self.path.name} takes at most "
                f"{self.n_ctx:,}. Split it into shorter texts."
            )

    def embed(self, inputs: list[list[int]]) -> np.ndarray:
        """One batch: as many of ``inputs`` as fit, from the first; returns their unit vectors
        (rows), so the caller passes the rest again."""
        batch, n, taken = self._batch, 0, 0
        for seq, tokens in enumerate(inputs[:MAX_SEQUENCES]):
            if n + len(tokens) > self.n_batch and taken:
                break
            for pos, token in enumerate(tokens):
                batch.token[n] = token
                batch.pos[n] = pos  # type: ignore[call-overload]  # ctypes stubs
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = seq
                batch.logits[n] = True
                n += 1
            taken += 1
        batch.n_tokens = n
        if self._mem:  # a decoder used for embeddings keeps a cache: start each batch clean
            llama_cpp.llama_memory_clear(self._mem, False)
        if llama_cpp.llama_decode(self._ctx, batch) != 0:
            raise ModelError(f"llama.cpp could not embed with {self.path.name}.")
        out = np.empty((taken, self.dimensions), dtype=np.float32)
        for seq in range(taken):
            pointer = llama_cpp.llama_get_embeddings_seq(self._ctx, seq)
            if not pointer:
                raise ModelError(f"{self.path.name} returned no vector.")
            out[seq] = np.ctypeslib.as_array(
                ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), shape=(self.dimensions,)
            )
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def close(self) -> None:
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx:
            llama_cpp.llama_free(self._ctx)
            self._ctx = None
        if self._model:
            llama_cpp.llama_model_free(self._model)
            self._model = None
