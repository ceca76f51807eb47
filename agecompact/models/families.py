"""One entry per model family: everything that differs between SSR-Net, C3AE and AEC, in one place.

An architecture (``models.registry.MODELS``) names its family; training, export, quantisation and
prediction look the family up here instead of keeping their own ``if family == ...`` tables. The hooks
live in the layers that own them (a loss in ``training``, an ONNX builder in ``export``) and are named
as ``"module:function"`` strings, imported on first use: this module stays import-free, so the CLI can
list choices without loading JAX, and no lower layer imports a higher one.

Adding a family means one entry here plus its functions; adding a recipe means one field of ``recipe``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from agecompact.errors import UsageError


@dataclass(frozen=True)
class Family:
    name: str
    models: str  # the module with the constructors and ``keras_layer_map``
    loss: str  # factory ``(kl_weight=..., label_distribution=..., label_sigma=...) -> loss_fn`` (training.losses)
    onnx_builder: str  # ``build(graph, x, state, module) -> output names`` (export)
    age_std: str  # ``(outputs, meta) -> per-face spread in years`` (predict.uncertainty)
    # the published training settings ("paper" recipe; "modern" adds on top): epochs, lr, schedule,
    # adam_eps, batch_imdb, batch_other, shear_units, note
    recipe: dict[str, Any]
    init_hook: str | None = None  # ``(model, cfg) -> None`` after a fresh initialisation (training)
    float_convs: tuple[str, ...] = ()  # int8 export keeps these convolutions (weight-name prefixes) float


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        # SSR-Net: Keras Adam() defaults (lr 1e-3, eps 1e-8, Keras 2.0), L1, x0.1 at epochs 30 and 60 of
        # 90, batch 128 on IMDB and 50 elsewhere.
        Family("ssrnet", "agecompact.models.ssrnet", "agecompact.training.losses:make_ssrnet_loss",
               "agecompact.export.ssrnet:build", "agecompact.predict.uncertainty:ssrnet_spread",
               recipe={"epochs": 90, "lr": 1e-3, "schedule": "step", "adam_eps": 1e-8, "batch_imdb": 128,
                       "batch_other": 50, "shear_units": "radians", "note": "SSR-Net code: Adam 1e-3, x0.1 @30,60"}),
        # C3AE: Adam lr 0.002, batch 50; the 2019 C3 build ran 160 epochs with ReduceLROnPlateau (x0.1,
        # patience 10, floor 1e-5), the choice made here (TP used 100 epochs, C3's HEAD 250 without decay).
        Family("c3ae", "agecompact.models.c3ae", "agecompact.training.losses:make_c3ae_loss",
               "agecompact.export.c3ae:build", "agecompact.predict.uncertainty:c3ae_std",
               recipe={"epochs": 160, "lr": 2e-3, "schedule": "plateau", "adam_eps": 1e-7, "batch_imdb": 50,
                       "batch_other": 50, "shear_units": "radians", "note": "C3AE (C3 2019): Adam 2e-3, plateau x0.1"},
               init_hook="agecompact.training.setup:c3ae_anchor_init"),
        # AEC: SSR-Net's callback and batches, Keras 2.3 Adam (eps 1e-7). Its first convolution sharpens raw
        # pixels into an unbounded map: int8 there moved UTKFace MAE by +1.2 years (+0.2 with it in float).
        Family("aec", "agecompact.models.aec", "agecompact.training.losses:make_aec_loss",
               "agecompact.export.aec:build", "agecompact.predict.uncertainty:aec_std",
               recipe={"epochs": 90, "lr": 1e-3, "schedule": "step", "adam_eps": 1e-7, "batch_imdb": 128,
                       "batch_other": 50, "shear_units": "degrees", "note": "AEC: as SSR-Net, Keras 2.3 Adam eps"},
               float_convs=("sharpen",)),
    ]
}


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise UsageError(f"unknown model family {name!r}; choose one of: {', '.join(FAMILIES)}") from None


def hook(ref: str):
    """The function a ``"module:function"`` reference names (imported now)."""
    module, func = ref.split(":")
    return getattr(importlib.import_module(module), func)
