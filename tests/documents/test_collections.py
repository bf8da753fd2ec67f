"""Collections end to end without the engine process: files indexed with the real built-in
embedding model (llama.cpp in this process), stored, searched, kept up to date, deleted."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest

from assistant.documents import retrieval
from assistant.documents.index import DocumentIndex
from assistant.documents.indexer import Indexer
from assistant.errors import AssistantError
from tests.test_privacy import holders

MODEL = "all-MiniLM-L6-v2.F16.gguf"


@pytest.fixture(scope="module")
def embedder(minilm_model_file: Path):
    from assistant.engine.embedder import Embedder

    e = Embedder(minilm_model_file, n_threads=2)
    yield e
    e.close()


@pytest.fixture
def embed(embedder):
    def embed(texts: list[str]) -> np.ndarray:
        tokens = [embedder.truncate(embedder.tokenize(t)) for t in texts]
        rows = []
        while len(rows) < len(tokens):
            rows.extend(embedder.embed(tokens[len(rows) :]))
        return np.array(rows)

    return embed


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    folder = tmp_path / "notes"
    (folder / "deep").mkdir(parents=True)
    (folder / "whales.md").write_text(
        "# Whales\n\nHumpback whales sing long songs that carry for miles under the sea.\n"
    )
    (folder / "bread.txt").write_text("Sourdough bread needs a starter, flour, water and salt.\n")
    (folder / "deep" / "rockets.md").write_text(
        "Rockets reach orbit by burning fuel; the Saturn V took astronauts to the Moon.\n"
    )
    (folder / "photo.png").write_bytes(b"\x89PNG not read at all")
    (folder / ".hidden.txt").write_text("not read either")
    (folder / "blob.bin2").write_bytes(bytes(range(256)))
    return folder


def index_folder(index: DocumentIndex, embed, folder: Path, name: str = "notes", **kw):
    collection = index.create(name, MODEL)
    index.add_source(collection, folder)
    return Indexer(index, embed, **kw).run(index.collection(name))


def test_a_folder_is_indexed_and_answers(notes: Path, embed) -> None:
    with DocumentIndex() as index:
        result = index_folder(index, embed, notes)
        c = index.collection("notes")
        assert (c.indexed, c.skipped, c.pending) == (3, 1, 0)
        assert result.skipped == [(str(notes / "blob.bin2"), "a binary file, not text")]
        question = "Which animal sings under water?"
        hits = retrieval.search(index, [c], question, embed([question])[0], limit=1)
        assert hits[0].passage.path == str(notes / "whales.md")
        assert hits[0].passage.where == "lines 1-3"
        # Keyword-only finds it too; an unrelated question finds nothing when a floor of
        # similarity is asked for.
        keyword = retrieval.search(index, [c], "humpback", None, 1, "keyword")
        assert keyword[0].passage.path.endswith("whales.md")
        far = "What is the tax rate in Belgium?"
        assert retrieval.search(index, [c], far, embed([far])[0], min_similarity=0.25) == []


def test_changes_are_picked_up_and_removed_files_dropped(notes: Path, embed) -> None:
    with DocumentIndex() as index:
        index_folder(index, embed, notes)
        (notes / "bread.txt").write_text("Rye bread is dense and dark.\n")
        os.utime(notes / "bread.txt", ns=(1, 1))  # a changed file whatever the clock's grain
        (notes / "deep" / "rockets.md").unlink()
        (notes / "new.md").write_text("Volcanoes erupt lava.\n")
        c = index.collection("notes")
        result = Indexer(index, embed).run(c)
        assert result.removed == 1 and result.done == 2  # bread again, and the new one
        c = index.collection("notes")
        assert c.indexed == 3
        texts = " ".join(p.passage.text for p in retrieval.search(index, [c], "bread", None, 5,
                                                                     "keyword"))  # fmt: skip
        assert "Rye" in texts and "Sourdough" not in texts
        assert retrieval.search(index, [c], "Saturn", None, 5, "keyword") == []


def test_a_stopped_run_goes_on_where_it_left_off(notes: Path, embed) -> None:
    stop = threading.Event()
    calls = []

    def embed_then_stop(texts: list[str]) -> np.ndarray:
        calls.append(texts)
        stop.set()  # as if the app closed after the first file
        return embed(texts)

    with DocumentIndex() as index:
        first = index_folder(index, embed_then_stop, notes, stop=stop)
        assert first.stopped
        c = index.collection("notes")
        assert (c.indexed, c.pending) == (1, 2)  # the file in hand finished, none half-stored
    with DocumentIndex() as index:  # a restart
        second = Indexer(index, embed).run(index.collection("notes"))
        assert second.finished and index.collection("notes").indexed == 3


def test_files_that_change_or_vanish_mid_index(notes: Path, embed) -> None:
    def embed_and_meddle(texts: list[str]) -> np.ndarray:
        if any("Humpback" in t for t in texts) and not (notes / "marker").exists():
            (notes / "marker").write_text("")
            (notes / "whales.md").write_text("Blue whales are the largest animals.\n")
            os.utime(notes / "whales.md", ns=(2, 2))
        if any("Sourdough" in t for t in texts):
            (notes / "bread.txt").unlink()
        return embed(texts)

    with DocumentIndex() as index:
        index_folder(index, embed_and_meddle, notes)
        c = index.collection("notes")
        files = {Path(p).name: s.status for p, s in index.file_states(c).items()}
        assert "bread.txt" not in files  # gone: dropped, not an error
        assert files["whales.md"] == "indexed"
        hits = retrieval.search(index, [c], "largest", None, 5, "keyword")
        assert hits and "Blue whales" in hits[0].passage.text  # the new text, not the old


def test_a_missing_source_keeps_its_passages(notes: Path, embed, tmp_path: Path) -> None:
    with DocumentIndex() as index:
        index_folder(index, embed, notes)
        notes.rename(tmp_path / "unplugged")  # a drive that is not mounted now
        result = Indexer(index, embed).run(index.collection("notes"))
        assert result.missing_sources == [str(notes)]
        assert index.collection("notes").indexed == 3


def test_deleting_leaves_no_byte_behind(notes: Path, embed, assistant_home: Path) -> None:
    (notes / "secret.md").write_text("The vault code is zorblaxiquon, kept in notes.\n" * 20)
    with DocumentIndex() as index:
        index_folder(index, embed, notes)
        (notes.parent / "other").mkdir()
        (notes.parent / "other" / "keep.md").write_text("Keep this about gardens.\n")
        index_folder(index, embed, notes.parent / "other", name="other")
        assert holders(assistant_home, "zorblaxiquon")
        index.remove_collection("notes")
        assert holders(assistant_home, "zorblaxiquon") == []
        assert [c.name for c in index.collections()] == ["other"]
        assert retrieval.search(index, index.collections(), "gardens", None, 5, "keyword")
        with pytest.raises(AssistantError, match="No collection named 'notes'"):
            index.collection("notes")


def test_taking_a_source_out(notes: Path, embed, tmp_path: Path, assistant_home: Path) -> None:
    extra = tmp_path / "extra.txt"
    extra.write_text("A note about quasiflumptery.\n")
    with DocumentIndex() as index:
        index_folder(index, embed, notes)
        c = index.collection("notes")
        index.add_source(c, extra)
        Indexer(index, embed).run(index.collection("notes"))
        assert holders(assistant_home, "quasiflumptery")
        with pytest.raises(AssistantError, match="not one of the files or folders"):
            index.remove_source(index.collection("notes"), notes / "whales.md")
        assert index.remove_source(index.collection("notes"), extra) == 1
        assert holders(assistant_home, "quasiflumptery") == []
        assert index.collection("notes").indexed == 3


def test_the_database_is_owner_only(notes: Path, embed, assistant_home: Path) -> None:
    with DocumentIndex() as index:
        index_folder(index, embed, notes)
    assert (assistant_home / "documents.db").stat().st_mode & 0o077 == 0


def test_a_folder_of_ten_thousand_files(tmp_path: Path) -> None:
    # The walk, the database and the progress at scale; the vectors are a cheap stand-in
    # (a hash of the words: the real model would take minutes for the same check).
    folder = tmp_path / "many"
    for d in range(100):
        (folder / f"d{d}").mkdir(parents=True)
        for f in range(100):
            (folder / f"d{d}" / f"n{f}.txt").write_text(f"note {d}-{f} about item{d}x{f}\n")

    def hashed(texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), 384), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.split():
                out[i, hash(w) % 384] += 1
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    seen = []
    with DocumentIndex() as index:
        result = index_folder(index, hashed, folder, progress=lambda p: seen.append(p.done))
        assert result.done == 10_000 and index.collection("notes").indexed == 10_000
        assert seen[-1] == 10_000
        hit = retrieval.search(index, [index.collection("notes")], "item42x7", None, 1, "keyword")
        assert hit[0].passage.path.endswith("d42/n7.txt")
