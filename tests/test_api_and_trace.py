"""The Python API's contract, the trace command and the model cache's failure modes."""

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from posepipe import LANDMARK_NAMES, POSE_CONNECTIONS, ModelError, PoseAnnotator, PoseLandmarker
from posepipe.models import assets
from tests.conftest import sample_image


def test_result_types_and_contract(landmarker):
    image = sample_image("astronaut.png")
    poses = landmarker.detect(image)
    assert len(poses) == 1
    assert poses.landmarks.shape == (1, 33, 3) and poses.landmarks.dtype == np.float32
    assert poses.world_landmarks.shape == (1, 33, 3) and poses.visibility.shape == (1, 33)
    assert 0.5 < poses.scores[0] <= 1
    # world landmarks: metres around the hips (a person is under 2.5 m across)
    assert np.abs(poses.world_landmarks[0]).max() < 1.5
    hips = poses.world_landmarks[0, [23, 24]].mean(0)
    assert np.abs(hips).max() < 0.1
    rec = poses.to_records()[0]
    assert [lm["name"] for lm in rec["landmarks"]] == list(LANDMARK_NAMES)
    x0, y0, x1, y1 = rec["bbox"]
    assert x0 <= rec["landmarks"][0]["x"] <= x1 and y0 <= rec["landmarks"][0]["y"] <= y1
    assert len(LANDMARK_NAMES) == 33 and len(POSE_CONNECTIONS) == 35


def test_num_poses_batches_several_people(model_paths):
    two = np.concatenate([sample_image("astronaut.png"), sample_image("astronaut.png")], axis=0)  # one above the other
    with PoseLandmarker(num_poses=2) as lm:
        poses = lm.detect(two)
    assert len(poses) == 2
    assert abs(poses.landmarks[0, 0, 1] - poses.landmarks[1, 0, 1]) > 300  # two different people
    assert np.abs(poses.landmarks[0, :13, 0] - poses.landmarks[1, :13, 0]).max() < 15  # the same face and shoulders


def test_annotator_draws_only_visible_landmarks(landmarker):
    image = sample_image("grace_hopper.jpg")
    poses = landmarker.detect(image)
    drawn = PoseAnnotator().annotate(image, poses)
    assert drawn.shape == image.shape and (drawn != image).any()
    nose = poses.landmarks[0, 0, :2].round().astype(int)
    assert (drawn[nose[1], nose[0]] != image[nose[1], nose[0]]).any()
    hidden = poses.visibility.copy()
    poses.visibility[:] = 0
    assert (PoseAnnotator().annotate(image, poses) == image).all()
    poses.visibility[:] = hidden


def test_backends_agree(model_paths):
    image = sample_image("grace_hopper.jpg")
    with PoseLandmarker(backend="litert") as lite, PoseLandmarker(backend="onnxruntime") as onnx:
        a, b = onnx.detect(image), lite.detect(image)
    assert np.abs(a.landmarks - b.landmarks)[..., :2].max() < 0.5


def test_trace_command(tmp_path, grace_path):
    proc = subprocess.run([sys.executable, "-m", "posepipe.cli", "trace", str(grace_path), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "160"})
    assert proc.returncode == 0, proc.stderr
    for stage in ("1 input", "2 preprocessing", "3 model", "4 postprocessing", "5 visualization"):
        assert stage in proc.stdout
    assert "1×3×256×256" in proc.stdout and "1×39×64×64" in proc.stdout
    for name in ("1_detector_input", "2_crop", "3_heatmaps", "4_mask", "5_overlay"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000


def test_demo_command(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "posepipe.cli", "demo", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rec = json.loads((tmp_path / "demo.jsonl").read_text())
    assert rec["width"] == 512 and len(rec["poses"]) == 1
    assert (tmp_path / "overlay" / "grace_hopper.png").is_file()


def fake_wheel(path, payload: bytes):
    with zipfile.ZipFile(path, "w") as zf:
        for asset in assets.ASSETS:
            zf.writestr(asset.member, payload)


def test_wrong_checksum_leaves_no_cache(tmp_path):
    wheel = tmp_path / "mediapipe-0.10.21-py3-none-any.whl"
    fake_wheel(wheel, b"not the real weights")
    target = tmp_path / "models"
    with pytest.raises(ModelError, match="SHA-256"):
        assets.install_from_wheel(wheel, target)
    assert list(target.iterdir()) == []  # no half-written or unverified file left behind


def test_full_disk_leaves_no_cache(tmp_path, monkeypatch, model_paths):
    wheel = tmp_path / "mediapipe-0.10.21-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for asset, path in zip(assets.ASSETS, model_paths):
            zf.write(path, asset.member)

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(assets.shutil, "copyfileobj", no_space)
    target = tmp_path / "models"
    with pytest.raises(ModelError, match="No space left on device"):
        assets.install_from_wheel(wheel, target)
    assert list(target.iterdir()) == []


def test_no_network_is_one_sentence(tmp_path, grace_path):
    env = {**os.environ, "POSEPIPE_CACHE_DIR": str(tmp_path / "cache"), "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
           "PIP_NO_INDEX": "", "PIP_FIND_LINKS": "", "PIP_CONFIG_FILE": os.devnull, "PIP_RETRIES": "0",
           "PIP_TIMEOUT": "2"}
    env.pop("POSEPIPE_DETECTOR_MODEL", None)
    env.pop("POSEPIPE_LANDMARK_MODEL", None)
    proc = subprocess.run([sys.executable, "-m", "posepipe.cli", "image", str(grace_path)], capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == 2
    assert "could not download mediapipe==0.10.21" in proc.stderr and "Traceback" not in proc.stderr
    assert not list((tmp_path / "cache" / "models").glob("*.tflite"))
