"""The 33 BlazePose landmarks: names (MediaPipe's ``PoseLandmark``, lower case) and connections."""

LANDMARK_NAMES: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel", "right_heel",
    "left_foot_index", "right_foot_index",
)
NUM_LANDMARKS = len(LANDMARK_NAMES)
LANDMARK_INDEX = {name: i for i, name in enumerate(LANDMARK_NAMES)}

# MediaPipe's POSE_CONNECTIONS.
POSE_CONNECTIONS: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10),
    (11, 12), (11, 13), (13, 15), (15, 17), (15, 19), (15, 21), (17, 19),
    (12, 14), (14, 16), (16, 18), (16, 20), (16, 22), (18, 20),
    (11, 23), (12, 24), (23, 24), (23, 25), (24, 26), (25, 27), (26, 28),
    (27, 29), (28, 30), (29, 31), (30, 32), (27, 31), (28, 32),
)

LEFT_LANDMARKS = frozenset(i for i, n in enumerate(LANDMARK_NAMES) if n.startswith("left") or n == "mouth_left")
RIGHT_LANDMARKS = frozenset(i for i, n in enumerate(LANDMARK_NAMES) if n.startswith("right") or n == "mouth_right")
# Index of each landmark's mirror image, for horizontal flips.
FLIP_INDEX: tuple[int, ...] = tuple(
    LANDMARK_INDEX[n.replace("left", "#").replace("right", "left").replace("#", "right")] for n in LANDMARK_NAMES
)

# The 17 COCO keypoints in COCO's order, as BlazePose landmark indices.
COCO_TO_BLAZEPOSE: tuple[int, ...] = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
# COCO's per-keypoint OKS sigmas (pycocotools' defaults), in the same order.
COCO_SIGMAS: tuple[float, ...] = (.026, .025, .025, .035, .035, .079, .079, .072, .072, .062, .062,
                                  .107, .107, .087, .087, .089, .089)
