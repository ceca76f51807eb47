"""agecompact: compact face-age estimation (SSR-Net, C3AE, AEC) in JAX/Flax.

    import agecompact
    faces = agecompact.predict("photo.jpg", model="ssrnet_wiki.h5")   # detect, crop, estimate
    model = agecompact.load_model("ssrnet_wiki.h5")                     # the network itself

Importing the package is cheap: jax and flax load only when a model is built or loaded, and not at
all for ``predict`` on onnxruntime once a model's export is cached.
"""

from agecompact._version import __version__

__all__ = ["__version__", "load_model", "predict"]


def load_model(source, **kwargs):
    """Load a model from a model file, a Keras ``.h5``, a run folder or a pretrained name.

    See :func:`agecompact.api.load_model`.
    """
    from agecompact.api import load_model as _load_model

    return _load_model(source, **kwargs)


def __getattr__(name: str):
    if name == "predict":  # the callable package agecompact.predict (see agecompact.predict.api.predict)
        import importlib

        return importlib.import_module("agecompact.predict")
    raise AttributeError(f"module 'agecompact' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "predict"})
