"""Read a CTranslate2 `model.bin` with numpy alone: its documented binary layout, no ctranslate2 needed.

Layout (ctranslate2/specs/model_spec.py `_serialize`, binary version 6): uint32 version; string spec name;
uint32 revision; uint32 count; then per variable: string name, uint8 rank, uint32 dims[rank], uint8 dtype
id, uint32 byte count, the bytes; then uint32 alias count and (alias, target) string pairs. A string is a
uint16 length (terminating NUL included) followed by its UTF-8 bytes and the NUL. Little-endian throughout.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# ctranslate2/specs/model_spec.py `_dtype_to_type_id`: the id is the index in this tuple
DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")


@dataclass
class CT2Model:
    spec: str  # e.g. "WhisperSpec"
    revision: int
    variables: dict[str, np.ndarray]  # float arrays as stored (float16 stays float16); aliases resolved


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def string(self) -> str:
        length = self.take("H")
        raw = self.data[self.pos : self.pos + length]
        self.pos += length
        return raw.rstrip(b"\0").decode("utf-8")

    def array(self, dtype: str, shape: tuple[int, ...], nbytes: int) -> np.ndarray:
        raw = self.data[self.pos : self.pos + nbytes]
        self.pos += nbytes
        if dtype == "bfloat16":  # numpy has no bfloat16: widen to float32 through the upper half-words
            words = np.frombuffer(raw, np.uint16).astype(np.uint32) << 16
            return words.view(np.float32).reshape(shape)
        return np.frombuffer(raw, dtype).reshape(shape)


def read_model(path: str | Path) -> CT2Model:
    """Every variable of a model.bin; ValueError when the file is not one this reader knows."""
    data = Path(path).read_bytes()
    reader = _Reader(data)
    version = reader.take("I")
    if version not in (5, 6):
        raise ValueError(f"{path}: CTranslate2 binary version {version} is not supported (5 or 6)")
    spec, revision = reader.string(), reader.take("I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(reader.take("I")):
        name = reader.string()
        rank = reader.take("B")
        shape = tuple(reader.take("I") for _ in range(rank))
        dtype = DTYPES[reader.take("B")]
        variables[name] = reader.array(dtype, shape, reader.take("I"))
    for _ in range(reader.take("I") if reader.pos < len(data) else 0):
        alias, target = reader.string(), reader.string()
        variables[alias] = variables[target]
    if reader.pos != len(data):
        raise ValueError(f"{path}: {len(data) - reader.pos} trailing bytes; not a CTranslate2 model.bin")
    return CT2Model(spec, revision, variables)
