"""The inference engine: one llama.cpp model and context, driven through llama.cpp's C API.

Why not ``Llama.create_chat_completion(stream=True)``: it detokenizes the whole reply again for
every token (0.3 ms per token at 100 tokens, 3.2 ms at 3000), guesses a chat format when the model
has none, and cannot be stopped during prompt processing. Here the loop is our own: the prompt is
tokenized once, the KV cache prefix shared with the previous turn is kept, each new token is turned
into bytes and fed to an incremental UTF-8 decoder (flat cost per token), and stop is checked
between tokens and, through llama.cpp's abort callback, inside prompt processing.

The context has one sequence per slot; ``batch.Scheduler`` serves many requests at once in it
(continuous batching), and ``generate`` is one request served alone.

Threading: an Engine belongs to one thread, the inference thread: load, generate, count_tokens,
the scheduler's steps and close are all called from it. The only call from elsewhere is
``stop.set()`` on a request's Event.

Over 400 lines: the part of llama.cpp's C API we use, in one place (model, context, samplers, KV
per sequence, the abort callback), so that no other module calls it.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import llama_cpp

from assistant import files
from assistant.engine import cpu_probe, llama_log
from assistant.engine.batch import Request, Scheduler, run_one
from assistant.engine.chat_format import ChatFormat, fit_messages, merge_turns
from assistant.errors import (
    GenerationError,
    ModelError,
    ModelNotLoaded,
    RequestRejected,
)
from assistant.hardware import backends, machine
from assistant.models import fit, library
from assistant.models.gguf_info import GGUFInfo, read_gguf_info
from assistant.records import Completion, GenerationParams, LoadedModel
from assistant.tools import calls

log = logging.getLogger(__name__)

LLAMA_TOKEN_NULL = -1
MAX_SLOTS = 256  # llama.cpp's LLAMA_MAX_SEQ
_backend_ready = False


class Engine:
    """One loaded model and its context; see the module docstring for the threading rule."""

    def __init__(self) -> None:
        self._model: llama_cpp.llama_model_p | None = None
        self._ctx: llama_cpp.llama_context_p | None = None
        self._vocab: llama_cpp.llama_vocab_p | None = None
        self._mem: llama_cpp.llama_memory_t | None = None
        self._scheduler: Scheduler | None = None
        self._n_ctx = 0  # per sequence: what one reply's prompt and text may fill
        self._n_swa = 0
        self._add_bos = False
        self._bos = LLAMA_TOKEN_NULL
        self._loaded: LoadedModel | None = None
        self._info: GGUFInfo | None = None
        self._format: ChatFormat | None = None
        self._pieces: dict[int, bytes] = {}
        # Tool-call markers that are control tokens of this vocabulary (text -> token).
        self._marker_tokens: dict[str, int] = {}
        self._piece_buf = ctypes.create_string_buffer(256)

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
        n_slots: int = 1,
    ) -> LoadedModel:
        """Load a GGUF model (closing any previous one); InvalidModelFile or ModelError if not.

        ``n_ctx`` is the context of each of ``n_slots`` sequences served at once; the KV cache
        holds ``n_ctx * n_slots`` tokens, split per sequence (a unified cache was measured slower
        with many sequences: see fit.MAX_AUTO_SLOTS).
        ``extra_bufts`` allows llama.cpp's extra weight buffer types (AMX, CPU repacking); they
        are used only where cpu_probe found them safe on this CPU. ``n_threads`` 0 means the
        physical core count.
        """
        n_slots = max(1, min(n_slots, MAX_SLOTS))
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
            planned = fit.plan_gpu_layers(
                info,
                (planned_ctx or 4096) * n_slots,
                machine.detect(),
                weights_bytes=library.weights_bytes(path, info),
            )
            layers = info.n_layers + 1 if planned < 0 else planned  # + 1: the output layer
        else:
            layers = n_gpu_layers
        params = llama_cpp.llama_model_default_params()
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

        # When the weights or the context do not fit where the estimate put them (another
        # program took video memory, a driver counts differently), half the layers, then none:
        # a slower model beats no model.
        planned_layers = layers
        attempts = [layers, max(1, min(layers, info.n_layers) // 2), 0] if layers > 0 else [0]
        for attempt in dict.fromkeys(attempts):  # in order, without repeats
            layers = params.n_gpu_layers = attempt
            llama_log.recent_problems.clear()
            model = llama_cpp.llama_model_load_from_file(str(path).encode("utf-8"), params)
            try:
                if not model:
                    raise ModelError(_load_failure(path.name))
                ctx, n_ctx = self._new_context(
                    model, n_ctx, n_threads or machine.math_cores(), n_slots
                )
                break
            except ModelError:
                if model:
                    llama_cpp.llama_model_free(model)
                if attempt == 0:
                    raise
                log.warning("%s did not load with %d layers on the GPU", path.name, attempt)
            except BaseException:
                if model:
                    llama_cpp.llama_model_free(model)
                raise
        del progress_callback  # llama.cpp calls it only during the loads above
        self._model, self._ctx = model, ctx
        self._vocab = llama_cpp.llama_model_get_vocab(model)
        self._mem = llama_cpp.llama_get_memory(ctx)
        self._n_ctx = n_ctx
        self._scheduler = Scheduler(self, n_slots, n_ctx, llama_cpp.llama_n_batch(ctx))
        self._n_swa = max(0, llama_cpp.llama_model_n_swa(model))
        self._bos = llama_cpp.llama_vocab_bos(self._vocab)
        self._add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self._vocab))
        self._format = ChatFormat(
            info.chat_template,
            bos_token=self._token_text(self._bos),
            eos_token=self._token_text(llama_cpp.llama_vocab_eos(self._vocab)),
        )
        self._marker_tokens = self._control_tokens(calls.MARKERS)
        backend, note = _describe_backend(gpu_build, layers, info.n_layers)
        if layers != planned_layers:
            asked = min(planned_layers, info.n_layers)
            refused = f"It did not fit in video memory with {asked} of {info.n_layers} layers"
            if layers == 0:
                note = f"{refused}, nor with fewer; running on the CPU."
            else:
                note = f"{refused}. {note}"
        self._info = info
        self._loaded = LoadedModel(
            path=path,
            quantization=info.quantization,
            n_layers=info.n_layers,
            n_ctx=n_ctx,
            n_slots=n_slots,
            n_gpu_layers=min(layers, info.n_layers),
            backend=backend,
            backend_note=note,
            template_note=self._format.note,
            load_seconds=time.perf_counter() - started,
        )
        log.info(
            "Loaded %s (n_ctx %d x %d slots, %s: %s) in %.2f s",
            path.name,
            n_ctx,
            n_slots,
            backend,
            note,
            self._loaded.load_seconds,
        )
        return self._loaded

    def _new_context(
        self,
        model: llama_cpp.llama_model_p,
        n_ctx: int,
        n_threads: int,
        n_slots: int,
    ) -> tuple[llama_cpp.llama_context_p, int]:
        """A context of ``n_slots`` sequences; returns it and each sequence's context."""
        trained = llama_cpp.llama_model_n_ctx_train(model)
        if n_ctx <= 0:
            n_ctx = trained or 4096
        elif trained > 0:
            # Past its training length a model degrades into nonsense: never offer more.
            n_ctx = min(n_ctx, trained)
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx * n_slots
        # Room for every slot's next token plus prompt chunks in one batch.
        params.n_batch = params.n_ubatch = max(min(512, n_ctx * n_slots), n_slots)
        params.n_seq_max = n_slots
        # One cache per sequence, as llama-server's default. Measured with llama-batched-bench
        # (SmolLM2, 15-token prompts, 64 tokens, AMD EPYC with AVX2, 2 rounds): a unified
        # cache prompts 16 new sequences faster (T_PP 0.98-1.40 s against 1.32-1.57 s) but
        # generates slower at 1 sequence (67-68 against 95-96 tokens/s) and at 64 (69-73
        # against 140-149).
        params.kv_unified = False
        # As llama.cpp's own tools: one thread per physical core for both phases. Hyperthreads
        # share a core's vector units and only add contention.
        params.n_threads = params.n_threads_batch = max(1, n_threads)
        ctx = llama_cpp.llama_init_from_model(model, params)
        if not ctx:
            slots = f" for each of {n_slots} parallel slots" if n_slots > 1 else ""
            raise ModelError(
                f"The model loaded, but llama.cpp could not set up a context of {n_ctx:,} "
                f"tokens{slots}, probably for lack of memory. Try a smaller context size"
                + (" or fewer slots." if n_slots > 1 else ".")
            )
        return ctx, llama_cpp.llama_n_ctx_seq(ctx)

    def close(self) -> None:
        """Free the model and its context; the engine can load another afterwards."""
        if self._scheduler is not None:
            self._scheduler.close()  # any reply still running ends as cancelled
            self._scheduler = None
        if self._ctx:
            llama_cpp.llama_free(self._ctx)
        if self._model:
            llama_cpp.llama_model_free(self._model)
        self._ctx = self._model = self._vocab = self._mem = None
        self._loaded = self._format = self._info = None
        self._n_ctx = 0
        self._pieces = {}
        self._marker_tokens = {}

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    # -- saved state -------------------------------------------------------------------------

    def save_state(
        self, path: str | Path, seq_id: int = 0, tokens: list[int] | None = None
    ) -> bool:
        """Write one sequence's KV cache and its tokens to ``path``, so that another process (the
        next ``assistant chat`` of a conversation) starts with this prefix already evaluated."""
        self._require_model()
        assert self._loaded is not None and self._scheduler is not None
        if tokens is None:
            tokens = self._scheduler.slots[seq_id].tokens
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        files.create_private_file(tmp)  # it holds the conversation's tokens
        array = (llama_cpp.llama_token * len(tokens))(*tokens)
        written = llama_cpp.llama_state_seq_save_file(
            self._ctx, str(tmp).encode("utf-8"), seq_id, array, len(tokens)
        )
        if not written:
            tmp.unlink(missing_ok=True)
            log.warning("Could not save the KV cache to %s", path)
            return False
        files.write_private_json(_state_meta(path), self._state_identity())
        os.replace(tmp, path)
        return True

    def load_state(self, path: str | Path, seq_id: int = 0) -> list[int]:
        """Restore into sequence ``seq_id`` a KV cache saved by save_state for this same model
        and context size; returns the tokens it holds.

        An empty list when there is none, or it belongs to another model, or llama.cpp rejects
        it (the sequence is then simply empty: nothing is lost).
        """
        self._require_model()
        path = Path(path)
        mem = self._mem
        llama_cpp.llama_memory_seq_rm(mem, seq_id, 0, -1)
        try:
            identity = json.loads(_state_meta(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        if identity != self._state_identity() or not path.exists():
            return []
        capacity = self._n_ctx
        tokens = (llama_cpp.llama_token * capacity)()
        count = ctypes.c_size_t(0)
        read = llama_cpp.llama_state_seq_load_file(
            self._ctx, str(path).encode("utf-8"), seq_id, tokens, capacity, ctypes.byref(count)
        )
        if not read:
            log.warning("Ignoring the saved KV cache %s: llama.cpp could not load it", path)
            llama_cpp.llama_memory_seq_rm(mem, seq_id, 0, -1)
            return []
        return list(tokens[: count.value])

    def _state_identity(self) -> dict[str, object]:
        assert self._loaded is not None
        model = self._loaded.path
        return {
            "model": model.name,
            "size": model.stat().st_size,
            "n_ctx": self._n_ctx,
            "format": "seq",  # one sequence's state (files of whole contexts are not read)
        }

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

    def _control_tokens(self, texts: tuple[str, ...]) -> dict[str, int]:
        """Those of ``texts`` that are one control token here (a reply's text leaves them out)."""
        found = {}
        for text in texts:
            ids = self._tokenize(text.encode("utf-8"), special=True)
            if len(ids) == 1 and not self.piece(ids[0]):
                found[text] = ids[0]
        return found

    def piece(self, token: int, *, tools: bool = False) -> bytes:
        """A token's bytes (cached: the same tokens come back all the time). With ``tools`` the
        control tokens that mark tool calls are written too, for the calls to be read back."""
        if tools and self._marker_tokens:
            for text, marker in self._marker_tokens.items():
                if marker == token:
                    return text.encode("utf-8")
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

    def is_end_of_generation(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))

    def _token_text(self, token: int) -> str:
        if token == LLAMA_TOKEN_NULL:
            return ""
        text = llama_cpp.llama_vocab_get_text(self._vocab, token)
        return text.decode("utf-8", errors="replace") if text else ""

    # -- what the scheduler uses ---------------------------------------------------------------

    @property
    def scheduler(self) -> Scheduler:
        self._require_model()
        assert self._scheduler is not None
        return self._scheduler

    @property
    def context(self) -> llama_cpp.llama_context_p:
        assert self._ctx is not None
        return self._ctx

    @property
    def memory(self) -> llama_cpp.llama_memory_t:
        assert self._mem is not None
        return self._mem

    @property
    def n_swa(self) -> int:
        return self._n_swa

    @property
    def model_file(self) -> str:
        return self._loaded.path.name if self._loaded else ""

    @property
    def opens_thinking(self) -> bool:
        """Whether the chat template opens a <think> itself (the reply starts inside it)."""
        return self._format.opens_thinking if self._format else False

    @property
    def stop_strings(self) -> tuple[str, ...]:
        """The chat format's own stops (its turn markers)."""
        return self._format.stop_strings if self._format else ()

    def prompt_tokens(
        self,
        messages: list[dict[str, str]],
        params: GenerationParams,
        raw: str | None,
        truncate: bool,
        n_ctx: int,
    ) -> tuple[list[int], int]:
        """The prompt's tokens and how many old messages were dropped to fit ``n_ctx``.

        ``raw`` is text to continue as it is (no template). With ``truncate`` old turns are
        dropped to fit; without it a prompt that does not fit raises RequestRejected.
        """
        self._require_model()
        assert self._format is not None
        trimmed = 0
        tools = None
        if raw is None and (
            params.tools is not None
            or any(m.get("role") == "tool" or m.get("tool_calls") for m in messages)
        ):
            # Tools offered, or a history with tool calls in it (tool_choice "none" included):
            # in the template's own format when it knows tools, else written out as text.
            request = calls.ToolRequest.from_json(params.tools) if params.tools else None
            messages, tools = calls.for_template(list(messages), request, self._tool_dialect)
        if raw is not None:
            prompt = self._prompt_tokens_of(raw)
        elif truncate:
            prompt, trimmed = self._fit_prompt(
                merge_turns(messages), params.max_tokens, n_ctx, tools
            )
        else:
            prompt = self._prompt_tokens_of(self._format.render(merge_turns(messages), tools))
        if not prompt:
            raise GenerationError("The chat template produced an empty prompt.")
        if len(prompt) >= n_ctx:
            raise RequestRejected(
                f"The prompt is {len(prompt):,} tokens, more than the model's context of "
                f"{n_ctx:,} tokens allows. Shorten it or load the model with a larger "
                "context."
            )
        return prompt, trimmed

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
    ) -> Completion:
        """Reply to ``messages`` alone (one sequence), streaming text pieces to ``on_text``.

        ``prompt`` is raw text to continue instead (``/v1/completions``; no chat template).
        A prompt that cannot fit raises RequestRejected before anything runs; every other
        failure ends the reply with finish reason "error", keeping the text so far. The engine
        process serves many requests at once through ``scheduler`` instead.
        """
        self._require_model()
        request = Request(
            messages,
            params,
            prompt=prompt,
            truncate=truncate,
            on_text=on_text,
            stop=stop if stop is not None else threading.Event(),
        )
        return run_one(self.scheduler, request)

    def _fit_prompt(
        self,
        messages: Sequence[dict[str, str]],
        max_tokens: int,
        n_ctx: int,
        tools: list[dict[str, Any]] | None = None,
    ) -> tuple[list[int], int]:
        """Render and tokenize, dropping old turns (and then the start of the last message) so
        the prompt leaves room for the reply: max_tokens, but never more than half the context."""
        assert self._format is not None
        fmt = self._format
        budget = n_ctx - max(1, min(max_tokens, n_ctx // 2))
        tokenized: dict[str, list[int]] = {}  # rendered text -> tokens: tokenize each once

        def tokens_of(msgs: Sequence[dict[str, str]]) -> list[int]:
            text = fmt.render(msgs, tools)
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
            last["content"] = b"".join(self.piece(t) for t in keep).decode("utf-8", errors="ignore")
            tokens = tokens_of([*fitted[:-1], last])
            if len(tokens) <= budget or not keep:
                break
        if len(tokens) > budget:
            # A system prompt longer than the context: keep the end, where the reply starts.
            tokens = tokens[-budget:]
        log.info("The last message was cut to fit the context (%d tokens)", len(tokens))
        return tokens, dropped

    @property
    def _tool_dialect(self) -> str | None:
        """How this model writes tool calls; None when its template knows no tools."""
        if self._format is None or not self._format.knows_tools:
            return None
        return calls.dialect_of(self._format.template_source)

    def _grammar_of(self, params: GenerationParams, chat: bool) -> calls.Grammar | None:
        """The grammar a reply follows: the request's own, else its tools' calls. After a
        ``<think>`` the template opened, a grammar that holds the whole reply starts with its
        close (a rule of its own over the grammar's root: the rules stay as they came)."""
        opened = chat and self.opens_thinking
        if params.grammar:
            found = calls.Grammar(params.grammar)
        elif params.tools:
            request = calls.ToolRequest.from_json(params.tools)
            dialect = self._tool_dialect or calls.HERMES
            found = request.grammar(dialect, self._marker_tokens, thinking_opened=opened)
        else:
            return None
        if opened and not found.lazy:
            root = "assistant-closed-think"
            closed = f'\n{root} ::= "</think>" [ \\n]* {found.root}\n'
            found = calls.Grammar(found.gbnf + closed, root=root)
        return found

    def new_sampler(
        self, params: GenerationParams, *, chat: bool = False
    ) -> llama_cpp.llama_sampler_p:
        """A sampler chain for one request (the caller frees it); ``chat``: a reply rendered
        by the chat template, not a raw completion."""
        held = self._grammar_of(params, chat)  # first: it may refuse the request
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())

        def add(sampler: llama_cpp.llama_sampler_p) -> None:
            llama_cpp.llama_sampler_chain_add(chain, sampler)

        if held is not None:
            # First: whatever follows picks among the tokens the grammar allows.
            gbnf, root = held.gbnf.encode("utf-8"), held.root.encode("utf-8")
            if held.lazy:  # from where a call begins
                patterns = (ctypes.c_char_p * len(held.patterns))(
                    *(p.encode("utf-8") for p in held.patterns)
                )
                tokens = (llama_cpp.llama_token * len(held.tokens))(*held.tokens)
                grammar = llama_cpp.llama_sampler_init_grammar_lazy_patterns(
                    self._vocab, gbnf, root,
                    patterns, len(held.patterns), tokens, len(held.tokens),
                )  # fmt: skip
            else:
                grammar = llama_cpp.llama_sampler_init_grammar(self._vocab, gbnf, root)
            if not grammar:
                llama_cpp.llama_sampler_free(chain)
                problems = [line for line in llama_log.recent_problems if "parse" in line]
                raise RequestRejected(
                    "The grammar could not be parsed"
                    + (f": {problems[-1].strip()}" if problems else ".")
                )
            add(grammar)

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


def _state_meta(path: Path) -> Path:
    """The small JSON file beside a saved state naming the model it belongs to."""
    return path.with_name(path.name + ".json")


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


def _describe_backend(gpu_build: bool, layers: int, n_layers: int) -> tuple[str, str]:
    if not gpu_build:
        return "CPU", machine.cpu_only_reason()
    gpus = list(machine.detect().devices)
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
