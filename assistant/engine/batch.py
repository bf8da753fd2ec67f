"""Continuous batching: many replies in one llama.cpp context, one ``llama_decode`` per step.

The shape is llama-server's ``update_slots``. The context has ``n_seq_max = S`` sequences, one
per slot. Each step builds one batch: first the pending token of every generating sequence,
then chunks of the prompts still being evaluated, shared round-robin within ``n_batch`` so one
long prompt cannot hold the others back. After the decode, every sequence whose logits came
out samples its next token with its own sampler chain (a new one per request), feeds its own
TextStream (UTF-8 and stop strings per sequence) and checks its own limits.

Admission: a request goes to the free slot whose cached tokens share the longest prefix with
its prompt (when that keeps at least half of what the slot holds), otherwise to the least
recently used free slot, preferring slots that do not hold an interactive (GUI or CLI) chat.
The cut is ``llama_memory_seq_rm`` on that sequence alone.

When llama.cpp finds no room in the KV cache (``llama_decode`` returns 1) the scheduler frees
the caches of idle slots, then halves the prompt budget, and only then ends the newest request
with an error: nothing crashes and no request is dropped without an answer.

Threading: everything here runs on the inference thread. ``Request.stop`` is the one thing set
from elsewhere; it is read between steps and, during prompt chunks, by llama.cpp's abort
callback.

Over 400 lines: one scheduler step (admission, one batch, sampling, limits), as in
llama-server's update_slots; its parts share the slots.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import llama_cpp

from assistant.engine.text_stream import TextStream
from assistant.errors import AssistantError, RequestRejected
from assistant.reasoning import ThinkSplitter
from assistant.records import Completion, FinishReason, GenerationParams

log = logging.getLogger(__name__)


class Engine(Protocol):
    """What the scheduler needs of the loaded model and context (``llama.Engine`` is one)."""

    @property
    def context(self) -> llama_cpp.llama_context_p: ...
    @property
    def memory(self) -> llama_cpp.llama_memory_t: ...
    @property
    def n_swa(self) -> int: ...
    @property
    def model_file(self) -> str: ...
    @property
    def opens_thinking(self) -> bool: ...
    @property
    def stop_strings(self) -> tuple[str, ...]: ...

    def prompt_tokens(
        self,
        messages: list[dict[str, str]],
        params: GenerationParams,
        raw: str | None,
        truncate: bool,
        n_ctx: int,
    ) -> tuple[list[int], int]: ...
    def load_state(self, path: str | Path, seq_id: int = 0) -> list[int]: ...
    def new_sampler(
        self, params: GenerationParams, *, chat: bool = False
    ) -> llama_cpp.llama_sampler_p: ...
    def is_end_of_generation(self, token: int) -> bool: ...
    def piece(self, token: int, *, tools: bool = False) -> bytes: ...


@dataclass
class Request:
    """One reply to produce; ``on_done`` receives its Completion, whatever way it ends."""

    messages: list[dict[str, str]]
    params: GenerationParams = field(default_factory=GenerationParams)
    prompt: str | None = None  # raw text to continue (no chat template)
    truncate: bool = False
    on_text: Callable[[str], None] | None = None
    # A chat reply's thinking (<think>...</think>), kept out of on_text and the text.
    on_reasoning: Callable[[str], None] | None = None
    on_done: Callable[[Completion], None] | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    interactive: bool = False  # the person at the keyboard (the app, the CLI): admitted first
    state_key: str | None = None  # a KV cache saved for this conversation...
    state_file: str | None = None  # ...and where it lies
    tag: Any = None  # the caller's own (the runner's job)


@dataclass
class Slot:
    """One llama.cpp sequence and the tokens its KV cache holds, in order."""

    seq_id: int
    tokens: list[int] = field(default_factory=list)
    active: Sequence | None = None
    last_used: float = 0.0
    interactive: bool = False  # the cache holds an interactive chat: kept for its next turn
    state_key: str | None = None


@dataclass
class Sequence:
    """A request being served in a slot."""

    request: Request
    slot: Slot
    prompt: list[int]
    sampler: llama_cpp.llama_sampler_p
    stream: TextStream
    thoughts: ThinkSplitter | None  # chat replies: the thinking told apart from the answer
    started: float
    cached_tokens: int
    trimmed_messages: int
    n_eval: int  # prompt[:n_eval] is in the slot's cache
    completion_tokens: int = 0
    pending: int | None = None  # sampled, to be decoded at the next step
    batch_index: int = -1  # where its logits are in the current batch
    prompt_done_at: float | None = None
    first_token_at: float | None = None

    @property
    def generating(self) -> bool:
        return self.prompt_done_at is not None


# Called with "prompt" or "generate" before a decode of that kind (crash attribution), and with
# each finished Completion (metrics); both on the inference thread.
StageHook = Callable[[str], None]


class Scheduler:
    """The slots of one loaded context, and the step that advances all of them."""

    def __init__(self, engine: Engine, n_slots: int, n_ctx_seq: int, n_batch: int):
        self._engine = engine
        self.slots = [Slot(i) for i in range(n_slots)]
        self.n_ctx_seq = n_ctx_seq
        self._n_batch = n_batch
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self._budget = n_batch  # prompt tokens per step; halved while the cache is full
        self._turn = 0  # round-robin start among prompting sequences
        self._aborting: list[threading.Event] = []
        self.on_stage: StageHook | None = None
        self.on_token: Callable[[], None] | None = None  # each token sampled (metrics)
        # llama.cpp keeps this function pointer; the reference here keeps it alive.
        self._abort_callback = llama_cpp.ggml_abort_callback(self._should_abort)

    def close(self) -> None:
        for slot in self.slots:
            if slot.active is not None:
                self._finish(slot.active, FinishReason.CANCELLED)
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None

    # -- what is going on ----------------------------------------------------------------------

    @property
    def active(self) -> list[Sequence]:
        return [s.active for s in self.slots if s.active is not None]

    @property
    def has_free_slot(self) -> bool:
        return any(s.active is None for s in self.slots)

    # -- admission ----------------------------------------------------------------------------

    def admit(self, request: Request) -> Sequence:
        """Tokenize the request and give it a slot; RequestRejected (or another AssistantError)
        if it cannot run. The caller checks ``has_free_slot`` first."""
        engine = self._engine
        started = time.perf_counter()
        prompt, trimmed = engine.prompt_tokens(
            request.messages, request.params, request.prompt, request.truncate, self.n_ctx_seq
        )
        # Before any slot changes: it may refuse.
        sampler = engine.new_sampler(request.params, chat=request.prompt is None)
        try:
            return self._place(request, prompt, trimmed, sampler, started)
        except BaseException:
            llama_cpp.llama_sampler_free(sampler)
            raise

    def _place(
        self,
        request: Request,
        prompt: list[int],
        trimmed: int,
        sampler: llama_cpp.llama_sampler_p,
        started: float,
    ) -> Sequence:
        engine = self._engine
        slot = self._choose_slot(request, prompt)
        if request.state_key and request.state_file and slot.state_key != request.state_key:
            slot.tokens = engine.load_state(request.state_file, slot.seq_id)
        slot.state_key = request.state_key
        cached = self._reuse_prefix(slot, prompt)
        # The chat format's own turn markers end a reply as its end token does, so ignore_eos
        # (run to max_tokens, as llama-server does) sets both aside; the request's stops stay.
        chat = request.prompt is None
        own = engine.stop_strings if chat and not request.params.ignore_eos else ()
        thoughts = None
        on_text = request.on_text
        if request.prompt is None:  # a chat reply (a raw completion's text is left as it is)
            thoughts = ThinkSplitter(
                request.on_text, request.on_reasoning, opened=engine.opens_thinking
            )
            on_text = thoughts.feed
        sequence = Sequence(
            request=request,
            slot=slot,
            prompt=prompt,
            sampler=sampler,
            stream=TextStream((*own, *request.params.stop), on_text),
            thoughts=thoughts,
            started=started,
            cached_tokens=cached,
            trimmed_messages=trimmed,
            n_eval=cached,
        )
        slot.active = sequence
        slot.interactive = request.interactive
        slot.last_used = started
        return sequence

    def _choose_slot(self, request: Request, prompt: list[int]) -> Slot:
        free = [s for s in self.slots if s.active is None]
        if request.state_key:
            for slot in free:
                if slot.state_key == request.state_key:
                    return slot
        best, best_shared = None, 0
        for slot in free:
            shared = _common_prefix(slot.tokens, prompt)
            # Reuse only when it keeps at least half of that slot's cache: every prompt shares
            # its template's first few tokens with every other.
            if shared > best_shared and shared * 2 >= len(slot.tokens):
                best, best_shared = slot, shared
        if best is not None:
            return best
        # Least recently used; an interactive chat's cache is given up last.
        return min(free, key=lambda s: (s.interactive and not request.interactive, s.last_used))

    def _reuse_prefix(self, slot: Slot, prompt: list[int]) -> int:
        """Keep the slot's cache entries this prompt shares with it; returns how many."""
        engine = self._engine
        kv = slot.tokens
        n = _common_prefix(kv, prompt)
        if n == len(prompt):
            n -= 1  # the last prompt token is evaluated again: its logits give the first token
        if n < len(kv):
            mem = engine.memory
            if n > 0 and engine.n_swa > 0:
                # A sliding-window cache keeps only the last n_swa positions: rewinding is
                # possible only if the window before the cut point is still there.
                pos_min = llama_cpp.llama_memory_seq_pos_min(mem, slot.seq_id)
                if pos_min > max(0, n - engine.n_swa):
                    n = 0
            if n == 0 or not llama_cpp.llama_memory_seq_rm(mem, slot.seq_id, n, -1):
                llama_cpp.llama_memory_seq_rm(mem, slot.seq_id, 0, -1)
                n = 0
            del kv[n:]
        return n

    # -- the step -----------------------------------------------------------------------------

    def step(self) -> None:
        """Finish stopped sequences, then one decode for all the others."""
        for sequence in self.active:
            if sequence.request.stop.is_set():
                self._finish(sequence, FinishReason.CANCELLED)
        batch = self._batch
        assert batch is not None
        n = 0
        generating: list[Sequence] = []
        for sequence in self.active:
            if sequence.pending is None:
                continue
            slot = sequence.slot
            _put(batch, n, sequence.pending, len(slot.tokens), slot.seq_id, True)
            sequence.batch_index = n
            generating.append(sequence)
            n += 1
        chunks = self._prompt_chunks(min(self._budget, self._n_batch - n))
        for sequence, start, end in chunks:
            seq_id = sequence.slot.seq_id
            last = len(sequence.prompt) - 1
            for i in range(start, end):
                _put(batch, n, sequence.prompt[i], i, seq_id, i == last)
                n += 1
            if end == len(sequence.prompt):
                sequence.batch_index = n - 1
        if n == 0:
            return
        batch.n_tokens = n
        if self.on_stage is not None:
            self.on_stage("prompt" if chunks else "generate")
        result = self._decode(batch, generating, chunks)
        if result != 0:
            self._recover(result, generating, chunks)
            return
        for sequence in generating:
            assert sequence.pending is not None
            sequence.slot.tokens.append(sequence.pending)
            sequence.pending = None
        now = time.perf_counter()
        for sequence, start, end in chunks:
            sequence.slot.tokens.extend(sequence.prompt[start:end])
            sequence.n_eval = end
            if end == len(sequence.prompt):
                sequence.prompt_done_at = now
        sample = llama_cpp.llama_sampler_sample
        ctx = self._engine.context
        for sequence in [*generating, *(c[0] for c in chunks)]:
            if sequence.batch_index < 0 or sequence.slot.active is not sequence:
                continue
            index, sequence.batch_index = sequence.batch_index, -1
            self._accept(sequence, sample(sequence.sampler, ctx, index))

    def _prompt_chunks(self, budget: int) -> list[tuple[Sequence, int, int]]:
        """Prompt tokens for this step, shared round-robin: (sequence, start, end)."""
        waiting = [s for s in self.active if s.pending is None and s.n_eval < len(s.prompt)]
        if not waiting or budget <= 0:
            return []
        self._turn = (self._turn + 1) % len(waiting)
        waiting = waiting[self._turn :] + waiting[: self._turn]
        waiting.sort(key=lambda s: not s.request.interactive)  # stable: the app's first
        given = dict.fromkeys(range(len(waiting)), 0)
        needing = list(range(len(waiting)))
        while budget > 0 and needing:
            share = max(1, budget // len(needing))
            still = []
            for i in needing:
                left = len(waiting[i].prompt) - waiting[i].n_eval - given[i]
                take = min(share, left, budget)
                given[i] += take
                budget -= take
                if take < left:
                    still.append(i)
                if budget == 0:
                    break
            needing = still
        return [(s, s.n_eval, s.n_eval + given[i]) for i, s in enumerate(waiting) if given[i] > 0]

    def _decode(
        self, batch: llama_cpp.llama_batch, generating: list[Sequence], chunks: list
    ) -> int:
        ctx = self._engine.context
        if generating or len(chunks) != 1:
            return int(llama_cpp.llama_decode(ctx, batch))
        # One sequence's prompt alone, which can be long: let a stop interrupt it inside
        # llama.cpp. Only then: per generated token the callback's cost would add up, and an
        # abort must never cost other sequences their step (a recurrent model's state cannot
        # be rolled back).
        self._aborting = [chunks[0][0].request.stop]
        llama_cpp.llama_set_abort_callback(ctx, self._abort_callback, None)
        try:
            return int(llama_cpp.llama_decode(ctx, batch))
        finally:
            llama_cpp.llama_set_abort_callback(ctx, _NO_ABORT, None)
            self._aborting = []

    def _should_abort(self, _data: ctypes.c_void_p) -> bool:
        return any(stop.is_set() for stop in self._aborting)

    def _recover(
        self, result: int, generating: list[Sequence], chunks: list[tuple[Sequence, int, int]]
    ) -> None:
        """A decode that did not go through: make every cache hold exactly its slot's tokens
        again, then free room (1), let the stop take effect (2), or fail the sequences."""
        involved = [*generating, *(c[0] for c in chunks)]
        mem = self._engine.memory
        for sequence in involved:
            sequence.batch_index = -1
            slot = sequence.slot
            llama_cpp.llama_memory_seq_rm(mem, slot.seq_id, len(slot.tokens), -1)
            if llama_cpp.llama_memory_seq_pos_max(mem, slot.seq_id) != len(slot.tokens) - 1:
                # The cache could not be cut back to what the slot holds (recurrent memory
                # cannot cut part of a sequence): that reply cannot go on.
                if result == 2 and sequence.request.stop.is_set():
                    llama_cpp.llama_memory_seq_rm(mem, slot.seq_id, 0, -1)
                    slot.tokens = []
                    self._finish(sequence, FinishReason.CANCELLED)
                else:
                    self.fail(sequence, _decode_failure(result))
        if result == 2:
            return  # aborted by a stop: the next step finishes the stopped sequence
        if result == 1:
            if self._free_idle_caches():
                return
            if chunks and self._budget > 1:
                self._budget = max(1, self._budget // 2)
                log.info("KV cache full: prompt budget halved to %d tokens", self._budget)
                return
            # Nothing more to free: end the newest request of this batch, not some other.
            still = [s for s in involved if s.slot.active is s]
            newest = max(still, key=lambda s: s.started, default=None)
            if newest is not None:
                self.fail(newest, _decode_failure(result))
            return
        for sequence in involved:
            if sequence.slot.active is sequence:
                self.fail(sequence, _decode_failure(result))

    def _free_idle_caches(self) -> bool:
        freed = 0
        for slot in self.slots:
            if slot.active is None and slot.tokens:
                llama_cpp.llama_memory_seq_rm(self._engine.memory, slot.seq_id, 0, -1)
                slot.tokens = []
                slot.state_key = None
                freed += 1
        if freed:
            log.info("KV cache full: dropped the caches of %d idle slots", freed)
        return freed > 0

    # -- per token ----------------------------------------------------------------------------

    def _accept(self, sequence: Sequence, token: int) -> None:
        engine = self._engine
        if sequence.first_token_at is None:
            sequence.first_token_at = time.perf_counter()
        params = sequence.request.params
        if engine.is_end_of_generation(token) and not params.ignore_eos:
            self._finish(sequence, FinishReason.STOP)
            return
        sequence.completion_tokens += 1
        try:
            stopped = sequence.stream.feed(engine.piece(token, tools=params.tools is not None))
        except Exception as exc:  # noqa: BLE001 - a failing on_text ends this reply only
            log.exception("Streaming a reply failed")
            self.fail(sequence, f"Generation failed: {exc}")
            return
        if self.on_token is not None:
            self.on_token()
        if stopped:
            self._finish(sequence, FinishReason.STOP)
        elif sequence.completion_tokens >= params.max_tokens:
            self._finish(sequence, FinishReason.LENGTH)
        elif len(sequence.slot.tokens) >= self.n_ctx_seq:
            self._finish(
                sequence, FinishReason.LENGTH
            )  # the context is full: nowhere to put this token
        else:
            sequence.pending = token

    def fail(self, sequence: Sequence, message: str) -> None:
        """End a sequence with an error (its slot's cache is dropped: it may be half-written)."""
        log.warning("Generation failed: %s", message)
        slot = sequence.slot
        llama_cpp.llama_memory_seq_rm(self._engine.memory, slot.seq_id, 0, -1)
        slot.tokens = []
        slot.state_key = None
        self._finish(sequence, FinishReason.ERROR, message)

    def _finish(self, sequence: Sequence, reason: FinishReason, error: str | None = None) -> None:
        slot = sequence.slot
        if slot.active is not sequence:
            return
        slot.active = None
        slot.last_used = time.perf_counter()
        self._budget = self._n_batch  # a sequence left: there may be room again
        llama_cpp.llama_sampler_free(sequence.sampler)
        try:
            sequence.stream.finish()
            if sequence.thoughts is not None:
                sequence.thoughts.finish()
        except Exception:  # noqa: BLE001 - on_text raising must not lose the result
            log.exception("on_text failed")
        now = time.perf_counter()
        first = sequence.first_token_at if sequence.first_token_at is not None else now
        gen_seconds = now - (sequence.prompt_done_at or now)
        completion = Completion(
            text=sequence.thoughts.answer if sequence.thoughts else sequence.stream.text,
            reasoning=sequence.thoughts.reasoning if sequence.thoughts else "",
            finish_reason=reason,
            prompt_tokens=len(sequence.prompt),
            completion_tokens=sequence.completion_tokens,
            cached_tokens=sequence.cached_tokens,
            ttft_s=first - sequence.started,
            duration_s=now - sequence.started,
            tokens_per_s=sequence.completion_tokens / gen_seconds if gen_seconds > 0 else 0.0,
            context_tokens=len(slot.tokens),
            trimmed_messages=sequence.trimmed_messages,
            model_file=self._engine.model_file,
            error=error,
        )
        if sequence.request.on_done is not None:
            try:
                sequence.request.on_done(completion)
            except Exception:  # noqa: BLE001 - one listener must not stop the others' replies
                log.exception("on_done failed")

    @property
    def model_file(self) -> str:
        return self._engine.model_file


def run_one(scheduler: Scheduler, request: Request) -> Completion:
    """Serve one request to its end (the Engine's single-stream ``generate``)."""
    result: list[Completion] = []
    on_done = request.on_done

    def done(completion: Completion) -> None:
        result.append(completion)
        if on_done is not None:
            on_done(completion)

    request.on_done = done
    try:
        scheduler.admit(request)
    except RequestRejected:
        raise  # nothing ran: the caller says why
    except AssistantError as exc:  # a template that fails to render, a bad tokenization
        log.warning("Generation failed: %s", exc)
        return Completion.failed(str(exc), model_file=scheduler.model_file)
    while not result:
        scheduler.step()
    return result[0]


def _put(batch: llama_cpp.llama_batch, i: int, token: int, pos: int, seq: int, logits: bool):
    batch.token[i] = token
    batch.pos[i] = pos  # type: ignore[call-overload]  # ctypes stubs
    batch.n_seq_id[i] = 1
    batch.seq_id[i][0] = seq
    batch.logits[i] = logits


def _common_prefix(a: list[int], b: list[int]) -> int:
    n, limit = 0, min(len(a), len(b))
    while n < limit and a[n] == b[n]:
        n += 1
    return n


def _decode_failure(result: int) -> str:
    if result == 1:
        return (
            "llama.cpp found no room in the KV cache for this reply while other replies run; "
            "try again, or load the model with fewer parallel slots."
        )
    if result == 2:
        return "The reply was stopped."
    return f"llama.cpp failed while evaluating the batch (error {result})."


_NO_ABORT = ctypes.cast(None, llama_cpp.ggml_abort_callback)  # type: ignore[arg-type]
