"""The local model library: listing, importing, resolving and deleting GGUF files."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant import paths
from assistant.errors import InvalidModelFile, ModelError
from assistant.models import library
from assistant.settings import Settings
from tests.tinymodel import write_tiny_model


def test_import_lists_and_deletes(tmp_path: Path) -> None:
    source = write_tiny_model(tmp_path / "tiny-Q8_0.gguf")
    imported = library.import_model(source)
    assert imported.path == paths.models_dir() / "tiny-Q8_0.gguf"
    assert imported.path.read_bytes() == source.read_bytes()
    assert imported.architecture == "llama"
    assert [m.name for m in library.installed_models()] == ["tiny-Q8_0.gguf"]
    assert library.resolve_model("tiny-Q8_0") == imported.path
    assert library.delete_model("tiny-Q8_0.gguf") == source.stat().st_size
    assert library.installed_models() == []


def test_import_refuses_bad_files_and_copies_nothing(tmp_path: Path) -> None:
    text = tmp_path / "notes.gguf"
    text.write_text("hello")
    truncated = write_tiny_model(tmp_path / "cut.gguf")
    truncated.write_bytes(truncated.read_bytes()[:-1000])
    for bad in (text, truncated, tmp_path / "missing.gguf"):
        with pytest.raises(InvalidModelFile):
            library.import_model(bad)
    assert list(paths.models_dir().iterdir()) == []


def test_broken_files_in_the_folder_are_skipped(tmp_path: Path) -> None:
    (paths.models_dir() / "broken.gguf").write_text("nope")
    write_tiny_model(paths.models_dir() / "good.gguf")
    assert [m.name for m in library.installed_models()] == ["good.gguf"]


def test_resolve_prefers_named_then_default_then_starter(tmp_path: Path) -> None:
    a = write_tiny_model(paths.models_dir() / "a.gguf")
    b = write_tiny_model(paths.models_dir() / "b.gguf")
    assert library.resolve_model("b") == b
    assert library.resolve_model(str(a)) == a
    Settings(default_model="b.gguf").save()
    assert library.resolve_model(None) == b
    with pytest.raises(ModelError, match="No model named"):
        library.resolve_model("zzz")


@pytest.mark.starter
def test_starter_model_is_installed_without_network(starter_model_file: Path) -> None:
    path = library.ensure_starter_model()
    assert path == paths.models_dir() / library.STARTER_FILE
    assert path.stat().st_size == library.STARTER_SIZE == starter_model_file.stat().st_size
    assert library.resolve_model(None) == path
    assert [m.is_starter for m in library.installed_models()] == [True]
    assert library.ensure_starter_model() == path  # second call: no re-assembly
    assert path.stat().st_mode & 0o777 == library.MODEL_FILE_MODE  # readable like any model


@pytest.mark.starter
def test_a_damaged_starter_package_is_refused_and_nothing_is_installed(
    starter_model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy is checked against the sha256 the package's wheel recorded."""
    assert library._recorded_sha256() is not None
    damaged = tmp_path / library.STARTER_FILE
    data = bytearray(starter_model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    monkeypatch.setattr(library, "starter_source", lambda: damaged)
    with pytest.raises(ModelError, match="damaged"):
        library.ensure_starter_model()
    assert list(paths.models_dir().iterdir()) == []  # no half-copied file is left behind


def test_no_starter_package_means_no_starter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(library, "STARTER_PACKAGE", "no_such_starter_package")
    assert library.starter_source() is None and not library.starter_available()
    assert library.ensure_starter_model() is None


def test_settings_round_trip_and_damaged_file() -> None:
    settings = Settings(default_model="x.gguf", n_ctx=2048)
    settings.save()
    assert Settings.load() == settings
    paths.settings_path().write_text("{not json")
    assert Settings.load() == Settings()


def test_split_model_is_one_model_and_deleted_whole(tmp_path: Path) -> None:
    first = write_tiny_model(paths.models_dir() / "big-Q4_K_M-00001-of-00002.gguf")
    second = paths.models_dir() / "big-Q4_K_M-00002-of-00002.gguf"
    second.write_bytes(b"GGUF" + b"\0" * 100)  # only its presence and size matter here
    [model] = library.installed_models()
    assert model.name == first.name
    assert model.size == first.stat().st_size + 104
    assert library.delete_model(first.name) == model.size
    assert list(paths.models_dir().iterdir()) == []


def test_importing_one_part_of_a_split_model_is_refused(tmp_path: Path) -> None:
    part = write_tiny_model(tmp_path / "big-Q4_K_M-00001-of-00002.gguf")
    with pytest.raises(ModelError, match="one part of a split model"):
        library.import_model(part)
    assert list(paths.models_dir().iterdir()) == []


def test_installed_files_get_ordinary_permissions(tmp_path: Path) -> None:
    import stat

    source = write_tiny_model(tmp_path / "perm.gguf")
    installed = library.import_model(source)
    assert stat.S_IMODE(installed.path.stat().st_mode) == library.MODEL_FILE_MODE


@pytest.mark.starter
def test_the_installed_app_finds_the_starter_it_carries(
    starter_model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In the PyInstaller bundle the starter lies in _internal/starter, without its package."""
    import sys

    bundle = tmp_path / "_internal"
    (bundle / "starter").mkdir(parents=True)
    carried = bundle / "starter" / library.STARTER_FILE
    carried.write_bytes(starter_model_file.read_bytes())
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(bundle), raising=False)
    assert library.starter_source() == carried
    assert library.ensure_starter_model() == paths.models_dir() / library.STARTER_FILE


@pytest.mark.starter
def test_an_earlier_starter_gives_way_to_today_s(starter_model_file: Path) -> None:
    """An upgrade from the version whose starter was Gemma 3 270M (a base model)."""
    write_tiny_model(paths.models_dir() / "gemma-3-270m-q4_k_m.gguf")
    Settings(default_model="gemma-3-270m-q4_k_m.gguf").save()
    assert library.resolve_model(None) == paths.models_dir() / library.STARTER_FILE
    assert all(m.is_starter for m in library.installed_models())


def test_a_copy_left_by_a_killed_process_is_cleaned_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_tiny_model(tmp_path / library.STARTER_FILE)
    monkeypatch.setattr(library, "starter_source", lambda: source)
    monkeypatch.setattr(library, "_recorded_sha256", lambda: None)
    stale = paths.models_dir() / ".starter-x1y2.part"
    stale.write_bytes(b"half a model")
    assert library.ensure_starter_model() == paths.models_dir() / library.STARTER_FILE
    assert not stale.exists()
