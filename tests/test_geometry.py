"""Property tests of the pure geometry: anchors, decoding, NMS, ROI and affine maps."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from posepipe.detector import box_iou, decode_detections, ssd_anchors, weighted_nms
from posepipe.landmarks import project_to_image, refine_with_heatmap
from posepipe.roi import RegionOfInterest, crop_matrix, normalize_radians, roi_from_alignment_points

finite = st.floats(-2000, 2000, allow_nan=False)
sizes = st.floats(4, 3000, allow_nan=False)
angles = st.floats(-math.pi, math.pi, allow_nan=False)


def test_anchor_layout_matches_the_network_output():
    anchors = ssd_anchors()
    assert anchors.shape == (2254, 2)
    # 28×28 cells × 2, 14×14 × 2, then the three stride-32 layers sharing 7×7 cells × 6.
    assert np.allclose(anchors[0], [0.5 / 28, 0.5 / 28]) and np.allclose(anchors[1], anchors[0])
    assert np.allclose(anchors[1568], [0.5 / 14, 0.5 / 14])
    assert np.allclose(anchors[1960:1966], [0.5 / 7, 0.5 / 7])
    assert anchors.min() > 0 and anchors.max() < 1


@given(finite, finite, sizes, angles)
def test_roi_maps_are_inverse(x, y, size, rotation):
    roi = RegionOfInterest(x, y, size, rotation)
    fwd = roi.image_to_tensor(256)
    back = roi.tensor_to_image_matrix(256)
    pts = np.array([[0, 0], [256, 0], [13.5, 200.25]])
    img = pts @ back[:, :2].T + back[:, 2]
    again = img @ fwd[:, :2].T + fwd[:, 2]
    assert np.allclose(again, pts, atol=1e-6 * max(1, size))
    # The tensor centre is the ROI centre, and the crop is a square of the right side.
    assert np.allclose(roi.tensor_to_image(256)(np.array([[128, 128]])), [[x, y]], atol=1e-6 * max(1, size))
    corners = roi.corners()
    sides = np.linalg.norm(np.roll(corners, -1, axis=0) - corners, axis=1)
    assert np.allclose(sides, size, rtol=1e-9)


@settings(deadline=None)
@given(st.floats(10, 1000), st.floats(10, 1000), st.floats(20, 600), angles)
def test_crop_matrix_agrees_with_the_affine_map(x, y, size, rotation):
    roi = RegionOfInterest(x, y, size, rotation)
    m = crop_matrix(roi, 256)
    pts = np.array([[x, y], [x + 7.0, y - 3.0]])
    homog = np.c_[pts, np.ones(2)] @ m.T
    persp = homog[:, :2] / homog[:, 2:]
    affine = pts @ roi.image_to_tensor(256)[:, :2].T + roi.image_to_tensor(256)[:, 2]
    assert np.allclose(persp, affine, atol=0.05)  # float32 corners, as MediaPipe builds them


@given(finite, finite, st.floats(1, 500), angles)
def test_roi_from_alignment_points_points_up(cx, cy, dist, angle):
    centre = np.array([cx, cy])
    scale_point = centre + dist * np.array([math.cos(angle), math.sin(angle)])
    roi = roi_from_alignment_points(centre, scale_point, scale=1.25)
    assert math.isclose(roi.size, 2 * dist * 1.25, rel_tol=1e-9)
    assert -math.pi <= roi.rotation < math.pi
    # In the crop, the scale point lies straight above the centre.
    m = roi.image_to_tensor(256)
    up = m[:, :2] @ scale_point + m[:, 2]
    assert np.allclose(up, [128, 128 - 256 / 2.5], atol=1e-6 * 256)


@given(st.floats(-20, 20))
def test_normalize_radians_range(angle):
    out = normalize_radians(angle)
    assert -math.pi <= out < math.pi + 1e-12
    assert math.isclose(math.cos(out), math.cos(angle), abs_tol=1e-9)


def test_decode_detections_recovers_an_encoded_box():
    raw = np.zeros((2254, 12), np.float32)
    scores = np.full((2254, 1), -10.0, np.float32)
    anchor = ssd_anchors()[100]
    # centre offset (+4, -2) px, size 40×60 px, keypoints at offsets (10, 20) and (-5, 0)
    raw[100, :4] = [4, -2, 40, 60]
    raw[100, 4:8] = [10, 20, -5, 0]
    scores[100] = 3.0
    boxes, kps, sc = decode_detections(raw, scores, 0.5)
    assert len(sc) == 1 and math.isclose(sc[0], 1 / (1 + math.exp(-3)), rel_tol=1e-6)
    cx, cy = anchor + np.array([4, -2]) / 224
    assert np.allclose(boxes[0], [cx - 20 / 224, cy - 30 / 224, cx + 20 / 224, cy + 30 / 224], atol=1e-6)
    assert np.allclose(kps[0, 0], anchor + np.array([10, 20]) / 224, atol=1e-6)


@given(st.lists(st.tuples(st.floats(0, 0.8), st.floats(0, 0.8), st.floats(0.01, 0.2), st.floats(0.5, 1)),
                min_size=1, max_size=12))
def test_weighted_nms_properties(items):
    boxes = np.array([[x, y, x + s, y + s] for x, y, s, _ in items], np.float32)
    scores = np.array([c for *_, c in items], np.float32)
    kps = np.repeat(boxes[:, None, :2], 4, axis=1)
    out_boxes, out_kps, out_scores = weighted_nms(boxes, kps, scores)
    assert 1 <= len(out_scores) <= len(scores)
    assert np.all(np.diff(out_scores) <= 0)  # best first
    assert out_scores[0] == scores.max()
    # Weighted means stay inside the hull of the inputs.
    assert out_boxes.min() >= boxes.min() - 1e-6 and out_boxes.max() <= boxes.max() + 1e-6


def test_box_iou_identity_and_disjoint():
    a = np.array([0, 0, 1, 1.0])
    assert np.allclose(box_iou(a, np.array([[0, 0, 1, 1.0], [2, 2, 3, 3.0], [0.5, 0, 1.5, 1]])), [1, 0, 1 / 3])


def test_heatmap_refinement_moves_to_the_peak_and_respects_threshold():
    heat = np.full((1, 39, 64, 64), -20.0, np.float32)
    heat[0, 0, 30, 40] = 20.0  # a sharp peak for landmark 0
    lms = np.zeros((1, 39, 5), np.float32)
    lms[0, :, 0] = 41.5 / 64
    lms[0, :, 1] = 31.2 / 64
    out = refine_with_heatmap(lms, heat)
    assert np.allclose(out[0, 0, :2], [40 / 64, 30 / 64], atol=1e-4)
    assert np.allclose(out[0, 1:, :2], lms[0, 1:, :2])  # no confident peak: unchanged


@given(finite, finite, sizes, angles)
def test_project_to_image_centre_and_z(x, y, size, rotation):
    roi = RegionOfInterest(x, y, size, rotation)
    out = project_to_image(np.array([[0.5, 0.5, 0.25]], np.float32), roi)
    assert np.allclose(out[0, :2], [x, y], atol=1e-3 * max(1, size))
    assert math.isclose(out[0, 2], 0.25 * size, rel_tol=1e-5)
