"""MediaPipe 0.10.21's own calculators, stage by stage, on inputs that need no GPU, no video
and no ``../shared``: the reference for ``tests/test_mediapipe_stages.py``.

Each stage is run in MediaPipe's environment (``make bench`` builds ``.bench/mediapipe``) as a
small CalculatorGraph around MediaPipe's registered calculators and subgraphs, on a photo
every test machine has (scikit-image's astronaut, its top 448 rows: a landscape picture, so
that the detector's letterbox pads it):

* the crops MediaPipe's ImageToTensorCalculator cuts for 8 NormalizedRects, and the
  detector's input tensor (their SHA-256; the tensors are read out through
  TensorsToLandmarksCalculator, whose division by 1 keeps every float);
* the landmark model's raw outputs on 2 of those crops, and what MediaPipe's
  PoseLandmarkByRoiCpu subgraph makes of them (landmarks, auxiliary and world landmarks);
* the detector's raw outputs, MediaPipe's detections after non-max suppression and letterbox
  removal, and the crop PoseDetectionToRoi places on the best one;
* PoseLandmarkFiltering (landmarks, auxiliary, world) over 12 frames of a moving pose.

With the raw model outputs stored, the test checks posepipe's arithmetic after the model on
any CPU, whatever its runtime computes there.

    python bench/make_stage_reference.py --mediapipe-python .bench/mediapipe/bin/python
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "mediapipe_stages.npz"
N_RECTS, N_RAW, N_FRAMES = 8, 2, 12

MEDIAPIPE_SCRIPT = r'''
import os, sys
import numpy as np
import mediapipe as mp
from mediapipe.framework.formats import landmark_pb2, rect_pb2
from mediapipe.python._framework_bindings import resource_util

resource_util.set_resource_dir(os.path.dirname(os.path.dirname(mp.__file__)))
MODELS = os.path.join(os.path.dirname(mp.__file__), "modules")
inputs = np.load(sys.argv[1])
image, rects, moving = inputs["image"], inputs["rects"], inputs["moving"]
height, width = image.shape[:2]
out = {}


def frame(t):
    return mp.packet_creator.create_image_frame(image_format=mp.ImageFormat.SRGB, data=image).at(t)


def rect_packet(r, t):
    x, y, w, h, rot = (float(v) for v in r)
    return mp.packet_creator.create_proto(
        rect_pb2.NormalizedRect(x_center=x, y_center=y, width=w, height=h, rotation=rot)).at(t)


def values(n, dims):
    # A tensor read out as landmarks: x, y, z are the tensor's floats (divided by 1).
    return ('calculator: "TensorsToLandmarksCalculator" options: { [mediapipe.TensorsToLandmarksCalculatorOptions.ext] '
            '{ num_landmarks: %d input_image_width: 1 input_image_height: 1 normalize_z: 1 } }' % n)


def as_array(landmarks, fields="xyz"):
    return np.array([[getattr(l, f) for f in fields] for l in landmarks.landmark], np.float32)


def run(config, feeds, outputs, side=None):
    graph = mp.CalculatorGraph(graph_config=config)
    got = {name: {} for name in outputs}
    for name in outputs:
        graph.observe_output_stream(name, lambda s, p, n=name: got[n].__setitem__(p.timestamp.value, p))
    graph.start_run(input_side_packets=side or {})
    for stream, packets in feeds:
        for packet in packets:
            graph.add_packet_to_input_stream(stream, packet)
    graph.close()
    return got


# 1. Landmark crops, and the raw landmark model outputs on the first crops.
crop_config = """
input_stream: "image" input_stream: "roi"
output_stream: "crop" output_stream: "lm" output_stream: "flag" output_stream: "heat" output_stream: "world"
node { calculator: "ImageToTensorCalculator" input_stream: "IMAGE:image" input_stream: "NORM_RECT:roi"
  output_stream: "TENSORS:tensors"
  options: { [mediapipe.ImageToTensorCalculatorOptions.ext] { output_tensor_width: 256 output_tensor_height: 256
    keep_aspect_ratio: true output_tensor_float_range { min: 0.0 max: 1.0 } } } }
node { %s input_stream: "TENSORS:tensors" output_stream: "NORM_LANDMARKS:crop" }
node { calculator: "InferenceCalculator" input_stream: "TENSORS:tensors" output_stream: "TENSORS:raw"
  options: { [mediapipe.InferenceCalculatorOptions.ext] { model_path: "%s" delegate { xnnpack {} } } } }
node { calculator: "SplitTensorVectorCalculator" input_stream: "raw"
  output_stream: "t0" output_stream: "t1" output_stream: "t3" output_stream: "t4"
  options: { [mediapipe.SplitVectorCalculatorOptions.ext] {
    ranges: { begin: 0 end: 1 } ranges: { begin: 1 end: 2 } ranges: { begin: 3 end: 4 } ranges: { begin: 4 end: 5 } } } }
node { %s input_stream: "TENSORS:t0" output_stream: "NORM_LANDMARKS:lm" }
node { %s input_stream: "TENSORS:t1" output_stream: "NORM_LANDMARKS:flag" }
node { %s input_stream: "TENSORS:t3" output_stream: "NORM_LANDMARKS:heat" }
node { %s input_stream: "TENSORS:t4" output_stream: "NORM_LANDMARKS:world" }
""" % (values(65536, 3), os.path.join(MODELS, "pose_landmark", "pose_landmark_full.tflite"),
       values(65, 3), values(1, 1), values(64 * 64 * 39 // 3, 3), values(39, 3))
got = run(crop_config, [("image", [frame(t) for t in range(len(rects))]),
                        ("roi", [rect_packet(r, t) for t, r in enumerate(rects)])],
          ["crop", "lm", "flag", "heat", "world"])
get = lambda name, t: mp.packet_getter.get_proto(got[name][t])
out["crops"] = np.stack([np.rint(as_array(get("crop", t)) * 255).astype(np.uint8).reshape(256, 256, 3)
                         for t in range(len(rects))])
raw = range(int(sys.argv[3]))
out["landmark_raw"] = np.stack([as_array(get("lm", t)).reshape(-1) for t in raw])
out["flag_raw"] = np.stack([as_array(get("flag", t), "x").reshape(-1) for t in raw])
out["heatmap_raw"] = np.stack([as_array(get("heat", t)).reshape(-1) for t in raw])  # NHWC
out["world_raw"] = np.stack([as_array(get("world", t)).reshape(-1) for t in raw])

# 2. What MediaPipe's landmark subgraph makes of those crops.
by_roi = """
input_stream: "image" input_stream: "roi" output_stream: "lms" output_stream: "aux" output_stream: "world"
node { calculator: "PoseLandmarkByRoiCpu" input_side_packet: "MODEL_COMPLEXITY:mc" input_side_packet: "ENABLE_SEGMENTATION:seg"
  input_stream: "IMAGE:image" input_stream: "ROI:roi"
  output_stream: "LANDMARKS:lms" output_stream: "AUXILIARY_LANDMARKS:aux" output_stream: "WORLD_LANDMARKS:world" }
"""
got = run(by_roi, [("image", [frame(t) for t in raw]), ("roi", [rect_packet(rects[t], t) for t in raw])],
          ["lms", "aux", "world"],
          {"mc": mp.packet_creator.create_int(1), "seg": mp.packet_creator.create_bool(False)})
out["landmarks"] = np.stack([np.concatenate([as_array(get("lms", t)), as_array(get("aux", t))]) for t in raw])
out["world"] = np.stack([as_array(get("world", t)) for t in raw])
out["landmark_visibility"] = np.stack([as_array(get("lms", t), ("visibility", "presence")) for t in raw])

# 3. The detector: its input, raw outputs, detections and the crop on the best one.
detector = """
input_stream: "image"
output_stream: "tensor" output_stream: "boxes" output_stream: "scores" output_stream: "detections" output_stream: "roi"
node { calculator: "ImageToTensorCalculator" input_stream: "IMAGE:image" output_stream: "TENSORS:tensors"
  options: { [mediapipe.ImageToTensorCalculatorOptions.ext] { output_tensor_width: 224 output_tensor_height: 224
    keep_aspect_ratio: true output_tensor_float_range { min: -1.0 max: 1.0 } border_mode: BORDER_ZERO } } }
node { %s input_stream: "TENSORS:tensors" output_stream: "NORM_LANDMARKS:tensor" }
node { calculator: "InferenceCalculator" input_stream: "TENSORS:tensors" output_stream: "TENSORS:raw"
  options: { [mediapipe.InferenceCalculatorOptions.ext] { model_path: "%s" delegate { xnnpack {} } } } }
node { calculator: "SplitTensorVectorCalculator" input_stream: "raw" output_stream: "b" output_stream: "s"
  options: { [mediapipe.SplitVectorCalculatorOptions.ext] { ranges: { begin: 0 end: 1 } ranges: { begin: 1 end: 2 } } } }
node { %s input_stream: "TENSORS:b" output_stream: "NORM_LANDMARKS:boxes" }
node { %s input_stream: "TENSORS:s" output_stream: "NORM_LANDMARKS:scores" }
node { calculator: "PoseDetectionCpu" input_stream: "IMAGE:image" output_stream: "DETECTIONS:detections" }
node { calculator: "ImagePropertiesCalculator" input_stream: "IMAGE:image" output_stream: "SIZE:size" }
node { calculator: "SplitDetectionVectorCalculator" input_stream: "detections" output_stream: "best"
  options: { [mediapipe.SplitVectorCalculatorOptions.ext] { ranges: { begin: 0 end: 1 } element_only: true } } }
node { calculator: "PoseDetectionToRoi" input_stream: "DETECTION:best" input_stream: "IMAGE_SIZE:size" output_stream: "ROI:roi" }
""" % (values(224 * 224, 3), os.path.join(MODELS, "pose_detection", "pose_detection.tflite"),
       values(2254 * 12 // 3, 3), values(2254, 1))
got = run(detector, [("image", [frame(0)])], ["tensor", "boxes", "scores", "detections", "roi"])
out["detector_tensor"] = as_array(get("tensor", 0)).reshape(224, 224, 3)
out["detector_boxes_raw"] = as_array(get("boxes", 0)).reshape(2254, 12)
out["detector_scores_raw"] = as_array(get("scores", 0), "x").reshape(2254)
found = mp.packet_getter.get_proto_list(got["detections"][0])
out["detection_scores"] = np.array([d.score[0] for d in found], np.float32)
out["detection_keypoints"] = np.array([[(k.x, k.y) for k in d.location_data.relative_keypoints] for d in found], np.float32)
r = get("roi", 0)
out["detection_rect"] = np.array([r.x_center, r.y_center, r.width, r.height, r.rotation], np.float32)

# 4. PoseLandmarkFiltering over a moving pose (normalised landmarks, auxiliary, world).
filtering = """
input_stream: "image" input_stream: "lms" input_stream: "aux" input_stream: "world"
output_stream: "f_lms" output_stream: "f_aux" output_stream: "f_world"
node { calculator: "ImagePropertiesCalculator" input_stream: "IMAGE:image" output_stream: "SIZE:size" }
node { calculator: "PoseLandmarkFiltering" input_side_packet: "ENABLE:enable" input_stream: "IMAGE_SIZE:size"
  input_stream: "NORM_LANDMARKS:lms" input_stream: "AUX_NORM_LANDMARKS:aux" input_stream: "WORLD_LANDMARKS:world"
  output_stream: "FILTERED_NORM_LANDMARKS:f_lms" output_stream: "FILTERED_AUX_NORM_LANDMARKS:f_aux"
  output_stream: "FILTERED_WORLD_LANDMARKS:f_world" }
"""
step = 33333  # microseconds: mp.solutions' clock
def landmark_list(rows, kind):
    message = kind()
    for x, y, z, v, p in rows:
        message.landmark.add(x=float(x), y=float(y), z=float(z), visibility=float(v), presence=float(p))
    return message
feeds = [("image", [frame((t + 1) * step) for t in range(len(moving))])]
for name, start, stop, kind in (("lms", 0, 33, landmark_pb2.NormalizedLandmarkList),
                                ("aux", 33, 35, landmark_pb2.NormalizedLandmarkList),
                                ("world", 35, 68, landmark_pb2.LandmarkList)):
    feeds.append((name, [mp.packet_creator.create_proto(landmark_list(m[start:stop], kind)).at((t + 1) * step)
                         for t, m in enumerate(moving)]))
got = run(filtering, feeds, ["f_lms", "f_aux", "f_world"], {"enable": mp.packet_creator.create_bool(True)})
times = sorted(got["f_lms"])
out["filtered"] = np.stack([np.concatenate([as_array(mp.packet_getter.get_proto(got[n][t]), "xyz") for n in ("f_lms", "f_aux", "f_world")])
                            for t in times])
out["filtered_visibility"] = np.stack([as_array(mp.packet_getter.get_proto(got["f_lms"][t]), ("visibility",))[:, 0]
                                       for t in times])
np.savez(sys.argv[2], **out)
print("ok", {k: v.shape for k, v in out.items()})
'''


def astronaut_top() -> np.ndarray:
    """The test photo: scikit-image's astronaut (a PNG, decoded the same everywhere), top 448 rows."""
    import skimage.data

    return np.ascontiguousarray(skimage.data.astronaut()[:448])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mediapipe-python", required=True, help="python of an environment with mediapipe 0.10.21")
    args = parser.parse_args()
    image = astronaut_top()
    rng = np.random.default_rng(2026)
    # Square crops in pixels (MediaPipe's pose crops are), all over the photo, turned any way.
    side = rng.uniform(0.3, 1.2, N_RECTS)
    rects = np.stack([rng.uniform(0.2, 0.8, N_RECTS), rng.uniform(0.2, 0.8, N_RECTS), side,
                      side * image.shape[1] / image.shape[0], rng.uniform(-np.pi, np.pi, N_RECTS)], 1).astype(np.float32)
    rects[0] = (0.52, 0.5, 0.7, 0.7 * 512 / 448, 0.05)  # the astronaut, nearly upright
    # A pose moving over 12 frames: x, y, z, visibility, presence for 33 + 2 landmarks, then 33 world points.
    base = np.concatenate([rng.uniform(0.3, 0.7, (35, 2)), rng.normal(0, 0.1, (35, 1)), rng.uniform(0.2, 1, (35, 2))], 1)
    world = np.concatenate([rng.normal(0, 0.3, (33, 3)), rng.uniform(0.2, 1, (33, 2))], 1)
    drift = np.cumsum(rng.normal(0, 0.01, (N_FRAMES, 68, 5)), axis=0)
    drift[:, :, 3:] = rng.uniform(-0.1, 0.1, (N_FRAMES, 68, 2))
    moving = (np.concatenate([base, world])[None] + drift).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(f"{tmp}/inputs.npz", image=image, rects=rects, moving=moving)
        done = subprocess.run([args.mediapipe_python, "-c", MEDIAPIPE_SCRIPT, f"{tmp}/inputs.npz", f"{tmp}/out.npz",
                               str(N_RAW)], capture_output=True, text=True)
        if done.returncode:
            sys.exit(done.stderr[-3000:])
        got = dict(np.load(f"{tmp}/out.npz"))
    crops = got.pop("crops")
    digest = lambda a: hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()  # noqa: E731
    np.savez_compressed(OUT, image_sha256=digest(image), rects=rects, moving=moving,
                        crop_sha256=np.array([digest(c) for c in crops]),
                        detector_tensor_sha256=digest(got.pop("detector_tensor")), **got)
    print(f"wrote {OUT.relative_to(ROOT)} ({OUT.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
