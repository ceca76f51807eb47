"""Registered architectures, their pinned sizes and their default preprocessing."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from agecompact.errors import InputError, UsageError
from agecompact.models.families import Family, get_family


@dataclass(frozen=True)
class ModelSpec:
    name: str
    factory: str  # "module:function", imported on first use
    family: str  # ssrnet | c3ae | aec
    num_params: int  # Keras convention: params + BatchNorm statistics
    description: str
    task: str = "age"  # "age" (years) or "gender" (score in [0, 1], 1 = male as in IMDB-WIKI)
    crops: str = "single"  # "single" or "context" (three crops: outer, middle, inner)
    margin: float = 0.4  # face-box margin the model's training crops had, per side
    defaults: dict[str, Any] = field(default_factory=dict)


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec("ssrnet", "agecompact.models.ssrnet:ssrnet", "ssrnet", 40_915,
                  "SSR-Net (3,3,3), λ_local = λ_d = 1, V = 101"),
        ModelSpec("ssrnet_gender", "agecompact.models.ssrnet:ssrnet_gender", "ssrnet", 40_915,
                  "SSR-Net V = 1 gender regressor", task="gender"),
        ModelSpec("c3ae", "agecompact.models.c3ae:c3ae", "c3ae", 36_345,
                  "C3AE plain model (one branch, conv1 without bias)"),
        ModelSpec("c3ae_full", "agecompact.models.c3ae:c3ae_full", "c3ae", 48_633,
                  "C3AE context model: three crops, shared trunk, 12-bin two-point head", crops="context"),
        ModelSpec("c3ae_full_se", "agecompact.models.c3ae:c3ae_full_se", "c3ae", 53_993,
                  "C3AE context model with squeeze-excitation", crops="context"),
        ModelSpec("aec", "agecompact.models.aec:aec", "aec", 20_014,
                  "AEC compact model (bin-0 decoding quirk on, as released)", margin=0.0),
        ModelSpec("aec_nosharpen", "agecompact.models.aec:aec_nosharpen", "aec", 19_930,
                  "AEC without its sharpen convolution (under 20,000 values)", margin=0.0),
        ModelSpec("aec_pair", "agecompact.models.aec:aec_pair", "aec", 39_944,
                  "AEC and AEC without sharpen, outputs averaged (an ensemble in one file)", margin=0.0),
    ]
}


def model_names() -> list[str]:
    return list(MODELS)


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise UsageError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}") from None


def _factory(spec: ModelSpec):
    module, func = spec.factory.split(":")
    return getattr(importlib.import_module(module), func)


def create_model(name: str, *, seed: int = 0, **kwargs):
    """Build a freshly initialised model (in eval mode) from its registered name."""
    from flax import nnx

    spec = get_spec(name)
    model = _factory(spec)(rngs=nnx.Rngs(seed), **{**spec.defaults, **kwargs})
    model.eval()
    return model


def family_of(arch: str) -> Family:
    """The family entry (models/families.py) of a registered architecture."""
    return get_family(get_spec(arch).family)


def keras_layer_map(name: str, model) -> dict[str, str]:
    return importlib.import_module(family_of(name).models).keras_layer_map(model)


def param_counts(model) -> dict[str, int]:
    """Trainable, non-trainable (BatchNorm statistics) and total values, the Keras way."""
    import jax
    from flax import nnx

    trainable = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
    stats = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.BatchStat)))
    return {"trainable": int(trainable), "non_trainable": int(stats), "total": int(trainable + stats)}


def abstract_model(arch: str, arch_kwargs: dict[str, Any] | None = None, *, origin: str = "model file"):
    """The network of ``arch`` with shapes only: no initialiser runs, nothing is compiled."""
    from flax import nnx

    kwargs = dict(arch_kwargs or {})
    try:
        return nnx.eval_shape(lambda: create_model(arch, **kwargs))
    except TypeError as e:
        raise InputError(f"{origin}: bad architecture options {kwargs}: {e}") from None
