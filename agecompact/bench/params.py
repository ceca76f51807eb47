"""Parameter counts, model-file sizes and forward FLOPs of every registered architecture."""

from __future__ import annotations

from typing import Any


def forward_flops(model, batch: int = 1) -> float | None:
    """FLOPs of one forward pass per image, from XLA's cost analysis of the compiled graph."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    graphdef, state = nnx.split(model)
    x = jnp.zeros((batch, 64, 64, 3), jnp.float32)
    compiled = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x)["pred"]).lower(state, x).compile()
    cost = compiled.cost_analysis()
    if isinstance(cost, list | tuple):
        cost = cost[0] if cost else None
    if not cost or "flops" not in cost:
        return None
    return float(cost["flops"]) / batch


def params_rows(names: list[str] | None = None) -> list[dict[str, Any]]:
    from agecompact.api import AgeModel
    from agecompact.models.registry import MODELS, create_model
    from agecompact.weights import modelfile
    from agecompact.weights.modelfile import ModelMeta

    rows = []
    for name in names or list(MODELS):
        spec = MODELS[name]
        module = create_model(name)
        model = AgeModel(module, ModelMeta.for_arch(name))
        size = len(modelfile.encode(model.meta, model.state_dict()))
        rows.append({
            "model": name,
            "description": spec.description,
            "trainable": model.param_counts["trainable"],
            "non_trainable": model.param_counts["non_trainable"],
            "total": model.num_params,
            "float32_bytes": model.num_params * 4,
            "file_bytes": size,
            "file_kb": round(size / 1024, 1),
            "flops": forward_flops(module),
        })
    return rows
