"""Ways to compute SSR-Net's costliest layer on this device, forward + backward, side by side.

    python benchmarks/conv_formulations.py [--batch 128] [--max-seconds 3]

The layer: a 3x3, 32 -> 32, VALID convolution on 31x31 maps (SSR-Net's second x-stream block). Each
formulation computes ``sum(conv(x, k) * g)`` and its gradients with respect to ``x`` and ``k`` (what
training needs) under ``jax.jit``; results are checked against XLA's convolution before timing.

* ``xla``: ``lax.conv_general_dilated`` (NHWC), XLA's own convolution and its transposes;
* ``xla_nchw``: the same with NCHW activations and OIHW kernels;
* ``im2col``: patches of the whole batch (``conv_general_dilated_patches``) times the kernel matrix;
* ``per_tap``: nine shifted (N·H·W, 32) x (32, 32) matmuls summed;
* ``chunked``: agecompact's ``layers.conv2d_chunked`` (cache-sized batch chunks, custom backward).
"""

from __future__ import annotations

import argparse
import os

import jax
import jax.numpy as jnp
import numpy as np
from _common import time_call, write_results
from rich.console import Console
from rich.table import Table

from agecompact.models.layers import conv2d_chunked


def conv_xla(x, k):
    return jax.lax.conv_general_dilated(x, k, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def conv_xla_nchw(x, k):
    y = jax.lax.conv_general_dilated(x.transpose(0, 3, 1, 2), k.transpose(3, 2, 0, 1), (1, 1), "VALID",
                                     dimension_numbers=("NCHW", "OIHW", "NCHW"))
    return y.transpose(0, 2, 3, 1)


def conv_im2col(x, k):
    kh, kw, ci, co = k.shape
    patches = jax.lax.conv_general_dilated_patches(x, (kh, kw), (1, 1), "VALID",
                                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
    # patches' feature order is (ci, kh, kw)
    return patches @ k.transpose(2, 0, 1, 3).reshape(ci * kh * kw, co)


def conv_per_tap(x, k):
    kh, kw, _, _ = k.shape
    ho, wo = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    return sum(x[:, i:i + ho, j:j + wo, :] @ k[i, j] for i in range(kh) for j in range(kw))


def conv_chunked(x, k):
    return conv2d_chunked(x, k, jnp.zeros(k.shape[-1], k.dtype), "VALID")


FORMULATIONS = {"xla": conv_xla, "xla_nchw": conv_xla_nchw, "im2col": conv_im2col, "per_tap": conv_per_tap,
                "chunked": conv_chunked}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[8, 128])
    ap.add_argument("--max-seconds", type=float, default=3.0)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    k = jnp.asarray(rng.normal(size=(3, 3, 32, 32)).astype(np.float32) * 0.1)
    rows = []
    for batch in args.batch:
        x = jnp.asarray(rng.normal(size=(batch, 31, 31, 32)).astype(np.float32))
        g = jnp.asarray(rng.normal(size=(batch, 29, 29, 32)).astype(np.float32))
        flops = 2 * batch * 29 * 29 * 32 * 9 * 32 * 3  # forward + two gradient convolutions
        reference = None
        for name, fn in FORMULATIONS.items():
            step = jax.jit(jax.grad(lambda x, k, g, fn=fn: jnp.sum(fn(x, k) * g), argnums=(0, 1)))
            dx, dk = step(x, k, g)
            if reference is None:
                reference = (dx, dk)
            err = max(float(jnp.max(jnp.abs(dx - reference[0]))), float(jnp.max(jnp.abs(dk - reference[1]))
                                                                        / jnp.max(jnp.abs(reference[1]))))
            stats = time_call(lambda step=step, x=x, g=g: jax.block_until_ready(step(x, k, g)), runs=50, warmup=2,
                              max_seconds=args.max_seconds)
            rows.append({"batch": batch, "formulation": name, "median_ms": stats["median_ms"],
                         "min_ms": stats["min_ms"], "gflops": flops / (stats["median_ms"] / 1e3) / 1e9,
                         "max_error": err, "runs": stats["runs"]})
    table = Table(title=f"3x3 32->32 conv on 31x31, forward + both gradients ({jax.devices()[0].device_kind}, "
                        f"load {os.getloadavg()[0]:.1f})")
    for col in ("batch", "formulation", "median ms", "min ms", "GFLOP/s", "max error vs xla"):
        table.add_column(col, justify="left" if col == "formulation" else "right")
    for r in rows:
        table.add_row(str(r["batch"]), r["formulation"], f"{r['median_ms']:.2f}", f"{r['min_ms']:.2f}",
                      f"{r['gflops']:.1f}", f"{r['max_error']:.1e}")
    Console().print(table)
    path = write_results("conv_formulations", {"results": rows})
    Console(stderr=True).print(f"wrote {path}")


if __name__ == "__main__":
    main()
