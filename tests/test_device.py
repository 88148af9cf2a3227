"""`--device cuda` as far as a machine without a GPU can test it: refused in one sentence
without onnxruntime-gpu; crops batched across photos equal photo by photo; the device does
not bind a dataset folder; a worker per GPU; Ray asked for GPUs."""

import multiprocessing
import os
import signal
import subprocess
import sys

import cv2
import numpy as np
import onnxruntime
import pytest

from posepipe.batch import BatchOptions, run_batch
from posepipe.batch.dataset import BatchDir
from posepipe.batch.local import cores, default_workers, gpus
from posepipe.batch.plan import Source
from posepipe.batch.ray_engine import worker_resources, worker_slots
from posepipe.batch.work import pose_photo, pose_photos, start_worker
from posepipe.errors import ModelError, PosepipeError
from posepipe.models.assets import cache_dir, resolve_models
from posepipe.models.runtime import load_model
from posepipe.pipeline import PoseLandmarker, PoseLandmarkerOptions
from tests.conftest import sample_image

HAS_CUDA_PROVIDER = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
needs_no_cuda_provider = pytest.mark.skipif(HAS_CUDA_PROVIDER, reason="onnxruntime-gpu is installed here")
LANDMARK_TOLERANCE_PX = 1e-4  # batching must not move a landmark: far below a pixel, above float rounding


def people_photos() -> list[np.ndarray]:
    """One person, one person, nobody (flat grey), and a wide picture of two people side by side."""
    astronaut, hopper = sample_image("astronaut.png"), sample_image("grace_hopper.jpg")
    side_by_side = np.concatenate([astronaut, cv2.resize(hopper, (astronaut.shape[1], astronaut.shape[0]))], axis=1)
    return [astronaut, hopper, np.full((300, 400, 3), 128, np.uint8), side_by_side]


def assert_same_poses(one, many) -> None:
    assert len(one) == len(many)
    if not len(one):
        return
    np.testing.assert_allclose(many.landmarks, one.landmarks, rtol=0, atol=LANDMARK_TOLERANCE_PX)
    np.testing.assert_allclose(many.world_landmarks, one.world_landmarks, rtol=0, atol=1e-6)  # metres
    np.testing.assert_allclose(many.visibility, one.visibility, rtol=0, atol=1e-5)
    np.testing.assert_allclose(many.scores, one.scores, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(many.rois, one.rois)
    if one.masks is not None:
        np.testing.assert_allclose(many.masks, one.masks, rtol=0, atol=1e-5)


# ------------------------------------------------------------------ refused without onnxruntime-gpu

def posepipe(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "posepipe.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=120)


@needs_no_cuda_provider
@pytest.mark.parametrize("command", ["batch", "image", "video"])
def test_device_cuda_without_onnxruntime_gpu_is_one_sentence_and_exit_2(command, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "one.png"), np.full((64, 64, 3), 90, np.uint8))
    extra = {"batch": ["--out", tmp_path / "out"], "image": [], "video": []}[command]
    result = posepipe(command, photos, "--device", "cuda", *extra)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("posepipe")]
    assert lines == ["posepipe: error: device 'cuda' needs onnxruntime-gpu, which is not installed (pip install "
                     "'posepipe[gpu]' in an environment without the plain onnxruntime package; see docs/batch.md, "
                     "GPU)"]
    assert not (tmp_path / "out").exists()  # refused before the dataset folder is made


def test_device_options_are_checked():
    with pytest.raises(PosepipeError, match="unknown device 'gpu'"):
        PoseLandmarkerOptions(device="gpu").validate()
    with pytest.raises(PosepipeError, match="litert backend runs on the CPU only"):
        PoseLandmarkerOptions(device="cuda", backend="litert").validate()
    detector, _ = resolve_models()
    with pytest.raises(ModelError, match="litert backend runs on the CPU only"):
        load_model(detector, "litert", cache_dir(), device="cuda")
    with pytest.raises(ModelError, match="unknown device"):
        load_model(detector, "onnxruntime", cache_dir(), device="tpu")


@needs_no_cuda_provider
def test_auto_with_cuda_goes_to_onnxruntime_not_litert():
    # LiteRT would open the detector here; only ONNX Runtime asks for its CUDA provider.
    detector, _ = resolve_models()
    with pytest.raises(ModelError, match="needs onnxruntime-gpu"):
        load_model(detector, "auto", cache_dir(), device="cuda")


# ------------------------------------------------------------------ crops batched across photos

@pytest.mark.parametrize("masks", [False, True])
def test_crops_batched_across_photos_equal_photo_by_photo(masks):
    photos = people_photos()
    with PoseLandmarker(backend="onnxruntime", num_poses=2, output_segmentation_masks=masks) as landmarker:
        one_by_one = [landmarker.detect(photo) for photo in photos]
        runs = []
        infer = landmarker.landmark_model.infer
        landmarker.landmark_model.infer = lambda batch: runs.append(len(batch)) or infer(batch)
        together = landmarker.detect_many(iter(photos))
    assert runs == [sum(len(p) for p in one_by_one)]  # one landmark run for every crop
    assert [len(p) for p in one_by_one][2] == 0 and sum(len(p) for p in one_by_one) >= 3
    for one, many, photo in zip(one_by_one, together, photos):
        assert many.image_size == (photo.shape[1], photo.shape[0])
        assert_same_poses(one, many)


def test_detect_many_of_no_photos_and_of_nobody():
    with PoseLandmarker(backend="onnxruntime") as landmarker:
        assert landmarker.detect_many([]) == []
        nobody = landmarker.detect_many([np.zeros((50, 80, 3), np.uint8)])
    assert len(nobody) == 1 and len(nobody[0]) == 0 and nobody[0].image_size == (80, 50)


class Rows:
    def __init__(self):
        self.poses = {}

    def write(self, source, frame, timestamp_ms, poses):
        self.poses[source] = poses


def test_a_chunk_of_photos_in_a_worker_equals_photo_by_photo_and_keeps_failures_apart(tmp_path):
    photos = people_photos()
    sources = []
    for index, photo in enumerate(photos):
        path = tmp_path / f"photo{index}.png"
        cv2.imwrite(str(path), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
        sources.append(Source(path.name, str(path), "image"))
    (tmp_path / "broken.jpg").write_bytes(b"not a picture")
    sources.insert(1, Source("broken.jpg", str(tmp_path / "broken.jpg"), "image"))
    rows = Rows()
    with PoseLandmarker(backend="onnxruntime", num_poses=2) as landmarker:
        runs = []
        infer = landmarker.landmark_model.infer
        landmarker.landmark_model.infer = lambda batch: runs.append(len(batch)) or infer(batch)
        statuses = pose_photos(sources, rows, landmarker)
        assert len(runs) == 1  # the chunk's crops in one run, not photo by photo
        landmarker.landmark_model.infer = infer
        expected = [landmarker.detect(photo) for photo in photos]
        broken_alone = pose_photo(sources[1], Rows(), landmarker)
    assert [s["source"] for s in statuses] == [s.name for s in sources]
    broken = statuses.pop(1)
    assert broken["status"] == "error" and broken["frames"] == 0 and broken["error"] == broken_alone["error"]
    assert "broken.jpg" not in rows.poses
    for status, source, poses in zip(statuses, [s for s in sources if s.name != "broken.jpg"], expected):
        assert status["status"] == "ok" and status["poses"] == len(poses) and status["seconds"] > 0
        assert_same_poses(poses, rows.poses[source.name])


# ------------------------------------------------------------------ the dataset folder and the workers

def test_the_device_is_not_among_the_options_that_refuse_a_resume(tmp_path):
    cv2.imwrite(str(tmp_path / "astronaut.png"), cv2.cvtColor(sample_image("astronaut.png"), cv2.COLOR_RGB2BGR))
    out = tmp_path / "out"
    summary = run_batch([str(tmp_path / "astronaut.png")], out, BatchOptions(backend="onnxruntime"), workers=1)
    assert summary.done_now == 1 and list((out / "poses").glob("part-*.parquet"))
    assert BatchOptions(device="cuda").fingerprint() == BatchOptions().fingerprint()
    BatchDir(out, BatchOptions(device="cuda").fingerprint()).close()  # finishing on a GPU is allowed
    with pytest.raises(PosepipeError, match="num_poses"):  # what does change results is still refused
        BatchDir(out, BatchOptions(num_poses=2).fingerprint())


def test_a_worker_per_gpu(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 3")
    assert gpus() == ["2", "3"]
    assert default_workers("cuda") == 2
    assert default_workers("cpu") == cores()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert gpus() == [] and default_workers("cuda") == 1  # none visible: one worker, whose ORT says why


def test_a_worker_takes_its_own_gpu(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    devices = multiprocessing.get_context("spawn").Queue()
    devices.put("1")
    handler = signal.getsignal(signal.SIGINT)
    try:
        start_worker(devices)
    finally:
        signal.signal(signal.SIGINT, handler)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"


def test_ray_workers_ask_for_a_gpu_with_cuda():
    assert worker_resources(BatchOptions(device="cuda"), 2) == {"num_cpus": 2, "num_gpus": 1}
    assert worker_resources(BatchOptions(), 2) == {"num_cpus": 2}
    assert worker_slots({"CPU": 16.0, "GPU": 2.0}, worker_resources(BatchOptions(device="cuda"), 1)) == 2
    assert worker_slots({"CPU": 16.0, "GPU": 2.0}, worker_resources(BatchOptions(), 2)) == 8
    with pytest.raises(PosepipeError, match="the Ray cluster has no GPUs"):
        worker_slots({"CPU": 16.0}, worker_resources(BatchOptions(device="cuda"), 1))
