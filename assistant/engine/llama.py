"""The inference engine: one llama.cpp model and context, driven through llama.cpp's C API.

Why not ``Llama.create_chat_completion(stream=True)``: it detokenizes the whole reply again for
every token (0.3 ms per token at 100 tokens, 3.2 ms at 3000), guesses a chat format when the model
has none, and cannot be stopped during prompt processing. Here the loop is our own: the prompt is
tokenized once, the KV cache prefix shared with the previous turn is kept, each new token is turned
into bytes and fed to an incremental UTF-8 decoder (flat cost per token), and stop is checked
between tokens and, through llama.cpp's abort callback, inside prompt processing.

Threading: an Engine belongs to one thread, the inference thread: load, generate, count_tokens and
close are all called from it. The only call from elsewhere is ``stop.set()`` on the Event passed
to ``generate``.
"""

from __future__ import annotations

import codecs
import ctypes
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import llama_cpp

from assistant import files, fit, hardware, llama_log
from assistant.chat_format import ChatFormat, fit_messages, merge_turns
from assistant.engine import backends, cpu_probe
from assistant.engine.records import Completion, GenerationParams, LoadedModel
from assistant.errors import (
    AssistantError,
    GenerationError,
    ModelError,
    ModelNotLoaded,
    RequestRejected,
)
from assistant.gguf_info import GGUFInfo, read_gguf_info

log = logging.getLogger(__name__)

LLAMA_TOKEN_NULL = -1
_backend_ready = False


class Engine:
    """One loaded model and its context; see the module docstring for the threading rule."""

    def __init__(self) -> None:
        self._model: llama_cpp.llama_model_p | None = None
        self._ctx: llama_cpp.llama_context_p | None = None
        self._vocab: llama_cpp.llama_vocab_p | None = None
        self._mem: llama_cpp.llama_memory_t | None = None
        self._batch: llama_cpp.llama_batch | None = None
        self._n_batch = 0
        self._n_ctx = 0
        self._n_swa = 0
        self._add_bos = False
        self._bos = LLAMA_TOKEN_NULL
        self._loaded: LoadedModel | None = None
        self._info: GGUFInfo | None = None
        self._format: ChatFormat | None = None
        # Tokens whose keys and values are in the KV cache (sequence 0), in order. The next
        # prompt reuses the longest prefix it shares with these.
        self._kv_tokens: list[int] = []
        self._pieces: dict[int, bytes] = {}
        self._piece_buf = ctypes.create_string_buffer(256)
        self._stop: threading.Event | None = None
        # llama.cpp keeps this function pointer; the reference here keeps it alive.
        self._abort_callback = llama_cpp.ggml_abort_callback(self._should_abort)

    # -- loading -----------------------------------------------------------------------------

    @property
    def model(self) -> LoadedModel | None:
        return self._loaded

    @staticmethod
    def supports_gpu_offload() -> bool:
        """Whether this llama.cpp build can put layers on a GPU."""
        _init_backend()
        return bool(llama_cpp.llama_supports_gpu_offload())

    @property
    def info(self) -> GGUFInfo | None:
        """The loaded model's GGUF header."""
        return self._info

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    def load(
        self,
        path: str | Path,
        *,
        n_ctx: int = 4096,
        n_gpu_layers: int = -1,
        progress: Callable[[float], None] | None = None,
        extra_bufts: bool = True,
        n_threads: int = 0,
    ) -> LoadedModel:
        """Load a GGUF model (closing any previous one); InvalidModelFile or ModelError if not.

        ``extra_bufts`` allows llama.cpp's extra weight buffer types (AMX, CPU repacking); they
        are used only where cpu_probe found them safe on this CPU. ``n_threads`` 0 means the
        physical core count.
        """
        path = Path(path)
        info = read_gguf_info(path)
        self.close()
        _init_backend()
        started = time.perf_counter()

        gpu_build = bool(llama_cpp.llama_supports_gpu_offload())
        if not gpu_build:
            layers = 0
        elif n_gpu_layers < 0:
            # As many layers as the fit estimate says fit in free VRAM at this context size.
            # The context is clamped to the model's training length below: plan for that one.
            planned_ctx = min(n_ctx, info.context_length) if n_ctx > 0 else info.context_length
            planned = fit.plan_gpu_layers(path, planned_ctx or 4096, info=info)
            layers = info.n_layers + 1 if planned < 0 else planned  # + 1: the output layer
        else:
            layers = n_gpu_layers
        params = llama_cpp.llama_model_default_params()
        params.n_gpu_layers = layers
        params.use_extra_bufts = bool(extra_bufts and cpu_probe.extra_bufts_work())
        progress_callback = None
        if progress is not None:

            def on_progress(fraction: float, _data: ctypes.c_void_p) -> bool:
                try:
                    progress(min(max(float(fraction), 0.0), 1.0))
                except Exception:  # noqa: BLE001 - never unwind into C
                    log.exception("Load progress callback failed")
                return True

            progress_callback = llama_cpp.llama_progress_callback(on_progress)
            params.progress_callback = progress_callback

        llama_log.recent_problems.clear()
        model = llama_cpp.llama_model_load_from_file(str(path).encode("utf-8"), params)
        del progress_callback  # llama.cpp calls it only during the load above
        if not model:
            raise ModelError(_load_failure(path.name))

        try:
            ctx, n_ctx = self._new_context(model, n_ctx, n_threads or hardware.math_cores())
        except BaseException:
            llama_cpp.llama_model_free(model)
            raise
        self._model, self._ctx = model, ctx
        self._vocab = llama_cpp.llama_model_get_vocab(model)
        self._mem = llama_cpp.llama_get_memory(ctx)
        self._n_ctx = n_ctx
        self._n_batch = llama_cpp.llama_n_batch(ctx)
        self._batch = llama_cpp.llama_batch_init(self._n_batch, 0, 1)
        self._n_swa = max(0, llama_cpp.llama_model_n_swa(model))
        self._bos = llama_cpp.llama_vocab_bos(self._vocab)
        self._add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self._vocab))
        self._format = ChatFormat(
            info.chat_template,
            bos_token=self._token_text(self._bos),
            eos_token=self._token_text(llama_cpp.llama_vocab_eos(self._vocab)),
        )
        backend, note = _describe_backend(gpu_build, layers, info.n_layers)
        self._info = info
        self._loaded = LoadedModel(
            path=path,
            quantization=info.quantization,
            n_layers=info.n_layers,
            n_ctx=n_ctx,
            n_gpu_layers=min(layers, info.n_layers),
            backend=backend,
            backend_note=note,
            template_note=self._format.note,
            load_seconds=time.perf_counter() - started,
        )
        log.info(
            "Loaded %s (n_ctx %d, %s: %s) in %.2f s",
            path.name,
            n_ctx,
            backend,
            note,
            self._loaded.load_seconds,
        )
        return self._loaded

    def _new_context(
        self, model: llama_cpp.llama_model_p, n_ctx: int, n_threads: int
    ) -> tuple[llama_cpp.llama_context_p, int]:
        trained = llama_cpp.llama_model_n_ctx_train(model)
        if n_ctx <= 0:
            n_ctx = trained or 4096
        elif trained > 0:
            # Past its training length a model degrades into nonsense: never offer more.
            n_ctx = min(n_ctx, trained)
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = params.n_ubatch = min(512, n_ctx)
        params.n_seq_max = 1
        # As llama.cpp's own tools: one thread per physical core for both phases. Hyperthreads
        # share a core's vector units and only add contention.
        params.n_threads = params.n_threads_batch = max(1, n_threads)
        ctx = llama_cpp.llama_init_from_model(model, params)
        if not ctx:
            raise ModelError(
                f"The model loaded, but llama.cpp could not set up a context of {n_ctx:,} "
                "tokens, probably for lack of memory. Try a smaller context size."
            )
        return ctx, llama_cpp.llama_n_ctx(ctx)

    def close(self) -> None:
        """Free the model and its context; the engine can load another afterwards."""
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx:
            llama_cpp.llama_free(self._ctx)
        if self._model:
            llama_cpp.llama_model_free(self._model)
        self._ctx = self._model = self._vocab = self._mem = None
        self._loaded = self._format = self._info = None
        self._n_ctx = 0
        self._kv_tokens = []
        self._pieces = {}

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    # -- saved state -------------------------------------------------------------------------

    def save_state(self, path: str | Path) -> bool:
        """Write the KV cache and its tokens to ``path``, so that another process (the next
        ``assistant chat`` of a conversation) starts with this prefix already evaluated."""
        self._require_model()
        assert self._loaded is not None
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        files.create_private_file(tmp)  # it holds the conversation's tokens
        tokens = (llama_cpp.llama_token * len(self._kv_tokens))(*self._kv_tokens)
        ok = llama_cpp.llama_state_save_file(
            self._ctx, str(tmp).encode("utf-8"), tokens, len(self._kv_tokens)
        )
        if not ok:
            tmp.unlink(missing_ok=True)
            log.warning("Could not save the KV cache to %s", path)
            return False
        files.write_private_json(_state_meta(path), self._state_identity())
        os.replace(tmp, path)
        return True

    def load_state(self, path: str | Path) -> int:
        """Restore a KV cache saved by save_state for this same model and context size.

        Returns the number of tokens restored; 0 when there is none, or it belongs to another
        model, or llama.cpp rejects it (then the cache is simply empty: nothing is lost).
        """
        self._require_model()
        path = Path(path)
        try:
            identity = json.loads(_state_meta(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return 0
        if identity != self._state_identity() or not path.exists():
            return 0
        capacity = self._n_ctx
        tokens = (llama_cpp.llama_token * capacity)()
        count = ctypes.c_size_t(0)
        ok = llama_cpp.llama_state_load_file(
            self._ctx, str(path).encode("utf-8"), tokens, capacity, ctypes.byref(count)
        )
        if not ok:
            log.warning("Ignoring the saved KV cache %s: llama.cpp could not load it", path)
            self._reset_cache()
            return 0
        self._kv_tokens = list(tokens[: count.value])
        return count.value

    def _state_identity(self) -> dict[str, object]:
        assert self._loaded is not None
        model = self._loaded.path
        return {"model": model.name, "size": model.stat().st_size, "n_ctx": self._n_ctx}

    # -- tokens ------------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` is for the loaded model."""
        self._require_model()
        return len(self._tokenize(text.encode("utf-8"), special=False))

    def _require_model(self) -> None:
        if self._ctx is None:
            raise ModelNotLoaded("No model is loaded. Choose a model first.")

    def _tokenize(self, data: bytes, *, special: bool) -> list[int]:
        n_max = len(data) + 8
        buf = (llama_cpp.llama_token * n_max)()
        n = llama_cpp.llama_tokenize(self._vocab, data, len(data), buf, n_max, False, special)
        if n < 0:
            n_max = -n
            buf = (llama_cpp.llama_token * n_max)()
            n = llama_cpp.llama_tokenize(self._vocab, data, len(data), buf, n_max, False, special)
            if n < 0:
                raise GenerationError("llama.cpp could not tokenize the text.")
        return buf[:n]

    def _prompt_tokens_of(self, text: str) -> list[int]:
        # Special tokens in the rendered template (<|im_start|>, <start_of_turn>) are parsed as
        # such; BOS is added only if the model wants one and the template did not write it.
        tokens = self._tokenize(text.encode("utf-8"), special=True)
        if self._add_bos and self._bos != LLAMA_TOKEN_NULL and tokens[:1] != [self._bos]:
            tokens.insert(0, self._bos)
        return tokens

    def _piece(self, token: int) -> bytes:
        piece = self._pieces.get(token)
        if piece is None:
            buf = self._piece_buf
            n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
            piece = buf.raw[: max(n, 0)]
            self._pieces[token] = piece
        return piece

    def _token_text(self, token: int) -> str:
        if token == LLAMA_TOKEN_NULL:
            return ""
        text = llama_cpp.llama_vocab_get_text(self._vocab, token)
        return text.decode("utf-8", errors="replace") if text else ""

    # -- generation --------------------------------------------------------------------------

    def generate(
        self,
        messages: list[dict[str, str]],
        params: GenerationParams = GenerationParams(),  # noqa: B008 - frozen, shared safely
        *,
        on_text: Callable[[str], None] | None = None,
        stop: threading.Event | None = None,
        prompt: str | None = None,
        truncate: bool = True,
        on_prompt: Callable[[int, int], None] | None = None,
    ) -> Completion:
        """Reply to ``messages``, streaming text pieces to ``on_text``; see the contract.

        ``prompt`` is raw text to continue instead (``/v1/completions``; no chat template).
        With ``truncate`` old turns are dropped to fit the context; without it a prompt that
        does not fit raises RequestRejected before anything runs. ``on_prompt(n_prompt,
        n_cached)`` is called once the prompt is accepted, before it is evaluated.
        """
        self._require_model()
        assert self._format is not None and self._loaded is not None
        started = time.perf_counter()
        stop = stop if stop is not None else threading.Event()
        # A raw prompt is continued as it is: the chat format's turn markers are no stops there.
        own = self._format.stop_strings if prompt is None else ()
        stops = (*own, *params.stop)
        run = _Run(started, _TextStream(stops, on_text))
        try:
            finish = self._generate(messages, params, stop, run, prompt, truncate, on_prompt)
            error = None
        except RequestRejected:
            raise
        except AssistantError as e:
            log.warning("Generation failed: %s", e)
            finish, error = "error", str(e)
            self._reset_cache()
        except Exception as e:  # noqa: BLE001 - a reply must end with a result, not a crash
            log.exception("Generation failed")
            finish, error = "error", f"Generation failed: {e}"
            self._reset_cache()
        finally:
            self._stop = None
        try:
            run.stream.finish()
        except Exception:  # noqa: BLE001 - on_text raising must not lose the result
            log.exception("on_text failed")
        now = time.perf_counter()
        first = run.first_token_at if run.first_token_at is not None else now
        gen_seconds = now - (run.prompt_done_at or now)
        return Completion(
            text=run.stream.text,
            finish_reason=finish,
            prompt_tokens=run.prompt_tokens,
            completion_tokens=run.completion_tokens,
            cached_tokens=run.cached_tokens,
            ttft_s=first - started,
            duration_s=now - started,
            tokens_per_s=run.completion_tokens / gen_seconds if gen_seconds > 0 else 0.0,
            context_tokens=len(self._kv_tokens),
            trimmed_messages=run.trimmed_messages,
            model_file=self._loaded.path.name,
            error=error,
        )

    def _generate(
        self,
        messages: list[dict[str, str]],
        params: GenerationParams,
        stop: threading.Event,
        run: _Run,
        raw: str | None,
        truncate: bool,
        on_prompt: Callable[[int, int], None] | None,
    ) -> str:
        assert self._format is not None
        if raw is not None:
            prompt = self._prompt_tokens_of(raw)
        elif truncate:
            prompt, run.trimmed_messages = self._fit_prompt(
                merge_turns(messages), params.max_tokens
            )
        else:
            prompt = self._prompt_tokens_of(self._format.render(merge_turns(messages)))
        if not prompt:
            raise GenerationError("The chat template produced an empty prompt.")
        if len(prompt) >= self._n_ctx:
            raise RequestRejected(
                f"The prompt is {len(prompt):,} tokens, more than the model's context of "
                f"{self._n_ctx:,} tokens allows. Shorten it or load the model with a larger "
                "context."
            )
        run.prompt_tokens = len(prompt)
        run.cached_tokens = self._reuse_prefix(prompt)
        if on_prompt is not None:
            on_prompt(run.prompt_tokens, run.cached_tokens)
        if not self._eval_prompt(prompt, run.cached_tokens, stop):
            return "cancelled"
        run.prompt_done_at = time.perf_counter()

        ctx, vocab, stream = self._ctx, self._vocab, run.stream
        sample, is_eog = llama_cpp.llama_sampler_sample, llama_cpp.llama_vocab_is_eog
        sampler = self._new_sampler(params)
        try:
            while True:
                if stop.is_set():
                    return "cancelled"
                token = sample(sampler, ctx, -1)
                if run.first_token_at is None:
                    run.first_token_at = time.perf_counter()
                if is_eog(vocab, token) and not params.ignore_eos:
                    return "stop"
                run.completion_tokens += 1
                if stream.feed(self._piece(token)):
                    return "stop"
                if run.completion_tokens >= params.max_tokens:
                    return "length"
                if len(self._kv_tokens) >= self._n_ctx:
                    return "length"  # the context is full: nowhere to put this token
                self._decode_one(token)
        finally:
            llama_cpp.llama_sampler_free(sampler)

    def _fit_prompt(
        self, messages: Sequence[dict[str, str]], max_tokens: int
    ) -> tuple[list[int], int]:
        """Render and tokenize, dropping old turns (and then the start of the last message) so
        the prompt leaves room for the reply: max_tokens, but never more than half the context."""
        assert self._format is not None
        fmt = self._format
        budget = self._n_ctx - max(1, min(max_tokens, self._n_ctx // 2))
        tokenized: dict[str, list[int]] = {}  # rendered text -> tokens: tokenize each once

        def tokens_of(msgs: Sequence[dict[str, str]]) -> list[int]:
            text = fmt.render(msgs)
            if text not in tokenized:
                tokenized[text] = self._prompt_tokens_of(text)
            return tokenized[text]

        fitted, dropped = fit_messages(messages, lambda msgs: len(tokens_of(msgs)), budget)
        tokens = tokens_of(fitted)
        if len(tokens) <= budget:
            return tokens, dropped

        # Even the system prompt and the last message alone are too long: cut the beginning of
        # the last message, which is usually a long paste whose end carries the question.
        last = dict(fitted[-1])
        for _ in range(4):
            over = len(tokens) - budget
            content = self._tokenize(last["content"].encode("utf-8"), special=False)
            # A small margin: the cut text may tokenize a little differently on its own.
            keep = content[over + 8 :] if over + 8 < len(content) else []
            last["content"] = b"".join(self._piece(t) for t in keep).decode(
                "utf-8", errors="ignore"
            )
            tokens = tokens_of([*fitted[:-1], last])
            if len(tokens) <= budget or not keep:
                break
        if len(tokens) > budget:
            # A system prompt longer than the context: keep the end, where the reply starts.
            tokens = tokens[-budget:]
        log.info("The last message was cut to fit the context (%d tokens)", len(tokens))
        return tokens, dropped

    def _reuse_prefix(self, prompt: list[int]) -> int:
        """Keep the KV cache entries this prompt shares with the cache; returns how many."""
        kv = self._kv_tokens
        n = 0
        limit = min(len(kv), len(prompt))
        while n < limit and kv[n] == prompt[n]:
            n += 1
        if n == len(prompt):
            n -= 1  # the last prompt token is evaluated again: its logits give the first token
        if n < len(kv):
            if n > 0 and self._n_swa > 0:
                # A sliding-window cache keeps only the last n_swa positions: rewinding is
                # possible only if the window before the cut point is still there.
                pos_min = llama_cpp.llama_memory_seq_pos_min(self._mem, 0)
                if pos_min > max(0, n - self._n_swa):
                    n = 0
            if n == 0 or not llama_cpp.llama_memory_seq_rm(self._mem, 0, n, -1):
                llama_cpp.llama_memory_clear(self._mem, True)
                n = 0
            del kv[n:]
        return n

    def _eval_prompt(self, prompt: list[int], start: int, stop: threading.Event) -> bool:
        """Evaluate prompt[start:] in batches; False if stopped (the cache stays consistent)."""
        batch, n_batch = self._batch, self._n_batch
        assert batch is not None
        self._stop = stop
        # The abort callback runs between graph nodes, so a long prompt stops within
        # milliseconds. It is set only here: per generated token its cost would add up.
        llama_cpp.llama_set_abort_callback(self._ctx, self._abort_callback, None)
        try:
            i = start
            while i < len(prompt):
                if stop.is_set():
                    return False
                chunk = prompt[i : i + n_batch]
                last_chunk = i + len(chunk) == len(prompt)
                for j, token in enumerate(chunk):
                    batch.token[j] = token
                    batch.pos[j] = i + j  # type: ignore[call-overload]  # ctypes stubs
                    batch.n_seq_id[j] = 1
                    batch.seq_id[j][0] = 0
                    batch.logits[j] = 0
                if last_chunk:
                    batch.logits[len(chunk) - 1] = 1
                batch.n_tokens = len(chunk)
                result = llama_cpp.llama_decode(self._ctx, batch)
                if result != 0:
                    # Aborted or failed: batches that got through stay in the cache; drop them
                    # so the cache holds exactly self._kv_tokens.
                    if not llama_cpp.llama_memory_seq_rm(self._mem, 0, len(self._kv_tokens), -1):
                        self._reset_cache()  # (recurrent memory cannot cut part of a sequence)
                    if result == 2 or stop.is_set():
                        return False
                    raise GenerationError(_decode_failure(result, "the prompt"))
                self._kv_tokens.extend(chunk)
                i += len(chunk)
            return True
        finally:
            llama_cpp.llama_set_abort_callback(self._ctx, _NO_ABORT, None)

    def _decode_one(self, token: int) -> None:
        batch = self._batch
        assert batch is not None
        batch.token[0] = token
        batch.pos[0] = len(self._kv_tokens)  # type: ignore[call-overload]
        batch.n_seq_id[0] = 1
        batch.seq_id[0][0] = 0
        batch.logits[0] = 1
        batch.n_tokens = 1
        result = llama_cpp.llama_decode(self._ctx, batch)
        if result != 0:
            raise GenerationError(_decode_failure(result, "the reply"))
        self._kv_tokens.append(token)

    def _should_abort(self, _data: ctypes.c_void_p) -> bool:
        stop = self._stop
        return stop is not None and stop.is_set()

    def _new_sampler(self, params: GenerationParams) -> llama_cpp.llama_sampler_p:
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())

        def add(sampler: llama_cpp.llama_sampler_p) -> None:
            llama_cpp.llama_sampler_chain_add(chain, sampler)

        if params.top_k > 0:
            add(llama_cpp.llama_sampler_init_top_k(params.top_k))
        if params.repeat_penalty != 1.0:
            # After top-k: penalties scan every candidate, and a vocabulary can be 262k tokens.
            n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
            add(
                llama_cpp.llama_sampler_init_penalties(n_vocab, 64, params.repeat_penalty, 0.0, 0.0)
            )
        if params.temperature <= 0:
            add(llama_cpp.llama_sampler_init_greedy())
            return chain
        if params.top_p < 1.0:
            add(llama_cpp.llama_sampler_init_top_p(params.top_p, 1))
        if params.min_p > 0.0:
            add(llama_cpp.llama_sampler_init_min_p(params.min_p, 1))
        add(llama_cpp.llama_sampler_init_temp(params.temperature))
        seed = params.seed if params.seed is not None else llama_cpp.LLAMA_DEFAULT_SEED
        add(llama_cpp.llama_sampler_init_dist(seed & 0xFFFFFFFF))
        return chain

    def _reset_cache(self) -> None:
        if self._mem is not None:
            llama_cpp.llama_memory_clear(self._mem, True)
        self._kv_tokens = []


_NO_ABORT = ctypes.cast(None, llama_cpp.ggml_abort_callback)  # type: ignore[arg-type]


def _state_meta(path: Path) -> Path:
    """The small JSON file beside a saved state naming the model it belongs to."""
    return path.with_name(path.name + ".json")


@dataclass
class _Run:
    """Bookkeeping of one generate() call, kept whatever way it ends."""

    started: float
    stream: _TextStream
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    trimmed_messages: int = 0
    prompt_done_at: float | None = None
    first_token_at: float | None = None


class _TextStream:
    """Token bytes in, reply text out.

    Never splits a UTF-8 character, cuts the reply at the first stop string without emitting any
    of it, and trims whitespace at both ends (a held-back space is emitted once text follows).
    Per-token work depends on the piece and the stop strings, not on the reply's length.
    """

    def __init__(self, stop_strings: Sequence[str], on_text: Callable[[str], None] | None):
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stops = tuple(s for s in stop_strings if s)
        self._longest = max((len(s) for s in self._stops), default=0)
        self._on_text = on_text
        self._pending = ""  # decoded but not emitted: whitespace and a possible stop's beginning
        self._parts: list[str] = []
        self._started = False
        self._done = False

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def feed(self, data: bytes) -> bool:
        """Add a token's bytes; True when a stop string completed (the reply ends there)."""
        new = self._decoder.decode(data)
        if not new:
            return False
        pending = self._pending + new
        if self._stops:
            # A stop string not found before must end in the new text.
            window = max(0, len(pending) - len(new) - self._longest + 1)
            cuts = [i for s in self._stops if (i := pending.find(s, window)) >= 0]
            if cuts:
                self._pending = pending[: min(cuts)]
                self.finish()
                return True
        held = self._stop_prefix_length(pending)
        ready, rest = pending[: len(pending) - held], pending[len(pending) - held :]
        if not self._started:
            ready = ready.lstrip()
        body = ready.rstrip()
        if body:
            self._emit(body)
        self._pending = ready[len(body) :] + rest
        return False

    def finish(self) -> None:
        """End of the reply: emit what was held back, less trailing whitespace."""
        if self._done:
            return
        self._done = True
        tail = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        if not self._started:
            tail = tail.lstrip()
        tail = tail.rstrip()
        if tail:
            self._emit(tail)

    def _emit(self, text: str) -> None:
        self._started = True
        self._parts.append(text)
        if self._on_text is not None:
            self._on_text(text)

    def _stop_prefix_length(self, text: str) -> int:
        """Length of the longest end of ``text`` that a stop string begins with."""
        best = 0
        for stop in self._stops:
            for k in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:k]):
                    best = k
                    break
        return best


def _init_backend() -> None:
    global _backend_ready
    llama_log.install()
    if not _backend_ready:
        backends.ensure_loaded()
        llama_cpp.llama_backend_init()
        _backend_ready = True


def _load_failure(name: str) -> str:
    problems = list(llama_log.recent_problems)
    errors = [line for line in problems if "error" in line.lower()]
    reason = (errors or problems or [""])[-1]
    # llama.cpp's lines look like "llama_model_load: error loading model: <why>".
    reason = reason.split("error loading model:")[-1].strip().rstrip(".")
    sentence = f"llama.cpp could not load {name}"
    if reason:
        return f"{sentence}: {reason}. The file may be damaged, or made for a newer llama.cpp."
    return f"{sentence}. The file may be damaged, or made for a newer llama.cpp."


def _decode_failure(result: int, what: str) -> str:
    if result == 1:
        return f"llama.cpp found no room in the context for {what}; start a new chat."
    return f"llama.cpp failed while evaluating {what} (error {result})."


def _describe_backend(gpu_build: bool, layers: int, n_layers: int) -> tuple[str, str]:
    if not gpu_build:
        return "CPU", "This llama.cpp build has no GPU support; running on CPU."
    gpus = list(hardware.detect().devices)
    if layers == 0:
        return "CPU", "GPU offload is off (0 layers); running on CPU."
    if not gpus:
        # A GPU build with devices hidden from us (or none at all): say what we know.
        return "GPU", (
            f"This llama.cpp build supports GPU offload; {min(layers, n_layers)} of "
            f"{n_layers} layers were asked to run on the GPU."
        )
    gpu = gpus[0]
    where = f"{gpu.description or gpu.name} ({gpu.backend or gpu.name})"
    if layers >= n_layers:
        return gpu.backend or gpu.name, f"All {n_layers} layers run on {where}."
    return gpu.backend or gpu.name, (
        f"{layers} of {n_layers} layers run on {where}; the rest on CPU."
    )
