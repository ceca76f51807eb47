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


def default_platform() -> str:
    """Where jitted code runs: the device chosen with ``jax_default_device`` (``bench --device``), else
    JAX's default backend (which ignores that setting)."""
    import jax

    device = jax.config.jax_default_device
    if device is None:
        return jax.default_backend()
    return getattr(device, "platform", str(device))


def device_info() -> dict[str, object]:
    """The platform code runs on and its devices (imports jax)."""
    import jax

    platform_name = default_platform()
    devices = jax.devices(platform_name)
    chosen = jax.config.jax_default_device
    return {
        "backend": platform_name,
        "device_count": len(devices),
        "device_kind": getattr(chosen, "device_kind", None) or (devices[0].device_kind if devices else None),
        "cpu": platform.processor() or platform.machine(),
    }
