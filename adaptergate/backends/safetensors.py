"""The tensors of a safetensors file, read from its JSON header alone (no torch, no data read).

A safetensors file is an 8-byte little-endian header length, the JSON header,
then the data. The header length is bounded (:data:`_MAX_HEADER`, the
safetensors library's own cap).
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from adaptergate.backends.files import fail

__all__ = ["TensorInfo", "read_safetensors_header", "shape_text"]


_MAX_HEADER = 100_000_000  # the safetensors library refuses larger headers too

# Bits per element of the safetensors dtypes (sub-byte float formats included).
_DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32, "C64": 64,
    "F64": 64, "I64": 64, "U64": 64,
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}


def shape_text(shape: Iterable[int]) -> str:
    return str(tuple(shape))


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as a safetensors header describes it."""

    dtype: str
    shape: tuple[int, ...]


def read_safetensors_header(path: Path) -> dict[str, TensorInfo]:
    """The tensors of a safetensors file, read from its header alone.

    The header is validated the way the safetensors library validates it
    (offsets contiguous, sizes consistent with dtype and shape, the data
    section exactly as long as the header says), so a file that passes here
    also loads there. Raises :class:`InvalidInputError` naming the file when
    it is missing, truncated or not a safetensors file.
    """
    path = Path(path)
    bad = f"{path} is not a valid safetensors file"
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise fail(f"safetensors file {path} is truncated: {size} bytes, too short for a header")
            (n,) = struct.unpack("<Q", head)
            if n > _MAX_HEADER:
                raise fail(f"{bad}: header length {n} exceeds {_MAX_HEADER} bytes")
            if n > size - 8:
                raise fail(
                    f"safetensors file {path} is truncated: its header is {n} bytes but the file "
                    f"has {size - 8} after the length"
                )
            raw = fh.read(n)
    except FileNotFoundError:
        raise fail(f"safetensors file not found: {path}") from None
    except IsADirectoryError:
        raise fail(f"{bad}: it is a directory") from None
    except OSError as exc:
        raise fail(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) < n:
        raise fail(f"safetensors file {path} is truncated: header cut short")
    try:
        header = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise fail(f"{bad}: the header is nested too deeply to parse") from None
    except MemoryError:
        raise fail(f"{bad}: the header ({n} bytes) is too large to parse") from None
    except (UnicodeDecodeError, ValueError):
        raise fail(f"{bad}: the header is not JSON") from None
    if not isinstance(header, dict):
        raise fail(f"{bad}: the header is not a JSON object")

    data_len = size - 8 - n
    tensors: dict[str, TensorInfo] = {}
    spans: list[tuple[int, int, str]] = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict):
            raise fail(f"{bad}: entry {name!r} is not an object")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if not isinstance(dtype, str):
            raise fail(f"{bad}: tensor {name!r} has no dtype")
        if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
            raise fail(f"{bad}: tensor {name!r} has an invalid shape {shape!r}")
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(type(o) is int for o in offsets)
            and 0 <= offsets[0] <= offsets[1]
        ):
            raise fail(f"{bad}: tensor {name!r} has invalid data_offsets {offsets!r}")
        bits = _DTYPE_BITS.get(dtype)
        if bits is not None:
            nbits = math.prod(shape) * bits
            if nbits % 8 or nbits // 8 != offsets[1] - offsets[0]:
                raise fail(
                    f"{bad}: tensor {name!r} ({dtype} {shape_text(shape)}) spans "
                    f"{offsets[1] - offsets[0]} bytes"
                )
        tensors[name] = TensorInfo(dtype=dtype, shape=tuple(shape))
        spans.append((offsets[0], offsets[1], name))

    end = 0
    for begin, stop, name in sorted(spans):
        if begin != end:
            raise fail(f"{bad}: tensor {name!r} data does not start where the previous one ends")
        end = stop
    if end > data_len:
        raise fail(
            f"safetensors file {path} is truncated: its header describes {end} bytes of tensor "
            f"data but the file holds {data_len}"
        )
    if end < data_len:
        raise fail(f"{bad}: {data_len - end} bytes after the last tensor")
    return tensors
