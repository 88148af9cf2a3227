"""A trained landmark model given as an ``.onnx`` file: runs on ONNX Runtime like the imported
graph (with and without the mask branch), and wrong files are refused in one sentence."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import onnx
import pytest

from posepipe import ModelError, PoseLandmarker
from posepipe.models.assets import cache_dir
from posepipe.models.graph import import_tflite
from posepipe.models.runtime import to_onnx

from tests.conftest import sample_image


@pytest.fixture(scope="module")
def exported(model_paths, tmp_path_factory):
    """MediaPipe's landmark network as a training run would export it: an .onnx of its own."""
    path = tmp_path_factory.mktemp("trained") / "model.onnx"
    onnx.save(to_onnx(import_tflite(model_paths[1])), str(path))
    return path


@pytest.mark.parametrize("masks", [False, True])
def test_onnx_file_runs_as_the_imported_graph(exported, masks):
    image = sample_image("grace_hopper.jpg")
    with PoseLandmarker(backend="onnxruntime", output_segmentation_masks=masks) as imported, \
            PoseLandmarker(landmark_model=exported, output_segmentation_masks=masks) as trained:
        model = trained.landmark_model.model
        assert type(model).__name__ == "OnnxRuntimeModel"  # auto picks ONNX Runtime for an .onnx
        # Without masks the segmentation branch is cut out (cached by content), as for the tflite.
        assert model.dropped == ([] if masks else [2]) and len(model.output_names) == (5 if masks else 4)
        if not masks:
            assert list((cache_dir() / "onnx").glob("model-*-cut-no2.onnx"))
        trained.detector = imported.detector  # the same detector on both sides: compare the landmark models
        expected, got = imported.detect(image), trained.detect(image)
    assert len(got) == len(expected) == 1
    for name in ("landmarks", "world_landmarks", "visibility", "presence", "scores"):
        assert np.abs(getattr(got, name) - getattr(expected, name)).max() <= 1e-4, name
    if masks:
        assert np.abs(got.masks - expected.masks).max() <= 1e-4


def _without_output(exported, tmp_path, index):
    model = onnx.load(str(exported))
    names = [o.name for i, o in enumerate(model.graph.output) if i != index]
    path = tmp_path / f"no{index}.onnx"
    onnx.save(onnx.utils.Extractor(model).extract_model([model.graph.input[0].name], names), str(path))
    return path


def test_wrong_files_are_refused(exported, model_paths, tmp_path):
    text = tmp_path / "notes.onnx"
    text.write_text("not a network\n")
    tflite = tmp_path / "renamed.onnx"
    tflite.write_bytes(model_paths[1].read_bytes())
    detector = tmp_path / "detector.onnx"
    onnx.save(to_onnx(import_tflite(model_paths[0])), str(detector))
    cases = [(text, "is not a readable ONNX model"), (tflite, "is not a readable ONNX model"),
             (tmp_path / "empty.onnx", "holds no network"),
             (detector, r"does not take the landmark model's input, one float tensor \(batch, 3, 256, 256\)"),
             (_without_output(exported, tmp_path, 3), "does not have the landmark model's 5 outputs")]
    (tmp_path / "empty.onnx").write_bytes(b"")
    for path, said in cases:
        with pytest.raises(ModelError, match=said):
            PoseLandmarker(landmark_model=path)
    with pytest.raises(ModelError, match="litert backend runs .tflite files only"):
        PoseLandmarker(landmark_model=exported, backend="litert")


def test_command_line_takes_the_onnx_file(exported, grace_path, tmp_path):
    def posepipe(*args):
        return subprocess.run([sys.executable, "-m", "posepipe.cli", *map(str, args)], capture_output=True,
                              text=True, env=os.environ.copy(), timeout=300)

    out = tmp_path / "out.jsonl"
    proc = posepipe("image", grace_path, "--landmark-model", exported, "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert '"landmarks"' in out.read_text()
    proc = posepipe("image", grace_path, "--landmark-model", exported, "--backend", "litert")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "litert backend runs .tflite files only" in proc.stderr
