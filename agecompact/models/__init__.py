"""Model registry: one module per family, one constructor per registered name.

The registry itself is plain data so the CLI can list names without importing jax.
"""

from agecompact.models.registry import MODELS, ModelSpec, create_model, get_spec, model_names, param_counts

__all__ = ["MODELS", "ModelSpec", "create_model", "get_spec", "model_names", "param_counts"]
