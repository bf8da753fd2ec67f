"""Search and repo views through real huggingface_hub against the local fake Hub."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from assistant.errors import GatedRepoError, NetworkError, RepoNotFound
from assistant.models import catalog, hub

if TYPE_CHECKING:
    from tests.hfserver import HFServer

# The hf_server fixture (a plugin, so pytest rewrites its asserts and nothing is imported twice).
pytest_plugins = ["tests.hfserver"]

GGUF = b"GGUF" + b"\0" * 60


def _populate(server: HFServer) -> None:
    server.add_repo(
        "bartowski/Qwen2.5-7B-Instruct-GGUF",
        {
            "README.md": b"# card",
            "Qwen2.5-7B-Instruct-Q4_K_M.gguf": GGUF * 3,
            "Qwen2.5-7B-Instruct-Q6_K.gguf": GGUF * 4,
            "Qwen2.5-7B-Instruct-IQ4_XS.gguf": GGUF * 2,
            "Qwen2.5-7B-Instruct-f16-00001-of-00002.gguf": GGUF * 5,
            "Qwen2.5-7B-Instruct-f16-00002-of-00002.gguf": GGUF * 6,
            "mmproj-Qwen2.5-f16.gguf": GGUF,
        },
        downloads=500,
        likes=10,
        last_modified="2024-09-01T00:00:00.000Z",
        gguf={"architecture": "qwen2", "context_length": 32768},
    )
    server.add_repo(
        "someone/tiny-llama-GGUF",
        {"tiny-Q8_0.gguf": GGUF},
        downloads=900,
        likes=1,
        last_modified="2025-06-01T00:00:00.000Z",
    )
    server.add_repo("someone/llama-safetensors", {"model.safetensors": b"x"}, downloads=10**6)
    server.add_repo("meta/gated-llama-GGUF", {"gated-Q4_K_M.gguf": GGUF}, gated=401, likes=99)


def test_search_sorts_and_filters_gguf(hf_server: HFServer) -> None:
    _populate(hf_server)
    by_downloads = [r.repo for r in hub.search("", sort="downloads", limit=10)]
    assert by_downloads == [
        "someone/tiny-llama-GGUF",
        "bartowski/Qwen2.5-7B-Instruct-GGUF",
        "meta/gated-llama-GGUF",
    ]
    assert [r.repo for r in hub.search("", sort="likes")][0] == "meta/gated-llama-GGUF"
    assert [r.repo for r in hub.search("", sort="recency")][0] == "someone/tiny-llama-GGUF"
    hits = hub.search("qwen", limit=5)
    assert [h.repo for h in hits] == ["bartowski/Qwen2.5-7B-Instruct-GGUF"]
    assert hits[0].downloads == 500 and not hits[0].gated
    assert len(hub.search("", limit=1)) == 1
    # The query the server saw always carries the filter and a limit.
    searches = [h.path for h in hf_server.log if h.path.startswith("/api/models?")]
    assert all("filter=gguf" in p and "limit=" in p for p in searches)


def test_repo_view_groups_variants_with_sizes_and_sha(hf_server: HFServer) -> None:
    _populate(hf_server)
    repo = hf_server.repos["bartowski/Qwen2.5-7B-Instruct-GGUF"]
    view = hub.repo_view("bartowski/Qwen2.5-7B-Instruct-GGUF")
    assert view.commit == repo.commit
    assert view.license == "apache-2.0" and view.architecture == "qwen2"
    quants = [v.quantization for v in view.variants]
    assert quants == ["IQ4_XS", "Q4_K_M", "Q6_K", "F16"]  # smallest to largest
    q4 = view.variants[1]
    assert q4.filename == "Qwen2.5-7B-Instruct-Q4_K_M.gguf"
    assert q4.size == len(GGUF) * 3
    assert q4.sha256 == repo.files[q4.filename].sha256
    f16 = view.variants[3]
    assert f16.is_split and f16.split_parts == 2
    assert f16.filename.endswith("-00001-of-00002.gguf")
    assert f16.size == len(GGUF) * 11
    assert [f.filename for f in view.extra_files] == ["mmproj-Qwen2.5-f16.gguf"]
    assert hub.find_variant(view, None).quantization == "Q4_K_M"
    assert hub.find_variant(view, "q6_k").quantization == "Q6_K"
    with pytest.raises(RepoNotFound, match="no variant 'Q2_K'"):
        hub.find_variant(view, "Q2_K")


def test_tree_listing_matches_model_info(hf_server: HFServer) -> None:
    _populate(hf_server)
    files = hub.list_gguf_files("bartowski/Qwen2.5-7B-Instruct-GGUF")
    view = hub.repo_view("bartowski/Qwen2.5-7B-Instruct-GGUF")
    from_view = {f for v in view.variants for f in v.files} | set(view.extra_files)
    assert set(files) == from_view


def test_missing_repo_is_repo_not_found(hf_server: HFServer) -> None:
    with pytest.raises(RepoNotFound, match="nobody/nothing was not found"):
        hub.repo_view("nobody/nothing")


def test_gated_file_explains_license_and_token(hf_server: HFServer) -> None:
    from assistant.models import downloads

    _populate(hf_server)
    for status in (401, 403):
        hf_server.repos["meta/gated-llama-GGUF"].gated = status
        with pytest.raises(GatedRepoError, match="is gated: accept its license on huggingface.co"):
            downloads.resolve("meta/gated-llama-GGUF", "gated-Q4_K_M.gguf")


def test_unreachable_hub_is_network_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # conftest points HF_ENDPOINT at a port nobody listens on.
    with pytest.raises(NetworkError, match="Could not reach Hugging Face"):
        hub.repo_view("bartowski/Qwen2.5-7B-Instruct-GGUF")


def test_offline_mode_is_refused_up_front(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(NetworkError, match="HF_HUB_OFFLINE"):
        hub.search("llama")
    with pytest.raises(NetworkError, match="HF_HUB_OFFLINE"):
        hub.repo_view("a/b")


def test_token_from_env_then_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.settings import Settings

    assert hub.token() is None
    Settings(hf_token="hf_settings").save()
    assert hub.token() == "hf_settings"
    monkeypatch.setenv("HF_TOKEN", "hf_env")
    assert hub.token() == "hf_env"


@pytest.mark.parametrize(
    ("name", "quant"),
    [
        ("Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf", "Q4_K_M"),
        ("model.IQ4_XS.gguf", "IQ4_XS"),
        ("qwen2.5-7b-instruct-q5_k_m-00001-of-00002.gguf", "Q5_K_M"),
        ("Llama-3.2-1B-Instruct-Q4_0_4_4.gguf", "Q4_0_4_4"),
        ("gemma-2-9b-it-f16.gguf", "F16"),
        ("Qwen3-8B-UD-Q4_K_XL.gguf", "UD-Q4_K_XL"),
        ("Q8_0/model-Q8_0-00001-of-00003.gguf", "Q8_0"),
        ("Phi-3.5-mini-instruct-IQ2_XXS.gguf", "IQ2_XXS"),
        ("gpt-oss-20b-MXFP4.gguf", "MXFP4"),
        ("plainname.gguf", None),
    ],
)
def test_quantization_from_filename(name: str, quant: str | None) -> None:
    assert hub.quantization_from_filename(name) == quant


def test_split_parts_missing_are_skipped() -> None:
    files = [
        hub.RemoteFile("m-Q4_K_M-00001-of-00003.gguf", 1, None),
        hub.RemoteFile("m-Q4_K_M-00003-of-00003.gguf", 1, None),
    ]
    variants, _ = hub.group_variants("a/b", files)
    assert variants == []


def test_catalog_refresh_reads_live_sizes(hf_server: HFServer) -> None:
    repo = "bartowski/Qwen2.5-Coder-7B-Instruct-GGUF"  # a catalog entry
    entry = catalog.find(repo)
    assert entry is not None and all(v.approx for v in entry.variants)
    hf_server.add_repo(
        repo,
        {
            "Qwen2.5-Coder-7B-Instruct-Q4_K_M.gguf": GGUF * 3,
            "Qwen2.5-Coder-7B-Instruct-Q6_K.gguf": GGUF * 4,
        },
        gguf={"architecture": "qwen2", "context_length": 32768},
    )
    fresh = catalog.refresh(repo)
    assert fresh.name == entry.name  # curated text kept
    assert [v.quantization for v in fresh.variants] == ["Q4_K_M", "Q6_K"]  # what the Hub has
    assert all(not v.approx and v.sha256 for v in fresh.variants)


def test_search_fails_fast_when_the_hub_is_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from assistant.errors import NetworkError
    from assistant.models import hub

    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    started = time.monotonic()
    with pytest.raises(NetworkError, match="Could not reach Hugging Face"):
        hub.search("qwen")
    assert time.monotonic() - started < 5
