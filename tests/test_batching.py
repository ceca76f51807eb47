"""The one fixed-shape batching helper (``agecompact.batching``) and its callers' shapes."""

from __future__ import annotations

import numpy as np
import pytest

from agecompact.batching import pad_rows, padded_batches, padded_size, powers_of_two


def test_sizes_and_padding():
    assert powers_of_two(1) == (1,)
    assert powers_of_two(100) == (1, 2, 4, 8, 16, 32, 64, 100)
    assert powers_of_two(64) == (1, 2, 4, 8, 16, 32, 64)
    assert [padded_size(n, (8, 50)) for n in (1, 8, 9, 50)] == [8, 8, 50, 50]
    assert padded_size(7, None) == 7
    with pytest.raises(ValueError):
        padded_size(51, (8, 50))
    x = np.arange(6, dtype=np.uint8).reshape(3, 2)
    padded = pad_rows(x, 5)
    assert padded.shape == (5, 2) and padded.dtype == np.uint8
    np.testing.assert_array_equal(padded[:3], x)
    assert not padded[3:].any()
    assert pad_rows(x, 3) is x


def test_batches_cover_every_row_once_in_order():
    x = np.arange(23 * 2).reshape(23, 2)
    got = list(padded_batches(x, 10, powers_of_two(10)))
    assert [(len(b), n) for b, n in got] == [(10, 10), (10, 10), (4, 3)]
    np.testing.assert_array_equal(np.concatenate([b[:n] for b, n in got]), x)
    rows = np.array([22, 0, 5, 7])
    got = list(padded_batches(x, 3, (3,), rows=rows))
    assert [(len(b), n) for b, n in got] == [(3, 3), (3, 1)]
    np.testing.assert_array_equal(np.concatenate([b[:n] for b, n in got]), x[rows])
    assert list(padded_batches(x[:0], 4)) == []
    assert [len(b) for b, _ in padded_batches(x, 10)] == [10, 10, 3]  # no sizes: no padding


def test_model_outputs_do_not_depend_on_the_batch_cut():
    """AgeModel pads each chunk to a power of two: any batch size gives the same ages."""
    from agecompact.api import AgeModel
    from agecompact.models.registry import create_model
    from agecompact.weights.modelfile import ModelMeta

    model = AgeModel(create_model("c3ae", seed=0), ModelMeta.for_arch("c3ae"))
    faces = np.random.default_rng(0).integers(0, 256, (13, 64, 64, 3), dtype=np.uint8)
    ref = model.predict(faces, batch_size=13)
    for bs in (1, 5, 8, 16):
        np.testing.assert_allclose(model.predict(faces, batch_size=bs), ref, atol=1e-4)
