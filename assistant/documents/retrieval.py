"""Finding the passages that answer a question: keyword search (FTS5, bm25) and vector
similarity, fused by reciprocal rank (each list's rank r adds 1 / (60 + r), as in Cormack et
al.'s RRF), then fitted into the reply's context budget."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from assistant.documents.index import Collection, DocumentIndex, Passage

CANDIDATES = 50  # from each list, before fusing
RRF_K = 60
KEYWORD_FLOOR = 0.5  # of the best bm25, for min_similarity searches
MODES = ("fused", "vector", "keyword")
_WORD = re.compile(r"\w+", re.UNICODE)
# Left out of keyword queries: words any passage has, which would make every passage a match.
STOPWORDS = frozenset(
    "a an and are as at be but by can do does for from has have how i if in is it its me my "
    "no not of on or our so than that the their them then there these they this to was we "
    "were what when where which who why will with would you your".split()
)


@dataclass(frozen=True)
class Hit:
    passage: Passage
    score: float


def search(
    index: DocumentIndex,
    collections: Sequence[Collection],
    query: str,
    query_vector: np.ndarray | None,
    limit: int = 5,
    mode: str = "fused",
    min_similarity: float = 0.0,
) -> list[Hit]:
    """The best ``limit`` passages. With ``min_similarity``, a passage that only the vectors
    found must be at least that similar (cosine) to the question: a chat is better given
    nothing than given passages about something else."""
    rankings: list[list[int]] = []
    similar: dict[int, float] = {}
    if mode in ("fused", "vector") and query_vector is not None:
        similar = _vector_ranking(index, collections, query_vector)
        rankings.append(list(similar))
    keyword: list[tuple[int, float]] = []
    if mode in ("fused", "keyword"):
        words = [w for w in _WORD.findall(query.lower()) if len(w) > 1 and w not in STOPWORDS]
        keyword = index.keyword_search(collections, words, CANDIDATES)
        rankings.append([i for i, _ in keyword])
    if min_similarity > 0:
        # Keyword matches at least half as strong as the best one (a passage that shares
        # one common word with the question is no match).
        strongest = keyword[0][1] if keyword else 0.0
        matched = {i for i, score in keyword if score <= strongest * KEYWORD_FLOOR}
        rankings = [
            [i for i in ranking if i in matched or similar.get(i, 0.0) >= min_similarity]
            for ranking in rankings
        ]
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, chunk_id in enumerate(ranking):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (RRF_K + rank + 1)
    best = sorted(scores, key=lambda i: -scores[i])[:limit]
    return [Hit(p, scores[p.id]) for p in index.passages(best)]


def _vector_ranking(
    index: DocumentIndex, collections: Sequence[Collection], query: np.ndarray
) -> dict[int, float]:
    """The most similar passages' ids, best first, with their cosine similarity."""
    query = np.asarray(query, dtype=np.float32).ravel()
    found: list[tuple[float, int]] = []
    for collection in collections:
        ids, matrix = index.matrix(collection)
        if not len(ids) or matrix.shape[1] != query.shape[0]:
            continue
        scores = matrix @ query
        k = min(CANDIDATES, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        found.extend((float(scores[i]), int(ids[i])) for i in top)
    found.sort(reverse=True)
    return {chunk_id: score for score, chunk_id in found[:CANDIDATES]}


def fit_budget(hits: Sequence[Hit], budget_chars: int) -> list[Hit]:
    """The best hits whose text fits in ``budget_chars`` (at least the first, cut to fit)."""
    kept: list[Hit] = []
    used = 0
    for hit in hits:
        size = len(hit.passage.text)
        if used + size > budget_chars:
            if not kept and budget_chars > 200:
                cut = Passage(**{**hit.passage.__dict__, "text": hit.passage.text[:budget_chars]})
                kept.append(Hit(cut, hit.score))
                used = budget_chars
            continue
        kept.append(hit)
        used += size
    return kept
