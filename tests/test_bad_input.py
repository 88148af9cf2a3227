"""Bad input through the real command: one clear sentence each, other inputs still processed,
no traceback, valid JSON lines."""

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from posepipe import ImageError, PoseLandmarker
from posepipe.pipeline import as_rgb_uint8


def posepipe(*args, env=None):
    return subprocess.run([sys.executable, "-m", "posepipe.cli", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory, grace_path):
    folder = tmp_path_factory.mktemp("mixed")
    good = grace_path.read_bytes()
    (folder / "a_good.jpg").write_bytes(good)
    (folder / "b_empty.jpg").write_bytes(b"")
    (folder / "c_truncated.jpg").write_bytes(good[: len(good) // 2])
    (folder / "d_text.jpg").write_text("this is not a picture\n")
    image = cv2.imread(str(grace_path))
    cv2.imwrite(str(folder / "e_gray.png"), cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(folder / "f_rgba.png"), cv2.cvtColor(image, cv2.COLOR_BGR2BGRA))
    cv2.imwrite(str(folder / "g_16bit.png"), image.astype(np.uint16) * 257)
    cv2.imwrite(str(folder / "h_tiny.png"), np.full((1, 1, 3), 128, np.uint8))
    (folder / "notes.txt").write_text("a stray file in the folder\n")
    return folder


def test_mixed_folder(tmp_path, mixed_folder):
    out = tmp_path / "out.jsonl"
    proc = posepipe("image", mixed_folder, "-o", out, "--overlay", tmp_path / "overlay")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    recs = {Path(r["source"]).name: r for r in records(out)}
    assert list(recs) == sorted(recs)  # input order
    assert "empty" in recs["b_empty.jpg"]["error"]
    assert "truncated" in recs["c_truncated.jpg"]["error"]
    assert "not a readable image" in recs["d_text.jpg"]["error"]
    assert "not a readable image" in recs["notes.txt"]["error"]
    # Gray converts and runs (this photo's person is not found without colour, as in MediaPipe).
    assert "error" not in recs["e_gray.png"] and recs["e_gray.png"]["width"] == 512
    for name in ("a_good.jpg", "f_rgba.png", "g_16bit.png"):
        assert len(recs[name]["poses"]) == 1, name
        assert len(recs[name]["poses"][0]["landmarks"]) == 33
    assert recs["h_tiny.png"]["poses"] == [] and recs["h_tiny.png"]["width"] == 1
    # gray, RGBA and 16-bit give the same person as the original
    nose = lambda n: np.array([recs[n]["poses"][0]["landmarks"][0][k] for k in ("x", "y")])  # noqa: E731
    assert np.abs(nose("f_rgba.png") - nose("a_good.jpg")).max() < 1.0
    assert np.abs(nose("g_16bit.png") - nose("a_good.jpg")).max() < 1.0
    assert (tmp_path / "overlay" / "a_good.png").is_file()
    # each failure is one line on stderr
    assert sum("posepipe:" in line for line in proc.stderr.splitlines()) == 5


def test_missing_path(tmp_path, grace_path):
    out = tmp_path / "out.jsonl"
    proc = posepipe("image", tmp_path / "nope.jpg", grace_path, "-o", out)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    recs = records(out)
    assert recs[0]["error"] == "file not found"
    assert len(recs[1]["poses"]) == 1


def test_huge_image(tmp_path):
    big = tmp_path / "big.png"
    cv2.imwrite(str(big), np.zeros((12000, 12000, 3), np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    out = tmp_path / "out.jsonl"
    proc = posepipe("image", big, "-o", out)
    assert proc.returncode == 0, proc.stderr
    rec = records(out)[0]
    assert (rec["width"], rec["height"], rec["poses"]) == (12000, 12000, [])


def test_unwritable_output_and_bad_options(tmp_path, grace_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = posepipe("image", grace_path, "-o", blocker / "out.jsonl")
    assert proc.returncode == 2 and "cannot write" in proc.stderr and "Traceback" not in proc.stderr
    proc = posepipe("image", grace_path, "--num-poses", "0")
    assert proc.returncode == 2 and "num_poses must be at least 1" in proc.stderr
    proc = posepipe("image", grace_path, "--landmark-model", tmp_path / "missing.tflite")
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    (tmp_path / "notes.tflite").write_text("not a model")
    for backend in ("auto", "litert", "onnxruntime"):
        proc = posepipe("image", grace_path, "--landmark-model", tmp_path / "notes.tflite", "--backend", backend)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert "notes.tflite is not a TFLite model" in proc.stderr


def test_array_conversions():
    rgb = np.zeros((4, 5, 3), np.uint8)
    assert as_rgb_uint8(rgb[:, :, 0]).shape == (4, 5, 3)
    assert as_rgb_uint8(np.zeros((4, 5, 4), np.uint8)).shape == (4, 5, 3)
    assert as_rgb_uint8(np.full((4, 5, 3), 65535, np.uint16)).max() == 255
    for bad, pattern in [(np.zeros((4, 5, 3), np.float32), "uint8 or uint16"), (np.zeros((4, 5, 2), np.uint8), "shape"),
                         (np.zeros((0, 5, 3), np.uint8), "empty"), ([[1, 2]], "numpy array")]:
        with pytest.raises(ImageError, match=pattern):
            as_rgb_uint8(bad)


def test_interrupted_output_stays_valid(tmp_path, grace_path):
    """Kill the run after its first line: every line written is whole JSON."""
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(40):
        (folder / f"{i:02d}.jpg").write_bytes(grace_path.read_bytes())
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "posepipe.cli", "image", str(folder), "-o", str(out)],
                            stderr=subprocess.PIPE, text=True)
    import time

    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or out.stat().st_size == 0):
        time.sleep(0.05)
    proc.send_signal(2)  # Ctrl-C
    _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err
    lines = out.read_text().splitlines()
    assert 1 <= len(lines) <= 40
    for line in lines:
        assert len(json.loads(line)["poses"]) == 1
