"""The Python API: ``load_model(source)`` and the ``AgeModel`` it returns.

>>> import agecompact
>>> model = agecompact.load_model("ssrnet_wiki.h5")      # Keras weights, our file, a run, a name
>>> ages = model.predict(faces_bgr_uint8)                 # (N, 64, 64, 3) -> (N,) float32 years
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from agecompact.errors import InputError, UsageError
from agecompact.models.registry import abstract_model
from agecompact.weights.modelfile import ModelMeta


class AgeModel:
    """A network plus the metadata that says how to feed it.

    ``predict`` takes uint8 BGR faces of shape (N, 64, 64, 3); context models (C3AE full) also take
    (N, 3, 64, 64, 3) = [outer, middle, inner] crops, and given a single crop they feed it to all three
    branches. The forward pass is compiled once per input shape.
    """

    def __init__(self, module, meta: ModelMeta):
        self.meta = meta
        self._module = None
        self._weights: dict[str, Any] | None = None  # the file's arrays while no module is built (lazy)
        self._origin = "model file"
        self._forward = None
        self.path: Path | None = None  # the file it was loaded from, if any
        if module is not None:
            self._attach(module)

    @classmethod
    def from_state(cls, meta: ModelMeta, state: dict[str, Any], *, origin: str = "model file") -> AgeModel:
        """A model whose network is built only when something needs it (JAX inference, an export).

        Until then it holds the file's numpy arrays: enough for the ONNX engine to find and run a cached
        export without importing JAX. The arrays are checked against the architecture when it is built.
        """
        from agecompact.models.registry import get_spec

        get_spec(meta.arch)  # an unknown architecture fails now, not at first use
        model = cls(None, meta)
        model._weights, model._origin = state, origin
        counts = _counts_by_name(state)
        model.num_params, model._counts = counts["total"], counts
        meta.num_params = model.num_params
        return model

    def _attach(self, module) -> None:
        from flax import nnx

        from agecompact.models.registry import param_counts

        module.eval()
        self._module = module
        self._weights = None
        self._counts = param_counts(module)
        self.num_params: int = self._counts["total"]
        self.meta.num_params = self.num_params
        self._graphdef, self._state = nnx.split(module)

    @property
    def module(self):
        """The Flax NNX network (built from the held arrays on first use for lazily loaded models)."""
        if self._module is None:
            self._attach(model_from_state(self.meta, self._weights or {}, origin=self._origin))
        return self._module

    @property
    def param_counts(self) -> dict[str, int]:
        """Trainable, non-trainable (BatchNorm statistics) and total values, the Keras way."""
        return dict(self._counts)

    # -- identity ---------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.meta.name or self.meta.arch

    @property
    def arch(self) -> str:
        return self.meta.arch

    def __repr__(self) -> str:
        return f"AgeModel(name={self.name!r}, arch={self.arch!r}, num_params={self.num_params})"

    # -- inference --------------------------------------------------------------------------------
    def _compiled(self):
        if self._forward is None:
            import jax
            from flax import nnx

            self.module  # noqa: B018  (builds the network of a lazily loaded model)
            graphdef = self._graphdef

            def forward(state, images):
                return nnx.merge(graphdef, state)(images)

            self._forward = jax.jit(forward)
        return self._forward

    def check_input(self, images: Any) -> np.ndarray:
        x = np.asarray(images)
        size = self.meta.input_size
        single = (size, size, 3)
        ok = x.ndim == 4 and x.shape[1:] == single
        if self.meta.crops == "context":
            ok = ok or (x.ndim == 5 and x.shape[1:] == (3, *single))
        if not ok:
            want = f"(N, {size}, {size}, 3)" + (f" or (N, 3, {size}, {size}, 3)" if self.meta.crops == "context" else "")
            raise UsageError(f"{self.name} expects {want} BGR images, got shape {x.shape}")
        if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
            raise UsageError(f"images must be uint8 (0..255) or float, got {x.dtype}")
        return x

    def outputs(self, images: Any, *, batch_size: int = 256) -> dict[str, np.ndarray]:
        """Every head of the network (``pred`` plus family-specific stage outputs) as numpy arrays."""
        import jax

        from agecompact.batching import padded_batches, powers_of_two

        x = self.check_input(images)
        fwd = self._compiled()
        chunks: list[dict[str, np.ndarray]] = []
        # batches padded to powers of two: a run compiles a handful of shapes at most
        for part, n in padded_batches(x, batch_size, powers_of_two(batch_size)):
            out = jax.device_get(fwd(self._state, part))
            chunks.append({k: np.asarray(v)[:n] for k, v in out.items()})
        if not chunks:
            return {"pred": np.zeros((0,), np.float32)}
        return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}

    def predict(self, images: Any, *, batch_size: int = 256) -> np.ndarray:
        """Ages in years (gender score for gender models), float32 of shape (N,)."""
        return self.outputs(images, batch_size=batch_size)["pred"].astype(np.float32)

    # -- persistence ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The weights as nested dicts of float32 numpy arrays (the model file's layout)."""
        if self._module is None:
            return _to_numpy(self._weights or {})
        from flax import nnx

        state = nnx.state(self.module, nnx.Any(nnx.Param, nnx.BatchStat))
        return _to_numpy(nnx.to_pure_dict(state))

    def save(self, path: str | os.PathLike) -> Path:
        from agecompact.weights import modelfile

        return modelfile.write(path, self.meta, self.state_dict())


def _to_numpy(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {str(k): _to_numpy(v) for k, v in tree.items()}
    return np.asarray(tree, dtype=np.float32)


def _restore_keys(tree: Any, like: Any) -> Any:
    """msgpack turns list indices into strings; map them back to the keys the live state uses."""
    if not isinstance(like, dict):
        return tree
    if not isinstance(tree, dict):
        raise ValueError("structure mismatch")
    keys = {str(k): k for k in like}
    if set(map(str, tree)) != set(keys):
        missing = sorted(set(keys) - set(map(str, tree)))
        extra = sorted(set(map(str, tree)) - set(keys))
        raise ValueError(f"missing {missing}, unexpected {extra}")
    return {keys[str(k)]: _restore_keys(v, like[keys[str(k)]]) for k, v in tree.items()}


def _counts_by_name(state: dict[str, Any]) -> dict[str, int]:
    """``param_counts`` from a state tree alone: BatchNorm statistics are the leaves named mean / var."""
    counts = {"trainable": 0, "non_trainable": 0}

    def walk(tree: Any) -> None:
        for key, value in tree.items():
            if isinstance(value, dict):
                walk(value)
            else:
                counts["non_trainable" if key in ("mean", "var") else "trainable"] += int(np.size(value))

    walk(state)
    return {**counts, "total": counts["trainable"] + counts["non_trainable"]}


def fill_model(module, arrays: dict[str, Any]) -> None:
    """Put the (already shape-checked) pure-dict ``arrays`` into ``module``; every value must be filled."""
    import jax
    from flax import nnx

    target = nnx.state(module, nnx.Any(nnx.Param, nnx.BatchStat))
    nnx.replace_by_pure_dict(target, jax.tree.map(lambda v: jax.device_put(np.ascontiguousarray(v, np.float32)), arrays))
    nnx.update(module, target)
    if any(isinstance(v, jax.ShapeDtypeStruct) for v in jax.tree.leaves(nnx.state(module))):
        raise InputError("the weights do not fill every value of the network")


def model_from_state(meta: ModelMeta, state: dict[str, Any], *, origin: str = "model file"):
    """Build the network a header describes (shapes only) and fill it with ``state``; shapes are checked."""
    import jax
    from flax import nnx

    module = abstract_model(meta.arch, meta.arch_kwargs, origin=origin)
    live = nnx.to_pure_dict(nnx.state(module, nnx.Any(nnx.Param, nnx.BatchStat)))
    try:
        restored = _restore_keys(state, live)
    except ValueError as e:
        raise InputError(f"{origin}: weights do not fit {meta.arch}: {e}") from None
    flat_live = dict(jax.tree_util.tree_leaves_with_path(live))
    for path, value in jax.tree_util.tree_leaves_with_path(restored):
        want = flat_live[path].shape
        if np.shape(value) != tuple(want):
            name = "/".join(str(getattr(p, "key", p)) for p in path)
            raise InputError(f"{origin}: weight {name} has shape {np.shape(value)}, {meta.arch} expects {tuple(want)}")
    fill_model(module, restored)
    return module


def load_model(source: str | os.PathLike, *, arch: str | None = None, lazy: bool = False) -> AgeModel:
    """Load a model from one of:

    * an agecompact model file (``.msgpack``),
    * a released Keras ``.h5``/``.hdf5`` (architecture detected from its layers, or ``arch=``),
    * a training run folder (its ``best.msgpack``, else ``last.msgpack``),
    * a model of the zoo shipped in the package (``"default"``, ``"tiny"``),
    * a pretrained name fetched earlier with ``agecompact fetch NAME`` (e.g. ``"ssrnet-wiki"``).

    The network is built from abstract shapes and filled with the file's arrays (no random
    initialisers run). ``lazy=True`` defers even that, and the arrays' check against the architecture,
    to the first use that needs JAX: an agecompact model file then loads without importing JAX, and the
    onnxruntime engine runs its cached export with no JAX at all.
    """
    from agecompact.weights import keras, modelfile

    path = Path(source)
    if path.is_dir():
        from agecompact.runfolder import MODEL_FILES

        for candidate in MODEL_FILES:
            if (path / candidate).is_file():
                return load_model(path / candidate, arch=arch, lazy=lazy)
        raise InputError(f"{path}: no {' or '.join(MODEL_FILES)} in this folder (not a finished run?)")
    if path.is_file():
        if keras.is_hdf5(path):
            module, meta = keras.import_keras(path, arch=arch)
            model = AgeModel(module, meta)
        else:
            meta, state = modelfile.read(path)
            if arch is not None and arch != meta.arch:
                raise InputError(f"{path} holds a {meta.arch} model, not {arch}")
            model = (AgeModel.from_state(meta, state, origin=str(path)) if lazy
                     else AgeModel(model_from_state(meta, state, origin=str(path)), meta))
        model.path = path
        return model
    return _load_pretrained(str(source), lazy=lazy)


def _load_pretrained(name: str, *, lazy: bool = False) -> AgeModel:
    from agecompact.pretrained import PRETRAINED, cached_model_path
    from agecompact.zoo import zoo_model_path

    shipped = zoo_model_path(name)
    if shipped is not None:
        return load_model(shipped, lazy=lazy)
    cached = cached_model_path(name)
    if cached.is_file():
        return load_model(cached, lazy=lazy)
    if name in PRETRAINED:
        raise InputError(f"pretrained model {name!r} is not in the cache; run `agecompact fetch {name}` first")
    looks_like_path = any(sep in name for sep in ("/", "\\")) or Path(name).suffix
    if looks_like_path:
        raise InputError(f"model not found: {name}")
    raise InputError(f"unknown model {name!r}: not a file, a run folder or a pretrained name "
                     f"({', '.join(PRETRAINED)})")
