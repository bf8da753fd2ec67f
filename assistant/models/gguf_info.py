"""What a GGUF file is: its header, read by a small parser of our own.

The same parser reads a local file and the first few megabytes of a remote file fetched with an
HTTP Range request: ``parse_gguf_header`` raises ``IncompleteHeader(needed=...)`` when the bytes
it was given end before the header does, so the caller can fetch more and try again. Arrays become
``GGUFArray``: small numeric ones (per-layer head counts) keep their values, big ones (the
tokenizer's vocabulary: 262k strings for Gemma 3) only their length, never decoded.

Over 400 lines: the GGUF format's value types and the reading of every architecture's keys we
use (layers, heads, context, templates, split files).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType

from assistant.errors import InvalidModelFile

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32

# Value types of the GGUF key/value section (gguf.GGUFValueType), with struct formats for the
# fixed-size ones.
_UINT8, _INT8, _UINT16, _INT16, _UINT32, _INT32, _FLOAT32, _BOOL = range(8)
_STRING, _ARRAY, _UINT64, _INT64, _FLOAT64 = 8, 9, 10, 11, 12
_SCALAR_FORMATS: dict[int, str] = {
    _UINT8: "<B",
    _INT8: "<b",
    _UINT16: "<H",
    _INT16: "<h",
    _UINT32: "<I",
    _INT32: "<i",
    _FLOAT32: "<f",
    _BOOL: "<?",
    _UINT64: "<Q",
    _INT64: "<q",
    _FLOAT64: "<d",
}
_SCALAR_SIZES = {t: struct.calcsize(f) for t, f in _SCALAR_FORMATS.items()}

# Numeric arrays up to this many items keep their values (per-layer numbers); longer ones, and
# arrays of strings or arrays, keep only their length.
MAX_ARRAY_VALUES = 4096
_ARRAY_ITEM_CHARS = {t: f[1] for t, f in _SCALAR_FORMATS.items()}
# Tensor names the fit estimate needs: the input embedding and the output head (absent when the
# model ties the two, i.e. uses the embedding matrix as the output head too).
_TOKEN_EMBD = b"token_embd.weight"
_OUTPUT = b"output.weight"

# Sanity limits: a corrupt header must fail with a message, not ask for a 2**63-byte read.
_MAX_STRING = 1 << 28
_MAX_COUNT = 1 << 40
_MAX_DIMS = 8

# A few names differ from llama.cpp's enum spelling in what users see on model cards.
_FILE_TYPE_NAMES = {0: "F32", 1: "F16", 32: "BF16", 38: "MXFP4"}


def quantization_name(file_type: int) -> str | None:
    """``general.file_type`` (llama_ftype) -> "Q4_K_M", "Q8_0", "F16", ... (None if unknown)."""
    if file_type in _FILE_TYPE_NAMES:
        return _FILE_TYPE_NAMES[file_type]
    try:
        name = LlamaFileType(file_type).name
    except ValueError:
        return None
    if name == "GUESSED":
        return None
    return name.removeprefix("MOSTLY_").removeprefix("ALL_")


@dataclass(frozen=True)
class GGUFArray:
    """A metadata array: its length, and its items when it is a short numeric array."""

    count: int
    values: tuple[int | float | bool, ...] | None = None

    def integers(self) -> tuple[int, ...] | None:
        """The items as ints, if every one is an int (not a bool, not a float); else None."""
        if self.values is None or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in self.values
        ):
            return None
        return tuple(int(v) for v in self.values)


@dataclass(frozen=True)
class GGUFInfo:
    architecture: str
    name: str | None
    quantization: str | None
    context_length: int
    n_layers: int
    n_embd: int
    n_head: int
    n_head_kv: int
    key_length: int
    value_length: int
    sliding_window: int | None
    chat_template: str | None
    n_tensors: int
    data_offset: int | None
    tensor_data_bytes: int | None
    file_size: int | None
    metadata: Mapping[str, object] = field(repr=False)
    # KV heads of each layer when the file gives them per layer (hybrid models: 0 for a recurrent
    # or convolution layer, which has no KV cache); None when every layer has n_head_kv.
    kv_heads_per_layer: tuple[int, ...] | None = None
    # Bytes of the token embedding and of the output head, from the tensor list; None when this
    # header does not list them (or their type is unknown).
    token_embd_bytes: int | None = None
    output_bytes: int | None = None
    # True if the embedding matrix doubles as the output head (no ``output.weight``: Gemma, Llama
    # 3.2 1B/3B, small Qwen), False if the model has its own, None if this header cannot tell.
    tied_embeddings: bool | None = None


class IncompleteHeader(Exception):
    """The bytes end before the header does; fetch the first ``needed`` bytes and parse again.

    ``needed`` is past the point where parsing stopped and at least double the bytes given (capped
    at the file size when known), so reading a header remotely takes a few rounds at most.
    """

    def __init__(self, needed: int) -> None:
        super().__init__(f"GGUF header needs at least {needed} bytes")
        self.needed = needed


class _Buffer:
    """Bytes read so far plus a way to get more (a file) or none (a prefix in memory)."""

    def __init__(
        self,
        data: bytes | bytearray,
        more: Callable[[bytearray, int], None] | None,
        file_size: int | None = None,
    ):
        self.data = data
        self.more = more
        self.file_size = file_size

    def ensure(self, end: int) -> None:
        if end <= len(self.data):
            return
        if self.more is None:
            # At least up to where parsing stopped, and double what we had, so a remote reader
            # needs a few rounds, not one per field; never past the end of the file.
            needed = max(end, 2 * len(self.data))
            if self.file_size is not None and end <= self.file_size:
                needed = min(needed, self.file_size)
            raise IncompleteHeader(needed=needed)
        assert isinstance(self.data, bytearray)
        self.more(self.data, end)
        if end > len(self.data):
            raise _EndOfFile(end)


class _EndOfFile(Exception):
    def __init__(self, needed: int) -> None:
        super().__init__(needed)
        self.needed = needed


class _Corrupt(Exception):
    """The header breaks the format (absurd lengths, unknown types)."""


def parse_gguf_header(
    data: bytes | bytearray, file_size: int | None = None, *, name: str = "This file"
) -> GGUFInfo:
    """Parse a GGUF header from ``data`` (the whole file or a prefix of it).

    Raises IncompleteHeader when ``data`` ends too soon, InvalidModelFile when it is no GGUF.
    ``name`` is how messages refer to the file.
    """
    try:
        return _parse(_Buffer(data, None, file_size), file_size, name)
    except _Corrupt as e:
        raise InvalidModelFile(f"{name} is not a valid GGUF model file ({e}).") from None


def read_gguf_info(path: str | Path) -> GGUFInfo:
    """Read the header of a local GGUF file; InvalidModelFile with a user sentence if unusable."""
    path = Path(path)
    name = path.name or str(path)
    try:
        f = path.open("rb")
    except FileNotFoundError:
        raise InvalidModelFile(f"The model file {path} does not exist.") from None
    except IsADirectoryError:
        raise InvalidModelFile(f"{path} is a folder, not a model file.") from None
    except OSError as e:
        raise InvalidModelFile(f"The model file {path} could not be opened: {e.strerror}.") from e
    with f:
        try:
            file_size = os.fstat(f.fileno()).st_size

            def more(buf: bytearray, end: int) -> None:
                # Grow geometrically so a 6 MB vocabulary costs a handful of reads, not thousands.
                want = max(end - len(buf), len(buf), 1 << 16)
                buf += f.read(want)

            buf = bytearray()
            buf += f.read(1 << 20)
            info = _parse(_Buffer(buf, more), file_size, name)
        except _EndOfFile:
            if file_size == 0:
                raise InvalidModelFile(f"{name} is empty, not a model file.") from None
            if bytes(buf[:4]) == GGUF_MAGIC:
                raise InvalidModelFile(
                    f"{name} is incomplete: it ends in the middle of its header "
                    f"({file_size:,} bytes). The download was probably interrupted; "
                    "download it again."
                ) from None
            raise InvalidModelFile(_not_gguf(name)) from None
        except _Corrupt as e:
            raise InvalidModelFile(f"{name} is not a valid GGUF model file ({e}).") from None
        except OSError as e:
            raise InvalidModelFile(f"{name} could not be read: {e.strerror or e}.") from e
    if info.data_offset is not None and info.tensor_data_bytes is not None:
        needed = info.data_offset + info.tensor_data_bytes
        if file_size < needed:
            raise InvalidModelFile(
                f"{name} is incomplete: it has {file_size:,} bytes but its tensors need "
                f"{needed:,}. The download was probably interrupted; download it again."
            )
    return info


def _not_gguf(name: str) -> str:
    return f"{name} is not a GGUF model file (it does not start with the GGUF signature)."


def _parse(buf: _Buffer, file_size: int | None, name: str) -> GGUFInfo:
    buf.ensure(4)
    if bytes(buf.data[:4]) != GGUF_MAGIC:
        raise InvalidModelFile(_not_gguf(name))
    buf.ensure(8)
    (version,) = struct.unpack_from("<I", buf.data, 4)
    if version not in SUPPORTED_VERSIONS:
        if version & 0xFFFF == 0 and (version >> 24) in SUPPORTED_VERSIONS:
            raise InvalidModelFile(f"{name} is a big-endian GGUF file, which this app cannot read.")
        raise InvalidModelFile(
            f"{name} uses GGUF version {version}, which this app cannot read "
            "(it reads versions 2 and 3)."
        )
    buf.ensure(24)
    n_tensors, n_kv = struct.unpack_from("<QQ", buf.data, 8)
    if n_tensors > _MAX_COUNT or n_kv > _MAX_COUNT:
        raise _Corrupt("absurd tensor or key count")
    pos = 24
    metadata: dict[str, object] = {}
    for _ in range(n_kv):
        key, pos = _read_string(buf, pos)
        buf.ensure(pos + 4)
        (vtype,) = struct.unpack_from("<I", buf.data, pos)
        pos += 4
        value, pos = _read_value(buf, pos, vtype)
        metadata[key] = value

    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise _Corrupt(f"bad alignment {alignment!r}")

    tensor_end = 0
    sizes_known = True
    named: dict[bytes, int | None] = {}
    for _ in range(n_tensors):
        name_start = pos + 8
        _tname, pos = _read_string(buf, pos, decode=False)
        tname = bytes(buf.data[name_start:pos]) if pos - name_start <= len(_TOKEN_EMBD) else b""
        buf.ensure(pos + 4)
        (n_dims,) = struct.unpack_from("<I", buf.data, pos)
        pos += 4
        if n_dims > _MAX_DIMS:
            raise _Corrupt(f"tensor with {n_dims} dimensions")
        buf.ensure(pos + 8 * n_dims + 12)
        dims = struct.unpack_from(f"<{n_dims}Q", buf.data, pos)
        pos += 8 * n_dims
        ggml_type, offset = struct.unpack_from("<IQ", buf.data, pos)
        pos += 12
        nbytes = _tensor_bytes(ggml_type, dims)
        if tname in (_TOKEN_EMBD, _OUTPUT):
            named[tname] = nbytes
        if nbytes is None:
            sizes_known = False
        else:
            tensor_end = max(tensor_end, offset + nbytes)
    data_offset = (pos + alignment - 1) // alignment * alignment

    return _info(
        metadata,
        n_tensors=n_tensors,
        data_offset=data_offset,
        tensor_data_bytes=tensor_end if sizes_known else None,
        file_size=file_size,
        name=name,
        token_embd_bytes=named.get(_TOKEN_EMBD),
        output_bytes=named.get(_OUTPUT),
        tied_embeddings=_tied(metadata, named),
    )


def _tied(metadata: Mapping[str, object], named: Mapping[bytes, object]) -> bool | None:
    if _OUTPUT in named:
        return False
    split_count = metadata.get("split.count")
    if isinstance(split_count, int) and split_count > 1:
        return None  # part 1 of a split model: the output head may be in a later part
    return True if _TOKEN_EMBD in named else None


def _read_string(buf: _Buffer, pos: int, *, decode: bool = True) -> tuple[str, int]:
    buf.ensure(pos + 8)
    (n,) = struct.unpack_from("<Q", buf.data, pos)
    if n > _MAX_STRING:
        raise _Corrupt(f"string of {n} bytes")
    pos += 8
    buf.ensure(pos + n)
    if not decode:
        return "", pos + n
    return bytes(buf.data[pos : pos + n]).decode("utf-8", errors="replace"), pos + n


def _read_value(buf: _Buffer, pos: int, vtype: int) -> tuple[object, int]:
    if vtype == _STRING:
        return _read_string(buf, pos)
    fmt = _SCALAR_FORMATS.get(vtype)
    if fmt is not None:
        size = _SCALAR_SIZES[vtype]
        buf.ensure(pos + size)
        (value,) = struct.unpack_from(fmt, buf.data, pos)
        return value, pos + size
    if vtype == _ARRAY:
        buf.ensure(pos + 12)
        item_type, count = struct.unpack_from("<IQ", buf.data, pos)
        pos += 12
        if count > _MAX_COUNT:
            raise _Corrupt(f"array of {count} items")
        char = _ARRAY_ITEM_CHARS.get(item_type)
        if char is not None and count <= MAX_ARRAY_VALUES:
            end = pos + _SCALAR_SIZES[item_type] * count
            buf.ensure(end)
            return GGUFArray(count, struct.unpack_from(f"<{count}{char}", buf.data, pos)), end
        return GGUFArray(count), _skip_array(buf, pos, item_type, count)
    raise _Corrupt(f"unknown value type {vtype}")


def _skip_array(buf: _Buffer, pos: int, item_type: int, count: int) -> int:
    """Step over an array without building it (big arrays are summarised as their length)."""
    size = _SCALAR_SIZES.get(item_type)
    if size is not None:
        end = pos + size * count
        buf.ensure(end)
        return end
    if item_type == _STRING:
        # The vocabulary: a tight loop over length prefixes, about 50 ms for 262k tokens.
        unpack_from = struct.Struct("<Q").unpack_from
        data = buf.data
        for _ in range(count):
            if pos + 8 > len(data):
                buf.ensure(pos + 8)
                data = buf.data
            (n,) = unpack_from(data, pos)
            if n > _MAX_STRING:
                raise _Corrupt(f"string of {n} bytes")
            pos += 8 + n
        buf.ensure(pos)
        return pos
    if item_type == _ARRAY:
        for _ in range(count):
            buf.ensure(pos + 12)
            inner_type, inner_count = struct.unpack_from("<IQ", buf.data, pos)
            pos = _skip_array(buf, pos + 12, inner_type, inner_count)
        return pos
    raise _Corrupt(f"unknown array item type {item_type}")


def _tensor_bytes(ggml_type: int, dims: tuple[int, ...]) -> int | None:
    try:
        block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    except (ValueError, KeyError):
        return None
    n = 1
    for d in dims:
        n *= d
    return n // block * type_size


def _info(
    metadata: dict[str, object],
    *,
    n_tensors: int,
    data_offset: int | None,
    tensor_data_bytes: int | None,
    file_size: int | None,
    name: str,
    token_embd_bytes: int | None = None,
    output_bytes: int | None = None,
    tied_embeddings: bool | None = None,
) -> GGUFInfo:
    arch = metadata.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise InvalidModelFile(f"{name} is a GGUF file but not a model (it names no architecture).")
    if metadata.get("general.type") == "adapter":
        raise InvalidModelFile(f"{name} is a LoRA adapter, not a model you can chat with.")
    if arch == "clip":
        raise InvalidModelFile(
            f"{name} is a vision projector (mmproj), not a model you can chat with."
        )

    def integer(key: str, default: int = 0) -> int:
        value = metadata.get(f"{arch}.{key}")
        return value if isinstance(value, int) and not isinstance(value, bool) else default

    def per_layer(key: str) -> tuple[int, ...] | None:
        # Hybrid models (LFM2, Jamba, Granite hybrid) and OpenELM give some counts per layer.
        value = metadata.get(f"{arch}.{key}")
        return value.integers() if isinstance(value, GGUFArray) else None

    n_layers = integer("block_count")
    n_embd = integer("embedding_length")
    heads = per_layer("attention.head_count")
    n_head = max(heads, default=0) if heads is not None else integer("attention.head_count")
    # llama.cpp: n_head_kv defaults to n_head, layer by layer; the head size to n_embd / the
    # first layer's n_head.
    kv_heads = per_layer("attention.head_count_kv")
    if kv_heads is None and f"{arch}.attention.head_count_kv" not in metadata:
        kv_heads = heads
    n_head_kv = (
        max(kv_heads, default=0)
        if kv_heads is not None
        else integer("attention.head_count_kv", n_head)
    )
    if kv_heads is not None and len(kv_heads) != n_layers:
        kv_heads = None  # not one per layer: keep only the largest count
    first_head = heads[0] if heads else 0
    head_dim = n_embd // (first_head or n_head) if (first_head or n_head) else 0
    sliding = metadata.get(f"{arch}.attention.sliding_window")
    file_type = metadata.get("general.file_type")
    general_name = metadata.get("general.name")
    template = metadata.get("tokenizer.chat_template")
    return GGUFInfo(
        architecture=arch,
        name=general_name if isinstance(general_name, str) else None,
        quantization=quantization_name(file_type) if isinstance(file_type, int) else None,
        context_length=integer("context_length"),
        n_layers=n_layers,
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=n_head_kv,
        key_length=integer("attention.key_length", head_dim),
        value_length=integer("attention.value_length", head_dim),
        sliding_window=sliding if isinstance(sliding, int) and sliding > 0 else None,
        chat_template=template if isinstance(template, str) and template.strip() else None,
        n_tensors=n_tensors,
        data_offset=data_offset,
        tensor_data_bytes=tensor_data_bytes,
        file_size=file_size,
        metadata=MappingProxyType(metadata),
        kv_heads_per_layer=kv_heads,
        token_embd_bytes=token_embd_bytes,
        output_bytes=output_bytes,
        tied_embeddings=tied_embeddings,
    )
