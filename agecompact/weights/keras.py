"""Import the released Keras ``.h5`` weights (SSR-Net, AEC, C3AE) with h5py alone, no TensorFlow.

Layers are matched by their Keras names; the architecture is recognised from which layers the file
holds and their shapes. Every weight of the file must land in the model and every value of the model
must be filled, otherwise the import fails rather than returning a half-initialised network.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from agecompact.errors import InputError
from agecompact.weights.modelfile import ModelMeta

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

_KERAS_TO_OURS = {  # Keras weight name -> our variable name, by layer kind
    "kernel": "kernel",
    "bias": "bias",
    "gamma": "scale",
    "beta": "bias",
    "moving_mean": "mean",
    "moving_variance": "var",
}


def is_hdf5(path: str | os.PathLike) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(8) == HDF5_MAGIC
    except OSError:
        return False


def read_keras_weights(path: str | os.PathLike) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, str]]:
    """All weight arrays of a Keras file, keyed by layer ("dense_1" or "model_1/conv1") then weight."""
    import h5py

    layers: dict[str, dict[str, np.ndarray]] = {}
    try:
        with h5py.File(path, "r") as f:
            root = f["model_weights"] if "model_weights" in f else f
            attrs = {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in root.attrs.items()
                     if k in ("keras_version", "backend")}

            def visit(group_name: str, group) -> None:
                def add(name, obj):
                    if not isinstance(obj, h5py.Dataset):
                        return
                    parts = name.split("/")
                    weight = parts[-1].split(":")[0]
                    sub = parts[-2] if len(parts) >= 2 else group_name
                    key = group_name if sub == group_name else f"{group_name}/{sub}"
                    layers.setdefault(key, {})[weight] = np.asarray(obj[()], np.float32)

                group.visititems(add)

            for name in root:
                if isinstance(root[name], h5py.Group):
                    visit(name, root[name])
    except (OSError, KeyError, ValueError) as e:
        raise InputError(f"{path}: cannot read Keras weights ({e.__class__.__name__}: {e})") from None
    if not layers:
        raise InputError(f"{path}: the HDF5 file holds no Keras layer weights")
    return layers, attrs


def detect_arch(layers: dict[str, dict[str, np.ndarray]]) -> str:
    """Name the registered architecture whose Keras layers these are."""
    names = set(layers)
    if {"pred_age_stage1", "delta_s1", "local_delta_stage1"} <= names:
        return "ssrnet"
    if {"pred_stage1", "delta_s1", "local_delta_stage1"} <= names:
        return "ssrnet_gender"
    if "model_1/conv1" in names:
        feat = layers.get("dense_11") or layers.get("conv2d_1") or {}
        fan_in = int(np.prod(feat["kernel"].shape[:-1])) if "kernel" in feat else 0
        se = "model_1/dense_1" in names
        if fan_in == 1536:
            return "c3ae_full_se" if se else "c3ae_full"
        if fan_in == 512 and not se:
            return "c3ae"
    conv1 = layers.get("conv2d_1", {}).get("kernel")
    if conv1 is not None and conv1.shape == (3, 3, 3, 3) and "dense_9" in names:
        return "aec"
    sample = ", ".join(sorted(names)[:6])
    raise InputError(f"unrecognised Keras architecture (layers: {sample}, ...): "
                     "agecompact imports SSR-Net, SSR-Net gender, C3AE and AEC weights")


def _resolve(module, path: str):
    obj = module
    for part in path.split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj


def load_into(model, arch: str, layers: dict[str, dict[str, np.ndarray]], *, origin: str) -> None:
    """Copy Keras arrays into ``model`` following the family's layer map; strict both ways."""
    import jax
    from flax import nnx

    from agecompact.models.registry import keras_layer_map

    mapping = keras_layer_map(arch, model)
    unmapped = sorted(set(layers) - set(mapping))
    if unmapped:
        raise InputError(f"{origin}: weights for layers {unmapped} have no place in {arch}")
    filled = 0
    for keras_name, path in mapping.items():
        if keras_name not in layers:
            raise InputError(f"{origin}: layer {keras_name!r} expected by {arch} is missing from the file")
        target = _resolve(model, path)
        for weight, array in layers[keras_name].items():
            ours = _KERAS_TO_OURS.get(weight)
            var = getattr(target, ours, None) if ours else None
            if var is None:
                raise InputError(f"{origin}: unexpected weight {keras_name}/{weight}")
            expected = tuple(var.get_value().shape)
            if array.shape != expected:
                if array.size == int(np.prod(expected)) and array.ndim == 4 and array.shape[:2] == (1, 1):
                    array = array.reshape(expected)  # 1x1 conv over a 1x1 map == dense layer
                else:
                    raise InputError(f"{origin}: {keras_name}/{weight} has shape {array.shape}, "
                                     f"{arch} expects {expected}")
            var.set_value(jax.device_put(np.ascontiguousarray(array, np.float32)))  # no copy program
            filled += array.size
    leaves = jax.tree.leaves(nnx.state(model, nnx.Any(nnx.Param, nnx.BatchStat)))
    total = sum(x.size for x in leaves)
    if filled != total or any(isinstance(x, jax.ShapeDtypeStruct) for x in leaves):
        raise InputError(f"{origin}: the file filled {filled} of {total} values of {arch}")


def import_keras(path: str | os.PathLike, *, arch: str | None = None):
    """Build our model from a released ``.h5``; returns ``(module, meta)``.

    The network is built from abstract shapes (no random initialisers) and filled from the file.
    """
    from agecompact.models.registry import abstract_model

    path = Path(path)
    if not path.is_file():
        raise InputError(f"Keras weights not found: {path}")
    if not is_hdf5(path):
        raise InputError(f"{path}: not an HDF5 file (truncated download or wrong file?)")
    layers, attrs = read_keras_weights(path)
    arch = arch or detect_arch(layers)
    model = abstract_model(arch, origin=str(path))
    load_into(model, arch, layers, origin=str(path))
    model.eval()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    meta = ModelMeta.for_arch(
        arch,
        name=path.stem,
        source={"type": "keras", "file": path.name, "sha256": digest, **attrs},
    )
    return model, meta
