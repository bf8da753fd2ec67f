"""A turn that answers from the person's documents: the passages of the chosen collections that
best match the question, given to the model with it, and kept with the reply as its sources
(shown under it, opening the file; exported with it)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from assistant.documents import embedding_models, retrieval
from assistant.documents.index import DocumentIndex
from assistant.documents.retrieval import Hit
from assistant.errors import AssistantError

TOP_K = 6
MIN_SIMILARITY = 0.25  # cosine, for passages no keyword matched (all-MiniLM's scale)
PROMPT = (
    "Answer using the excerpts from my documents below where they help, and cite them by "
    "number, like [1]. If they do not contain the answer, say so.\n\n{excerpts}\n\n"
    "My question: {question}"
)

# Texts to vectors with a given embedding model (EngineClient.embed, interactive).
Embed = Callable[[list[str], str], np.ndarray]


def find_passages(
    embed: Embed,
    collection_names: Sequence[str],
    question: str,
    *,
    n_ctx: int,
    index: DocumentIndex | None = None,
) -> list[Hit]:
    """The best passages for ``question`` in the named collections, within a third of the
    context (the history and the reply need the rest)."""
    own = index is None
    index = index or DocumentIndex()
    try:
        collections = []
        for name in dict.fromkeys(collection_names):
            try:
                collections.append(index.collection(name))
            except AssistantError:
                continue  # removed since the chat chose it: the others are searched
        if not collections:
            names = ", ".join(collection_names)
            raise AssistantError(f"None of this chat's collections is there any more ({names}).")
        by_model: dict[str, list[Any]] = {}
        for collection in collections:
            by_model.setdefault(collection.embedding_model, []).append(collection)
        hits: list[Hit] = []
        for model, group in by_model.items():
            before, _ = embedding_models.prefixes(model)
            vector = embed([before + question], model)[0]
            hits += retrieval.search(
                index, group, question, vector, limit=TOP_K, min_similarity=MIN_SIMILARITY
            )
        hits.sort(key=lambda h: -h.score)
        return retrieval.fit_budget(hits[:TOP_K], budget_chars(n_ctx))
    finally:
        if own:
            index.close()


def budget_chars(n_ctx: int) -> int:
    return max(600, n_ctx // 3 * 3)  # a third of the tokens, at ~3 characters a token


def with_passages(history: list[dict[str, str]], hits: Sequence[Hit]) -> list[dict[str, str]]:
    """The history to send: its last user message asks with the passages before it (the
    stored message stays as the person wrote it)."""
    if not hits or not history or history[-1].get("role") != "user":
        return history
    excerpts = "\n\n".join(
        f"[{n}] {_label(hit)}:\n{hit.passage.text}" for n, hit in enumerate(hits, 1)
    )
    last = {**history[-1], "content": PROMPT.format(excerpts=excerpts,
                                                     question=history[-1]["content"])}  # fmt: skip
    return [*history[:-1], last]


def records(hits: Sequence[Hit]) -> list[dict[str, Any]]:
    """What is stored with the reply (Message.sources)."""
    return [
        {
            "collection": h.passage.collection,
            "path": h.passage.path,
            "where": h.passage.where,
            "page": h.passage.page,
            "line_start": h.passage.line_start,
            "line_end": h.passage.line_end,
            # A snippet to show: the passage itself stays in the documents' database.
            "text": h.passage.text[:400],
        }
        for h in hits
    ]


def _label(hit: Hit) -> str:
    name = hit.passage.path.replace("\\", "/").rsplit("/", 1)[-1]
    return f"{name}, {hit.passage.where}" if hit.passage.where else name
