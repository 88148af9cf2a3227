"""The crop's fixed-point sampling maps (roi.sampling_maps) against OpenCV's old rule
written out plainly: every 1/32 pixel coordinate must be the same, for ordinary crops and
for crops far outside the image."""

import cv2
import numpy as np
import pytest

from posepipe.roi import RegionOfInterest, crop_matrix, sampling_maps


def plain_maps(matrix: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV < 4.11 warpPerspective, column by column as its loop runs: the matrix inverted
    by cv::invert, the columns in blocks of 64 (16 rows × 64 columns = BLOCK_SZ²), each block
    starting at ``b``: X0 = m0 b + m1 y + m2, then for the column b + i: W = W0 + m6 i,
    X = saturate(round((X0 + m0 i) * 32 / W))."""
    inv = cv2.invert(matrix, flags=cv2.DECOMP_LU)[1]
    m = inv.ravel()
    ys = np.arange(size, dtype=np.float64)[:, None]
    wx, xx, yx = (np.empty((size, size)) for _ in range(3))
    for b in range(0, size, 64):  # each row y of the block: the same sums, y by y
        x0, y0, w0 = m[0] * b + m[1] * ys + m[2], m[3] * b + m[4] * ys + m[5], m[6] * b + m[7] * ys + m[8]
        i = np.arange(min(64, size - b), dtype=np.float64)[None, :]
        wx[:, b:b + i.size], xx[:, b:b + i.size], yx[:, b:b + i.size] = w0 + m[6] * i, x0 + m[0] * i, y0 + m[3] * i
    w = np.where(wx != 0, 32.0 / np.where(wx != 0, wx, 1.0), 0.0)
    x, y = (np.clip(np.rint(v * w), -2.0**31, 2.0**31 - 1).astype(np.int32) for v in (xx, yx))
    map1 = np.stack([np.clip(x >> 5, -32768, 32767), np.clip(y >> 5, -32768, 32767)], axis=-1).astype(np.int16)
    return map1, ((y & 31) << 5 | (x & 31)).astype(np.uint16)


@pytest.mark.parametrize("scale", [1.0, 1e3])
def test_maps_are_opencvs_old_fixed_point_maps(scale):
    rng = np.random.default_rng(int(scale))
    for _ in range(300):
        x, y = rng.uniform(-500, 2500, 2) * scale
        roi = RegionOfInterest(x, y, rng.uniform(1, 3000) * scale, rng.uniform(-np.pi, np.pi))
        for size in (224, 256):
            matrix = crop_matrix(roi, size)
            got, want = sampling_maps(matrix, size), plain_maps(matrix, size)
            assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1]), (roi, size)


def test_maps_of_true_perspectives_and_kept_maps():
    """Matrices whose w varies over the grid, crossing zero in some (where the corners cannot
    bound the values), and the kept maps (reuse=True) equal to the returned copies."""
    rng = np.random.default_rng(7)
    for _ in range(200):
        roi = RegionOfInterest(*rng.uniform(-500, 2500, 2), rng.uniform(1, 3000), rng.uniform(-np.pi, np.pi))
        matrix = crop_matrix(roi, 256).copy()
        matrix[2, :2] += rng.normal(0, 10.0 ** rng.uniform(-6, -2), 2)
        want = plain_maps(matrix, 256)
        got = sampling_maps(matrix, 256)
        kept = sampling_maps(matrix, 256, reuse=True)
        for maps in (got, kept):
            assert np.array_equal(maps[0], want[0]) and np.array_equal(maps[1], want[1]), matrix


@pytest.mark.parametrize("scale", [1.0, 1e3])
def test_maps_of_upright_crops_and_letterboxes(scale):
    """Upright crops, the detector's letterbox among them: where the matrix only scales and
    shifts each axis, the maps are built from one row and one column, and must still be the
    rule's; far outside the image (scale 1e3) they are clipped as the rule clips."""
    from posepipe.detector import letterbox_roi

    rng = np.random.default_rng(11 + int(scale))
    separable = 0
    for _ in range(300):
        width, height = (int(v) for v in rng.integers(1, 5000, 2))
        upright = RegionOfInterest(*rng.uniform(-500, 2500, 2) * scale, rng.uniform(1, 3000) * scale, 0.0)
        for roi, size in ((letterbox_roi(width, height), 224), (upright, 224), (upright, 256)):
            matrix = crop_matrix(roi, size)
            inv = cv2.invert(matrix, flags=cv2.DECOMP_LU)[1]
            separable += bool(inv[0, 1] == inv[1, 0] == inv[2, 0] == inv[2, 1] == 0 and inv[2, 2] == 1)
            got, want = sampling_maps(matrix, size), plain_maps(matrix, size)
            assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1]), (roi, size)
    assert separable > 100  # the one-row-one-column path was taken, not only the general one
