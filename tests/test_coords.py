"""The coordinate convention and its converters."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rle.coords import (
    FRAMES,
    coordinate_grid,
    flip_coords,
    from_frame,
    from_index,
    index_to_norm,
    norm_to_index,
    to_frame,
    to_index,
)


def test_bin_centres_exact():
    # 4 bins: centres at -3/8, -1/8, 1/8, 3/8; the map edges are -0.5 and 0.5
    grid = coordinate_grid(4, dtype=torch.float64)
    assert grid.tolist() == [-0.375, -0.125, 0.125, 0.375]
    idx = torch.tensor([[0.0], [1.5], [3.0], [-0.5], [3.5]], dtype=torch.float64)
    assert from_index(idx, 4).flatten().tolist() == [-0.375, 0.0, 0.375, -0.5, 0.5]


def test_formula_is_the_same_for_numpy_and_torch():
    # the one implementation of the formula serves numpy (dataset transforms) and torch
    # (decoders) with exactly the arithmetic written out: same bits, both directions
    rng = np.random.default_rng(0)
    idx = rng.uniform(-1, 64, size=(5, 17, 2))
    sizes = np.array([48, 64])
    assert np.array_equal(index_to_norm(idx, sizes), (idx + 0.5) / sizes - 0.5)
    assert np.array_equal(norm_to_index(idx, sizes), (idx + 0.5) * sizes - 0.5)
    t = torch.from_numpy(idx).float()
    assert torch.equal(index_to_norm(t, 48), (t + 0.5) / 48 - 0.5)
    assert torch.equal(from_index(t, (48, 64)), index_to_norm(t, torch.tensor([48.0, 64.0])))
    np.testing.assert_allclose(norm_to_index(index_to_norm(idx, sizes), sizes), idx, atol=1e-12)


def test_reference_frames_value_of_bin_j():
    n = 8
    j = torch.arange(n, dtype=torch.float64).unsqueeze(-1)
    c = from_index(j, n)
    expected = {
        "norm": (j + 0.5) / n - 0.5,
        "index": j,
        "rle": j / n - 0.5,
        "mmpose": j / n,
        "dsntnn": (2 * j + 1) / n - 1,
        "kornia": 2 * j / (n - 1) - 1,
    }
    for frame, values in expected.items():
        torch.testing.assert_close(to_frame(c, n, frame), values, rtol=0, atol=1e-15)
        torch.testing.assert_close(from_frame(values, n, frame), c, rtol=0, atol=1e-15)


def test_flip_is_negation_and_maps_bins():
    n = 7
    j = torch.arange(n, dtype=torch.float64).unsqueeze(-1)
    torch.testing.assert_close(-from_index(j, n), from_index(n - 1 - j, n))
    c = torch.tensor([[0.1, -0.2, 0.3]], dtype=torch.float64)
    assert flip_coords(c).tolist() == [[-0.1, -0.2, 0.3]]
    assert flip_coords(c, axis=2).tolist()[0][2] == pytest.approx(-0.3)


def test_official_flip_shift_reproduced():
    # official RLE flips with x' = -x - 1/W; in the normalised frame it is plain negation
    w = 48
    x = torch.tensor([[0.123]], dtype=torch.float64)
    official = to_frame(x, w, "rle")
    flipped_official = -official - 1.0 / w
    torch.testing.assert_close(from_frame(flipped_official, w, "rle"), -x)


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(-2, 2), min_size=3, max_size=3),
    sizes=st.lists(st.integers(2, 300), min_size=3, max_size=3),
    frame=st.sampled_from(FRAMES),
)
def test_roundtrip_every_frame(values, sizes, frame):
    c = torch.tensor([values], dtype=torch.float64)
    back = from_frame(to_frame(c, sizes, frame), sizes, frame)
    torch.testing.assert_close(back, c, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(from_index(to_index(c, sizes), sizes), c, rtol=1e-12, atol=1e-12)


def test_bad_input():
    with pytest.raises(ValueError, match=r"\(\.\.\., D\)"):
        to_index(torch.zeros(2, 3), (4, 4))
    with pytest.raises(ValueError, match="frame"):
        to_frame(torch.zeros(2, 2), (4, 4), "pixels")
    with pytest.raises(TypeError, match="coords"):
        to_index([0.1, 0.2], (4, 4))
    with pytest.raises(ValueError, match="sizes"):
        to_index(torch.zeros(1, 2), (0, 4))
    with pytest.raises(ValueError, match="axis"):
        flip_coords(torch.zeros(1, 2), axis=2)
    with pytest.raises(TypeError, match="coords"):
        flip_coords([0.1, 0.2])
