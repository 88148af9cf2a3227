"""The MediaPipe side of the video benchmarks, as script text run by MediaPipe's own
environment (``python -c``): the street video tracked as MediaPipe's examples do it.

``TRACKING`` reads ``video, out = sys.argv[1:3]`` and defines ``track(record, flush=False)``:
one pass over the video with OpenCV decoding and ``mp.solutions.pose.Pose`` (tracking,
complexity 1, smoothing on), writing ``record(frame, bgr, result, capture)`` as one JSON line
a frame to ``out`` (flushed after each line where ``flush``); it returns the frames read. A
benchmark appends its own ``record`` and what calls ``track``."""

TRACKING = r"""
import json, sys, time, cv2
import mediapipe as mp
video, out = sys.argv[1], sys.argv[2]

def track(record, flush=False):
    capture = cv2.VideoCapture(video)
    frames = 0
    with mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1, smooth_landmarks=True) as pose, \
            open(out, "w") as sink:
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            result = pose.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            sink.write(json.dumps(record(frames, bgr, result, capture)) + "\n")
            if flush:
                sink.flush()
            frames += 1
    return frames
"""

# Appended to a MediaPipe script: ``poses_of(bgr, result)``, the solution's result as the
# "poses" of posepipe's JSON-lines contract (pixels, z on x's scale), so outputs compare.
POSES_OF = r"""
_names = [l.name.lower() for l in mp.solutions.pose.PoseLandmark]

def poses_of(bgr, result):
    h, w = bgr.shape[:2]
    if result.pose_landmarks is None:
        return []
    return [{
        "landmarks": [{"name": n, "x": l.x * w, "y": l.y * h, "z": l.z * w, "visibility": l.visibility,
                       "presence": l.presence} for n, l in zip(_names, result.pose_landmarks.landmark)],
        "world_landmarks": [{"name": n, "x": l.x, "y": l.y, "z": l.z}
                            for n, l in zip(_names, result.pose_world_landmarks.landmark)]}]
"""
