"""Training: configuration, input pipeline, augmentation, losses, jitted steps, checkpoints, the loop.

``train_and_evaluate(config, workdir)`` is the entry point (loaded lazily: it imports jax).
"""

__all__ = ["train_and_evaluate"]


def __getattr__(name: str):
    if name == "train_and_evaluate":
        from agecompact.training.loop import train_and_evaluate

        return train_and_evaluate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
