"""``posepipe models add`` / ``models list`` and the registry behind them. MediaPipe's lite
model from ../shared is added through the real command in a fresh cache and then used by
``Pose(model_complexity=0)``. Files that are no BlazePose model get one sentence. .task
bundles give their models, and a missing heavy model names its file and the command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import posepipe as mp
from posepipe.errors import ModelError
from posepipe.models import assets, registry
from posepipe.models.assets import sha256_of
from posepipe.models.bundles import DETECTOR_MEMBER, LANDMARK_MEMBER
from tests.conftest import SHARED, needs_shared

ROOT = Path(__file__).resolve().parents[1]
LITE = SHARED / "models" / "pose_landmark_lite.tflite"
needs_lite = pytest.mark.skipif(not LITE.is_file(), reason="../shared/models has no pose_landmark_lite.tflite")
# third_party/external_files.bzl in google-ai-edge/mediapipe lists the lite model f17bfbec… under this generation.
LITE_GENERATION = "generation 1661875901231143"
NOT_A_MODEL = "is not a BlazePose detector or landmark model: "


def fresh_cache(folder: Path, model_paths) -> Path:
    """A cache holding the default models only, as links to the real ones (nothing is fetched)."""
    models = folder / "models"
    models.mkdir(parents=True)
    for path in model_paths:
        (models / path.name).symlink_to(path)
    return folder


def use_cache(monkeypatch, cache: Path) -> None:
    monkeypatch.setenv("POSEPIPE_CACHE_DIR", str(cache))
    monkeypatch.delenv("POSEPIPE_LANDMARK_MODEL", raising=False)
    monkeypatch.delenv("POSEPIPE_DETECTOR_MODEL", raising=False)


def run_posepipe(cache: Path, *args: str) -> subprocess.CompletedProcess:
    """The command as a user runs it, on ``cache``."""
    env = {**os.environ, "POSEPIPE_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    for key in ("POSEPIPE_LANDMARK_MODEL", "POSEPIPE_DETECTOR_MODEL"):
        env.pop(key, None)
    return subprocess.run([sys.executable, "-m", "posepipe.cli", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def make_bundle(path: Path, detector: Path, landmarks: Path) -> Path:
    """A pose landmarker .task bundle: a zip holding the two networks under MediaPipe's member names."""
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.write(detector, DETECTOR_MEMBER)
        bundle.write(landmarks, LANDMARK_MEMBER)
    return path


@pytest.fixture(scope="module")
def lite_added(tmp_path_factory, model_paths):
    """A fresh cache after `posepipe models add ../shared/models/pose_landmark_lite.tflite`."""
    if not LITE.is_file():
        pytest.skip("../shared/models has no pose_landmark_lite.tflite")
    cache = fresh_cache(tmp_path_factory.mktemp("cache"), model_paths)
    return cache, run_posepipe(cache, "models", "add", str(LITE))


@needs_shared
@needs_lite
def test_add_names_the_lite_model_and_its_release(lite_added):
    cache, proc = lite_added
    assert proc.returncode == 0, proc.stderr
    assert sha256_of(LITE).startswith("f17bfbec")
    [line] = proc.stdout.splitlines()
    target = cache / "models" / "pose_landmark_lite.tflite"
    assert line.startswith(f"{LITE}: lite landmark model, pose_landmark_lite.tflite (MediaPipe, {LITE_GENERATION})")
    assert f"→ {target} (model_complexity=0)" in line
    assert sha256_of(target) == sha256_of(LITE) and not target.is_symlink()


@needs_shared
@needs_lite
def test_model_complexity_zero_runs_the_added_model(lite_added, grace_path):
    """In a new process, as a user's script: complexity 0 runs the added file, and its landmarks
    are close to the full model's (lite vs full: median 1.6 % of the person's size, at most 4.8 %
    on this photo) yet not the same network (one network on two runtimes differs by 0.001 %)."""
    cache, _ = lite_added
    script = """
import json, sys, cv2, posepipe as mp
image = cv2.cvtColor(cv2.imread(sys.argv[1]), cv2.COLOR_BGR2RGB)
height, width = image.shape[:2]
found = {}
for complexity in (0, 1):
    with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=complexity) as pose:
        result = pose.process(image)
        found[complexity] = {"model": str(pose._landmarker.options.landmark_model),
                             "xy": [[p.x * width, p.y * height] for p in result.pose_landmarks.landmark]}
print(json.dumps(found))
"""
    env = {**os.environ, "POSEPIPE_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    env.pop("POSEPIPE_LANDMARK_MODEL", None)
    proc = subprocess.run([sys.executable, "-c", script, str(grace_path)], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout.splitlines()[-1])
    assert found["0"]["model"] == str(cache / "models" / "pose_landmark_lite.tflite")
    assert found["1"]["model"] == "None"  # complexity 1: posepipe's default full model
    lite, full = np.array(found["0"]["xy"]), np.array(found["1"]["xy"])
    size = np.ptp(full, axis=0).max()
    distance = np.linalg.norm(lite - full, axis=1) / size
    assert 0.002 < np.median(distance) < 0.05
    assert distance.max() < 0.15


@needs_shared
@needs_lite
def test_models_list_shows_the_added_and_the_default_models(lite_added):
    cache, _ = lite_added
    proc = run_posepipe(cache, "models", "list")
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[1]: line for line in proc.stdout.splitlines() if ".tflite" in line}
    assert set(rows) == {"pose_landmark_lite.tflite", "pose_detection.tflite", "pose_landmark_full.tflite"}
    lite = rows["pose_landmark_lite.tflite"]
    assert "lite landmark model" in lite and LITE_GENERATION in lite and sha256_of(LITE)[:12] in lite
    assert "model_complexity=0" in lite and "2.8 MB" in lite
    assert "the detector" in rows["pose_detection.tflite"] and assets.DETECTOR.sha256[:12] in rows["pose_detection.tflite"]
    assert "model_complexity=1, the default" in rows["pose_landmark_full.tflite"]


def with_input_size(source: Path, target: Path, size: int) -> Path:
    """A copy of a .tflite whose input tensor says ``size`` × ``size``: a network that no stage of
    BlazePose takes."""
    import tflite

    data = bytearray(source.read_bytes())
    graph = tflite.Model.GetRootAsModel(data, 0).Subgraphs(0)
    shape = graph.Tensors(graph.Inputs(0)).ShapeAsNumpy()  # a view into ``data``
    shape[1:3] = size
    target.write_bytes(bytes(data))
    return target


@needs_shared
@needs_lite
def test_files_that_are_no_blazepose_model_get_one_sentence(tmp_path, model_paths, grace_path):
    cache = fresh_cache(tmp_path / "cache", model_paths)
    photo = tmp_path / "photo.tflite"
    shutil.copy(grace_path, photo)
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(LITE.read_bytes()[: LITE.stat().st_size * 6 // 10])
    odd_input = with_input_size(LITE, tmp_path / "odd_input.tflite", 192)
    missing = tmp_path / "missing.tflite"
    proc = run_posepipe(cache, "models", "add", str(LITE), str(photo), str(truncated), str(odd_input), str(missing))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert (cache / "models" / "pose_landmark_lite.tflite").is_file()  # the good file before them stays added
    assert len(proc.stdout.splitlines()) == 1
    errors = proc.stderr.splitlines()
    assert errors == [
        f"posepipe: error: {photo} {NOT_A_MODEL}it is not a TFLite model",
        f"posepipe: error: {truncated} {NOT_A_MODEL}its TFLite data is damaged or cut short",
        errors[2],
        f"posepipe: error: {missing} does not exist",
    ]
    assert errors[2].startswith(f"posepipe: error: {odd_input} {NOT_A_MODEL}it takes a 192×192 image and gives 195, ")
    assert sorted(p.name for p in (cache / "models").iterdir()) == [
        "pose_detection.tflite", "pose_landmark_full.tflite", "pose_landmark_lite.tflite"]  # nothing half-written


def test_a_detector_is_no_landmark_model(tmp_path, monkeypatch, model_paths):
    """A detector copied into the lite model's place is refused by model_complexity=0 and listed
    as what it is; `models add` puts a detector where detectors go."""
    detector = model_paths[0]
    cache = fresh_cache(tmp_path / "cache", model_paths)
    use_cache(monkeypatch, cache)
    [added] = registry.add([detector])
    assert added.kind == registry.DETECTOR and added.path == cache / "models" / "pose_detection.tflite"
    assert added.release == "pose_detection.tflite (MediaPipe, generation 1678737489600422)"
    misplaced = cache / "models" / "pose_landmark_lite.tflite"
    shutil.copy(detector, misplaced)
    with pytest.raises(ModelError) as caught:
        mp.solutions.pose.Pose(model_complexity=0)
    assert str(caught.value).startswith(f"{misplaced} is not a landmark model (it is a BlazePose detector)")
    assert "`posepipe models add pose_landmark_lite.tflite`" in str(caught.value)
    [listed] = [m for m in registry.listing() if m.path == misplaced]
    assert (listed.kind, listed.use) == (registry.DETECTOR, "--detector-model")


@needs_shared
@needs_lite
def test_a_task_bundle_gives_its_lite_model(tmp_path, monkeypatch, model_paths):
    """The landmark model's variant comes from the network, not the file name; the same bundle
    twice is harmless, and a bundle without a detector and a landmark model in their places is refused."""
    detector = model_paths[0]
    cache = fresh_cache(tmp_path / "cache", model_paths)
    use_cache(monkeypatch, cache)
    bundle = make_bundle(tmp_path / "pose_landmarker_heavy.task", detector, LITE)  # misnamed on purpose
    for _ in range(2):
        [lite] = registry.add([bundle])
        assert (lite.what, lite.path) == ("lite landmark model", cache / "models" / "pose_landmark_lite.tflite")
        assert lite.release.endswith(LITE_GENERATION + ")") and sha256_of(lite.path) == sha256_of(LITE)
    assert sorted(p.name for p in (cache / "models").iterdir()) == [
        "pose_detection.tflite", "pose_landmark_full.tflite", "pose_landmark_lite.tflite"]  # no temporary left

    swapped = make_bundle(tmp_path / "swapped.task", LITE, detector)
    with pytest.raises(ModelError, match=r"its pose_detector\.tflite is a landmark model, not a detector$"):
        registry.add([swapped])
    with zipfile.ZipFile(tmp_path / "hand_landmarker.task", "w") as other:
        other.write(detector, "hand_detector.tflite")
    with pytest.raises(ModelError, match=r"No file with name: pose_detector\.tflite\. All files in the model asset "
                                         r"bundle are: hand_detector\.tflite\."):
        registry.add([tmp_path / "hand_landmarker.task"])


@needs_shared
@needs_lite
def test_an_unknown_release_gets_its_variant_from_the_network(tmp_path, monkeypatch, model_paths):
    """Bytes after the flatbuffer change the checksum but not the network. A full model of another
    release is kept beside the default, which stays as it is (assets would fetch it again otherwise)."""
    cache = fresh_cache(tmp_path / "cache", model_paths)
    use_cache(monkeypatch, cache)
    other_lite, other_full = tmp_path / "lite.tflite", tmp_path / "full.tflite"
    other_lite.write_bytes(LITE.read_bytes() + bytes(16))
    other_full.write_bytes(model_paths[1].read_bytes() + bytes(16))
    lite, full = registry.add([other_lite, other_full])
    assert (lite.what, lite.release, lite.path.name) == (
        "lite landmark model", registry.UNKNOWN_RELEASE, "pose_landmark_lite.tflite")
    assert (full.what, full.release, full.use) == ("full landmark model", registry.UNKNOWN_RELEASE, "--landmark-model")
    assert full.path.name == f"pose_landmark_full-{sha256_of(other_full)[:12]}.tflite"
    default = cache / "models" / "pose_landmark_full.tflite"
    assert default.is_symlink() and sha256_of(default) == assets.LANDMARK_FULL.sha256
    assert registry.identify(model_paths[1]).release == "pose_landmark_full.tflite (MediaPipe, generation 1661875894245786)"


def test_model_complexity_two_without_the_heavy_model(tmp_path, monkeypatch):
    use_cache(monkeypatch, tmp_path)
    with pytest.raises(ModelError) as caught:
        mp.solutions.pose.Pose(model_complexity=2)
    message = str(caught.value)
    assert message.startswith("model_complexity=2 needs MediaPipe's pose_landmark_heavy.tflite")
    assert "`posepipe models add pose_landmark_heavy.tflite`" in message and "\n" not in message


def test_known_models_cover_the_defaults_and_name_their_files():
    known = registry.KNOWN_MODELS
    assert known[assets.DETECTOR.sha256].kind == registry.DETECTOR
    assert (known[assets.LANDMARK_FULL.sha256].kind, known[assets.LANDMARK_FULL.sha256].variant) == (
        registry.LANDMARK, "full")
    assert {m.variant for m in known.values() if m.kind == registry.LANDMARK} == {"lite", "full", "heavy"}
    for sha, model in known.items():
        assert len(sha) == 64 and int(sha, 16) >= 0
        file = {registry.DETECTOR: "pose_detection.tflite", registry.BUNDLE: "pose_landmarker.task"}.get(
            model.kind, f"pose_landmark_{model.variant}.tflite")
        assert model.release.startswith(f"{file} (MediaPipe, ")
