"""Tests for the training / evaluation waveform crops."""

import collections

import numpy as np
import pytest
import torch

from speechbrain_ext.data.crops import (
    DEFAULT_SHORT_LENGTHS,
    centre_crop,
    draw_crop_length,
    tile,
)


def test_tile_short_numpy():
    out = tile(np.array([1, 2, 3]), 7)
    np.testing.assert_array_equal(out, [1, 2, 3, 1, 2, 3, 1])


def test_tile_long_truncates_and_exact_is_identity():
    np.testing.assert_array_equal(tile(np.arange(10), 4), [0, 1, 2, 3])
    np.testing.assert_array_equal(tile(np.arange(5), 5), np.arange(5))


def test_tile_matches_numpy_wrap_pad():
    wav = np.random.default_rng(1).standard_normal(13)
    for n in (13, 14, 26, 27, 100):
        ref = np.pad(wav, (0, n - len(wav)), mode="wrap")
        np.testing.assert_array_equal(tile(wav, n), ref)


def test_tile_torch_and_batches():
    out = tile(torch.tensor([1.0, 2.0]), 5)
    assert isinstance(out, torch.Tensor)
    assert out.tolist() == [1.0, 2.0, 1.0, 2.0, 1.0]
    batch = torch.tensor([[1, 2, 3], [4, 5, 6]])
    assert tile(batch, 7).tolist() == [
        [1, 2, 3, 1, 2, 3, 1],
        [4, 5, 6, 4, 5, 6, 4],
    ]
    np.testing.assert_array_equal(
        tile(np.array([[1, 2], [3, 4]]), 3), [[1, 2, 1], [3, 4, 3]]
    )


def test_empty_and_bad_length_raise():
    with pytest.raises(ValueError):
        tile(np.array([]), 3)
    with pytest.raises(ValueError):
        centre_crop(np.arange(4), 0)


def test_centre_crop_positions():
    np.testing.assert_array_equal(centre_crop(np.arange(10), 4), [3, 4, 5, 6])
    np.testing.assert_array_equal(centre_crop(np.arange(11), 4), [3, 4, 5, 6])
    np.testing.assert_array_equal(centre_crop(np.arange(5), 5), np.arange(5))
    np.testing.assert_array_equal(centre_crop(np.arange(3), 5), [0, 1, 2, 0, 1])
    assert centre_crop(torch.arange(9), 3).tolist() == [3, 4, 5]


def test_draw_crop_length_distribution():
    rng = np.random.default_rng(123)
    allowed = {16000 + 1600 * i for i in range(20)}
    draws = [draw_crop_length(rng) for _ in range(4000)]
    counts = collections.Counter(draws)
    full = counts.pop(48000)
    assert abs(full / len(draws) - 0.5) < 0.04
    assert set(counts) == allowed  # every short length occurs, nothing else
    assert max(counts.values()) < 2 * min(counts.values())
    assert DEFAULT_SHORT_LENGTHS[0] == 1.0 and DEFAULT_SHORT_LENGTHS[-1] == 2.9
    assert len(DEFAULT_SHORT_LENGTHS) == 20


def test_draw_crop_length_options():
    rng = np.random.default_rng(0)
    assert {draw_crop_length(rng, p_short=0.0) for _ in range(20)} == {48000}
    short = {
        draw_crop_length(
            rng, p_short=1.0, short_lengths=(0.5,), sample_rate=8000
        )
        for _ in range(20)
    }
    assert short == {4000}
