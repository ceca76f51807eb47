"""Versions and devices recorded into run folders and benchmark results."""

from __future__ import annotations

import importlib.metadata
import platform
import sys

PACKAGES = ("agecompact", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "scipy",
            "opencv-python-headless", "h5py", "typer", "rich", "onnx", "onnxruntime")


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def device_info() -> dict[str, object]:
    """The JAX backend and device names (imports jax)."""
    import jax

    devices = jax.devices()
    return {
        "backend": jax.default_backend(),
        "device_count": len(devices),
        "device_kind": devices[0].device_kind if devices else None,
        "cpu": platform.processor() or platform.machine(),
    }
