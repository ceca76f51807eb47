"""The agecompact model file: one msgpack document holding a metadata header and the weights.

Layout (format version 1)::

    {"format": "agecompact-model", "format_version": 1,
     "header": {arch, arch_kwargs, input_size, color_order, pixel_range, margin, crops, task, name,
                dataset, metrics, source, num_params, package_version, created, state_sha256},
     "state": <bytes: msgpack of the Param + BatchStat tree, float32 arrays>}

The header carries everything needed to rebuild the network and to crop faces exactly as in training.
The state is kept as an opaque byte string so its checksum detects truncation and corruption.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from agecompact._version import __version__
from agecompact.errors import InputError
from agecompact.fieldtypes import typed_fields
from agecompact.fileio import atomic_write_bytes

FORMAT = "agecompact-model"
FORMAT_VERSION = 1
SUFFIX = ".msgpack"


@dataclass
class ModelMeta:
    """What a model file says about its network and its expected inputs."""

    arch: str
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    name: str | None = None  # display name, e.g. "ssrnet-wiki"
    input_size: int = 64
    color_order: str = "BGR"
    pixel_range: tuple[int, int] = (0, 255)
    margin: float = 0.4  # face-box margin per side used for the training crops
    crops: str = "single"  # "single" or "context" (C3AE's three crops)
    task: str = "age"
    dataset: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    num_params: int | None = None
    # gender models: how the raw score maps to P(male), e.g. {"method": "platt", "a": .., "b": ..} (see
    # agecompact.predict.pipeline.male_probability); empty: the score clipped to [0, 1]
    calibration: dict[str, Any] = field(default_factory=dict)
    package_version: str = __version__
    created: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["pixel_range"] = list(self.pixel_range)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelMeta:
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known}
        return cls(**typed_fields(cls, kwargs, ValueError, "header field"))

    @classmethod
    def for_arch(cls, arch: str, **overrides: Any) -> ModelMeta:
        """Defaults from the registry (margin, crops, task) for a registered architecture."""
        from agecompact.models.registry import get_spec

        spec = get_spec(arch)
        base: dict[str, Any] = {"arch": arch, "margin": spec.margin, "crops": spec.crops, "task": spec.task,
                                "num_params": spec.num_params}
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)


_NDARRAY_EXT = 1  # flax.serialization's msgpack extension code for an ndarray: (shape, dtype name, C bytes)


def _ext_pack(value: Any) -> msgpack.ExtType:
    if isinstance(value, np.ndarray) and not value.dtype.hasobject:
        body = (value.shape, value.dtype.name, value.tobytes("C"))
        return msgpack.ExtType(_NDARRAY_EXT, msgpack.packb(body, use_bin_type=True))
    raise TypeError(f"cannot store {type(value).__name__} in a model file")


def _ext_unpack(code: int, data: bytes) -> Any:
    if code != _NDARRAY_EXT:
        raise ValueError(f"unknown msgpack extension {code}")
    shape, dtype, buffer = msgpack.unpackb(data, raw=True)
    return np.frombuffer(buffer, dtype=np.dtype(dtype.decode())).reshape(shape)


def _pack_state(state: dict[str, Any]) -> bytes:
    """The state tree in flax.serialization's msgpack layout (byte-identical), written with numpy alone."""
    def arrays(tree: Any) -> Any:
        if isinstance(tree, dict):
            return {k: arrays(v) for k, v in tree.items()}
        return np.asarray(tree)

    return msgpack.packb(arrays(state), default=_ext_pack, strict_types=True)


def _unpack_state(body: bytes) -> dict[str, Any]:
    """Inverse of ``_pack_state``: nested dicts of read-only numpy arrays; no jax or flax import."""
    state = msgpack.unpackb(body, ext_hook=_ext_unpack, raw=False, strict_map_key=False)
    if not isinstance(state, dict):
        raise ValueError("the weights are not a tree of arrays")
    return state


def encode(meta: ModelMeta, state: dict[str, Any]) -> bytes:
    """Serialize a pure-dict state (nested dicts of float32 arrays) and its header."""
    body = _pack_state(state)
    header = meta.to_dict()
    header["created"] = header.get("created") or _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    header["package_version"] = __version__
    header["state_sha256"] = hashlib.sha256(body).hexdigest()
    doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "header": header, "state": body}
    return msgpack.packb(doc, use_bin_type=True)


def write(path: str | os.PathLike, meta: ModelMeta, state: dict[str, Any]) -> Path:
    path = Path(path)
    atomic_write_bytes(path, encode(meta, state))
    return path


def decode(data: bytes, *, origin: str = "model file") -> tuple[ModelMeta, dict[str, Any]]:
    try:
        doc = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception:
        raise InputError(f"{origin}: not an agecompact model file (corrupt or truncated)") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise InputError(f"{origin}: not an agecompact model file")
    version = doc.get("format_version")
    if version != FORMAT_VERSION:
        raise InputError(f"{origin}: model file format version {version} is not supported "
                         f"(this agecompact reads version {FORMAT_VERSION})")
    header, body = doc.get("header"), doc.get("state")
    if not isinstance(header, dict) or not isinstance(body, bytes) or "arch" not in header:
        raise InputError(f"{origin}: model file is missing its header or weights")
    if hashlib.sha256(body).hexdigest() != header.get("state_sha256"):
        raise InputError(f"{origin}: weights checksum mismatch (the file is corrupt)")
    try:
        state = _unpack_state(body)
    except Exception:
        raise InputError(f"{origin}: weights could not be decoded (the file is corrupt)") from None
    try:
        meta = ModelMeta.from_dict(header)
    except ValueError as e:
        raise InputError(f"{origin}: bad model file header ({e})") from None
    return meta, state


def read(path: str | os.PathLike) -> tuple[ModelMeta, dict[str, Any]]:
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"model file not found: {path}") from None
    except IsADirectoryError:
        raise InputError(f"expected a model file, got a folder: {path}") from None
    except OSError as e:
        raise InputError(f"cannot read model file {path}: {e.strerror}") from None
    return decode(data, origin=str(path))


def read_header(path: str | os.PathLike) -> ModelMeta:
    return read(path)[0]
