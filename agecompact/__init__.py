"""agecompact: compact face-age estimation (SSR-Net, C3AE, AEC) in JAX/Flax.

Importing the package is cheap: jax and flax load only when a model is built or loaded.
"""

from agecompact._version import __version__

__all__ = ["__version__", "load_model"]


def load_model(source, **kwargs):
    """Load a model from a model file, a Keras ``.h5``, a run folder or a pretrained name.

    See :func:`agecompact.api.load_model`.
    """
    from agecompact.api import load_model as _load_model

    return _load_model(source, **kwargs)
