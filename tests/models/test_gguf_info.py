"""The GGUF header parser, against tiny models we write and the real starter model."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.errors import InvalidModelFile
from assistant.models.gguf_info import (
    MAX_ARRAY_VALUES,
    GGUFArray,
    IncompleteHeader,
    parse_gguf_header,
    quantization_name,
    read_gguf_info,
)
from tests.tinymodel import CHATML_TEMPLATE, vocabulary, write_header_only, write_tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(
        tmp_path_factory.mktemp("gguf") / "tiny.gguf", chat_template=CHATML_TEMPLATE
    )


def test_tiny_model_metadata(tiny: Path) -> None:
    info = read_gguf_info(tiny)
    assert info.architecture == "llama"
    assert info.name == "Tiny Llama"
    assert info.quantization == "F32"
    assert (info.context_length, info.n_layers, info.n_embd) == (2048, 2, 64)
    assert (info.n_head, info.n_head_kv, info.key_length, info.value_length) == (4, 2, 16, 16)
    assert info.sliding_window is None
    assert info.chat_template == CHATML_TEMPLATE
    assert info.n_tensors == 3 + 9 * 2
    assert info.file_size == tiny.stat().st_size
    assert info.data_offset is not None and info.tensor_data_bytes is not None
    assert info.data_offset + info.tensor_data_bytes == info.file_size
    # Arrays are GGUFArrays (short numeric ones with their items), scalars kept as they are.
    tokens, token_types = vocabulary()
    assert info.metadata["tokenizer.ggml.tokens"] == GGUFArray(len(tokens))
    assert info.metadata["tokenizer.ggml.token_type"] == GGUFArray(len(tokens), tuple(token_types))
    assert info.metadata["tokenizer.ggml.model"] == "gpt2"
    # Its own output head: both matrices are in the file.
    assert info.tied_embeddings is False
    assert info.token_embd_bytes == info.output_bytes == len(tokens) * 64 * 4
    assert info.kv_heads_per_layer is None


def test_tied_embeddings_from_the_tensor_list(tmp_path: Path) -> None:
    tied = read_gguf_info(write_tiny_model(tmp_path / "tied.gguf", tied=True))
    assert tied.tied_embeddings is True
    assert tied.output_bytes is None and tied.token_embd_bytes == len(vocabulary()[0]) * 64 * 4
    # Part 1 of a split model: the output head may be in another part, so it cannot tell.
    part = write_header_only(
        tmp_path / "part.gguf", "llama", n_layers=2, n_embd=64, n_head=4, tied=True, split_count=2
    )
    info = parse_gguf_header(part.read_bytes())
    assert info.tied_embeddings is None and info.token_embd_bytes == 1000 * 64 * 2


def test_per_layer_head_counts(tmp_path: Path) -> None:
    # LFM2-like: attention in 2 of 6 layers, convolutions (no KV heads) in the others.
    path = write_header_only(
        tmp_path / "hybrid.gguf",
        "lfm2",
        n_layers=6,
        n_embd=128,
        n_head=8,
        n_head_kv=[0, 0, 2, 0, 0, 2],
    )
    info = parse_gguf_header(path.read_bytes())
    assert (info.n_layers, info.n_head, info.n_head_kv, info.key_length) == (6, 8, 2, 16)
    assert info.kv_heads_per_layer == (0, 0, 2, 0, 0, 2)
    assert info.metadata["lfm2.attention.head_count_kv"] == GGUFArray(6, (0, 0, 2, 0, 0, 2))

    # OpenELM-like: heads per layer, no KV count (it defaults to the heads, layer by layer).
    path = write_header_only(
        tmp_path / "elm.gguf", "openelm", n_layers=3, n_embd=96, n_head=[2, 3, 4], key_length=32
    )
    info = parse_gguf_header(path.read_bytes())
    assert (info.n_head, info.n_head_kv, info.key_length) == (4, 4, 32)
    assert info.kv_heads_per_layer == (2, 3, 4)

    # An array that is not one count per layer is not taken for one.
    path = write_header_only(
        tmp_path / "odd.gguf", "lfm2", n_layers=3, n_embd=64, n_head=4, n_head_kv=[1, 2]
    )
    info = parse_gguf_header(path.read_bytes())
    assert info.n_head_kv == 2 and info.kv_heads_per_layer is None


def test_long_arrays_keep_only_their_length(tmp_path: Path) -> None:
    n = MAX_ARRAY_VALUES + 1
    path = write_header_only(
        tmp_path / "vocab.gguf", "llama", n_layers=1, n_embd=8, n_head=1, n_vocab=n
    )
    info = parse_gguf_header(path.read_bytes())
    assert info.metadata["tokenizer.ggml.token_type"] == GGUFArray(n)
    assert info.metadata["tokenizer.ggml.tokens"] == GGUFArray(n)


def test_f16_model_and_no_template(tmp_path: Path) -> None:
    info = read_gguf_info(write_tiny_model(tmp_path / "f16.gguf", f16=True, n_layers=3))
    assert info.quantization == "F16"
    assert info.n_layers == 3
    assert info.chat_template is None
    assert info.data_offset + info.tensor_data_bytes == info.file_size


def test_parse_prefix_asks_for_more_until_complete(tiny: Path) -> None:
    data = tiny.read_bytes()
    with pytest.raises(IncompleteHeader) as excinfo:
        parse_gguf_header(data[:100])
    assert excinfo.value.needed > 100

    # What a remote reader does: fetch up to `needed` (and more), try again.
    size = 100
    for _ in range(50):
        try:
            info = parse_gguf_header(data[:size], file_size=len(data))
            break
        except IncompleteHeader as e:
            assert e.needed > size
            size = e.needed
    else:
        pytest.fail("never completed")
    assert info == read_gguf_info(tiny)
    assert size < len(data)  # the header, not the tensors


def test_parse_rejects_non_gguf_bytes() -> None:
    with pytest.raises(InvalidModelFile, match="not a GGUF"):
        parse_gguf_header(b"<html>Not found</html>")
    with pytest.raises(IncompleteHeader):
        parse_gguf_header(b"GG")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidModelFile, match="does not exist"):
        read_gguf_info(tmp_path / "nope.gguf")


def test_text_file_named_gguf(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_text("Entry not found\n")
    with pytest.raises(InvalidModelFile) as excinfo:
        read_gguf_info(path)
    assert str(excinfo.value) == (
        "model.gguf is not a GGUF model file (it does not start with the GGUF signature)."
    )


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.gguf"
    path.write_bytes(b"")
    with pytest.raises(InvalidModelFile, match="empty"):
        read_gguf_info(path)


def test_truncated_tensor_data(tiny: Path, tmp_path: Path) -> None:
    path = tmp_path / "cut.gguf"
    path.write_bytes(tiny.read_bytes()[:-1000])
    with pytest.raises(InvalidModelFile, match="cut.gguf is incomplete.*download it again"):
        read_gguf_info(path)


def test_truncated_header(tiny: Path, tmp_path: Path) -> None:
    path = tmp_path / "cut.gguf"
    path.write_bytes(tiny.read_bytes()[:500])
    with pytest.raises(InvalidModelFile, match="incomplete: it ends in the middle of its header"):
        read_gguf_info(path)


def test_unsupported_version(tiny: Path, tmp_path: Path) -> None:
    data = bytearray(tiny.read_bytes())
    data[4:8] = (7).to_bytes(4, "little")
    path = tmp_path / "v7.gguf"
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidModelFile, match="GGUF version 7"):
        read_gguf_info(path)


def test_folder_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(InvalidModelFile, match="folder"):
        read_gguf_info(tmp_path)


@pytest.mark.parametrize(
    ("file_type", "name"),
    [
        (0, "F32"),
        (1, "F16"),
        (2, "Q4_0"),
        (7, "Q8_0"),
        (10, "Q2_K"),
        (12, "Q3_K_M"),
        (15, "Q4_K_M"),
        (17, "Q5_K_M"),
        (18, "Q6_K"),
        (32, "BF16"),
        (1024, None),
        (9999, None),
    ],
)
def test_quantization_names(file_type: int, name: str | None) -> None:
    assert quantization_name(file_type) == name


@pytest.mark.starter
def test_starter_model(starter_model_file: Path) -> None:
    info = read_gguf_info(starter_model_file)
    assert info.architecture == "llama"
    assert info.quantization == "Q4_1"
    assert info.chat_template and "<|im_start|>" in info.chat_template  # an instruct model
    assert info.data_offset + info.tensor_data_bytes == starter_model_file.stat().st_size


@pytest.mark.starter
def test_gemma_model(gemma_model_file: Path) -> None:
    starter_model_file = gemma_model_file
    info = read_gguf_info(starter_model_file)
    assert info.architecture == "gemma3"
    assert info.quantization == "Q4_K_M"
    assert info.context_length == 32768
    assert (info.n_layers, info.n_embd, info.n_head, info.n_head_kv) == (18, 640, 4, 1)
    assert info.key_length == 256
    assert info.sliding_window == 512
    assert info.chat_template is None  # a base model
    assert info.metadata["tokenizer.ggml.tokens"] == GGUFArray(262144)
    assert info.tied_embeddings is True and info.output_bytes is None
    assert info.token_embd_bytes == 640 * 262144 // 32 * 34  # Q8_0
    assert info.kv_heads_per_layer is None
    assert info.data_offset + info.tensor_data_bytes == starter_model_file.stat().st_size
