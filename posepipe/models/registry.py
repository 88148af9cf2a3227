"""MediaPipe's pose model files that the user has, added to posepipe's cache (``posepipe models add``).

posepipe fetches MediaPipe's detector and full landmark model itself (:mod:`.assets`). No
package index carries the lite and heavy landmark models that ``model_complexity`` 0 and 2
need, so the user adds the files they have: ``.tflite`` models, or the Tasks API's ``.task``
bundles. A file is recognised by its network's input and output shapes, and named by its
SHA-256 where MediaPipe published that file.

``cache_dir()/models`` keeps one file per model:

- ``pose_detection.tflite``, ``pose_landmark_full.tflite``: the defaults (assets). An added
  copy of the same release goes there, which spares the download.
- ``pose_landmark_lite.tflite``, ``pose_landmark_heavy.tflite``: model_complexity 0 and 2;
  a later ``add`` replaces an earlier one.
- ``pose_detection-<sha>.tflite``, ``pose_landmark_full-<sha>.tflite``: a detector or full
  model of another release. These stay beside the defaults, because assets fetches a default
  again when its checksum does not match. Use them with --detector-model / --landmark-model.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import ModelError
from .assets import DETECTOR as DEFAULT_DETECTOR
from .assets import LANDMARK_FULL as DEFAULT_LANDMARK
from .assets import cache_dir, ensure_default_models, sha256_of
from .bundles import DETECTOR_MEMBER, LANDMARK_MEMBER, unpack_task_bundle
from .graph import Graph, import_tflite

DETECTOR, LANDMARK, BUNDLE = "detector", "landmark model", "bundle"
UNKNOWN_RELEASE = "unknown release"
# MediaPipe's model_complexity of each landmark variant.
COMPLEXITY = {"lite": 0, "full": 1, "heavy": 2}
LANDMARK_FILES = {"lite": "pose_landmark_lite.tflite", "full": DEFAULT_LANDMARK.filename,
                  "heavy": "pose_landmark_heavy.tflite"}
# Where a pose landmarker .task bundle keeps its two networks (MediaPipe's pose_landmarker_graph.cc).


@dataclass(frozen=True)
class KnownModel:
    kind: str  # DETECTOR, LANDMARK or BUNDLE
    variant: str | None  # lite, full or heavy; None for a detector
    release: str


def _listed(file: str, generation: int) -> str:
    return f"{file} (MediaPipe, generation {generation})"


def _committed(file: str, date: str) -> str:
    return f"{file} (MediaPipe, committed {date})"


# MediaPipe's pose models by SHA-256, from google-ai-edge/mediapipe. Most come from the
# http_file entries in third_party/external_files.bzl, read across the file's history. For
# those, the release is the storage generation under which a checksum was first listed. The
# rest are model files that were committed under mediapipe/modules/ and that posepipe can read
# (2021-06 onwards); the release is the commit date. Older models use operators posepipe does
# not read. The testdata bundle pose_landmarker.task is the lite one: MediaPipe's test names it
# PoseLandmarkerLite.
KNOWN_MODELS: dict[str, KnownModel] = {
    "7df1fe71ea9e577631b2bd76cf9dda16b303c9425c67b4e846f0b2103008a9ca":
        KnownModel(DETECTOR, None, _committed("pose_detection.tflite", "2021-06-24")),
    "a63c614bef30d35947f13be361820b1e4e3bec9cfeebf4d11216a18373108e85":
        KnownModel(DETECTOR, None, _listed("pose_detection.tflite", 1661875889147923)),
    "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c":
        KnownModel(DETECTOR, None, _listed("pose_detection.tflite", 1678737489600422)),
    "fa7f68b146b1719722648c0885528707c463e8ce993d068056a31690289db961":
        KnownModel(LANDMARK, "lite", _committed("pose_landmark_lite.tflite", "2021-06-24")),
    "f17bfbecadb61c3be1baa8b8d851cc6619c870a87167b32848ad20db306b9d61":
        KnownModel(LANDMARK, "lite", _listed("pose_landmark_lite.tflite", 1661875901231143)),
    "13628a7d1c1a0f601ae7202c71ec8edc3ac42db9d15f116c494ff24d1afabdd7":
        KnownModel(LANDMARK, "lite", _listed("pose_landmark_lite.tflite", 1679955090327685)),
    "1150dc68a713b80660b90ef46ce4e85c1c781bb88b6e3512cc64e6a685ba5588":
        KnownModel(LANDMARK, "lite", _listed("pose_landmark_lite.tflite", 1681243912778143)),
    "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f":
        KnownModel(LANDMARK, "full", _listed("pose_landmark_full.tflite", 1661875894245786)),
    "59e42d71bcd44cbdbabc419f0ff76686595fd265419566bd4009ef703ea8e1fe":
        KnownModel(LANDMARK, "heavy", _listed("pose_landmark_heavy.tflite", 1661875897944151)),
    "ca4137626f0dc04f87893ccf2ad01949a3b1d4b55fa85ba957dde44a29dd956e":
        KnownModel(BUNDLE, "lite", _listed("pose_landmarker.task", 1680543298177615)),
    "c20284c073a891774f894269a14da4cbe4a84cab034757dab587bc19c9522b7a":
        KnownModel(BUNDLE, "lite", _listed("pose_landmarker.task", 1681240686676992)),
    "fb9cc326c88fc2a4d9a6d355c28520d5deacfbaa375b56243b0141b546080596":
        KnownModel(BUNDLE, "lite", _listed("pose_landmarker.task", 1681243909774681)),
}

# The tensors the pipeline reads, batch dimension left out (NCHW as graph.py gives them).
DETECTOR_INPUT, DETECTOR_OUTPUTS = (3, 224, 224), [(2254, 12), (2254, 1)]  # boxes with keypoints, scores
LANDMARK_INPUT = (3, 256, 256)
# Weights of MediaPipe's landmark networks, counted on the published files: lite 1.36 M, full
# 3.17 M. Heavy is larger still; it was not counted, as no heavy file was at hand, so anything
# above 5 M counts as heavy. A release with an unknown checksum gets its variant from these bounds.
_LITE_MAX_WEIGHTS, _FULL_MAX_WEIGHTS = 2_000_000, 5_000_000


def _is_landmark_outputs(outputs: list[tuple[int, ...]]) -> bool:
    """Landmarks, pose presence, segmentation logits, heatmaps and world landmarks, in this order.
    The mask is square: 256 × 256 from 2021-08 on, 128 × 128 before; both warp back alike."""
    if len(outputs) != 5:
        return False
    landmarks, presence, mask, heatmaps, world = outputs
    return (landmarks == (195,) and presence == (1,) and len(mask) == 3 and mask[0] == 1 and mask[1] == mask[2]
            and heatmaps == (39, 64, 64) and world == (117,))


def _shape_text(shape: tuple[int, ...]) -> str:
    return "×".join(map(str, shape))


class _Unusable(Exception):
    """Why a file is no BlazePose detector or landmark model: a clause, completed by the caller."""


def _examine(path: Path) -> tuple[str, Graph]:
    """The kind of model in ``path`` and its graph; raises _Unusable."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise _Unusable(f"it cannot be read ({exc.strerror or exc})") from None
    if head[4:8] != b"TFL3":
        raise _Unusable("it is not a TFLite model")
    try:
        graph = import_tflite(path)
    except ModelError as exc:
        # import_tflite names the path only when the flatbuffer itself is broken.
        reason = str(exc)
        raise _Unusable("its TFLite data is damaged or cut short" if str(path) in reason else reason) from None
    shape_in = graph.input_shape[1:]
    outputs = [tuple(graph.output_shapes[name][1:]) for name in graph.outputs]
    if shape_in == DETECTOR_INPUT and outputs == DETECTOR_OUTPUTS:
        return DETECTOR, graph
    if shape_in == LANDMARK_INPUT and _is_landmark_outputs(outputs):
        return LANDMARK, graph
    found = ", ".join(_shape_text(s) for s in outputs)
    raise _Unusable(f"it takes a {_shape_text(shape_in[1:])} image and gives {found} (a detector takes 224×224 "
                    "and gives 2254×12 and 2254×1; a landmark model takes 256×256 and gives 195, 1, a square "
                    "mask, 39×64×64 and 117)")


def _variant_by_size(graph: Graph) -> str:
    weights = sum(int(value.size) for value in graph.constants.values())
    return "lite" if weights < _LITE_MAX_WEIGHTS else "full" if weights < _FULL_MAX_WEIGHTS else "heavy"


@dataclass(frozen=True)
class RegisteredModel:
    """A model file: where it is, what it is, and which release of MediaPipe's it is."""

    path: Path
    kind: str  # DETECTOR or LANDMARK ("unusable" in a listing of a file that is neither)
    variant: str | None  # lite, full or heavy for a landmark model
    release: str  # MediaPipe's file and generation, or UNKNOWN_RELEASE
    sha256: str
    size: int

    @property
    def what(self) -> str:
        return f"{self.variant} {self.kind}" if self.variant else self.kind

    @property
    def use(self) -> str:
        """How posepipe uses the file where it is."""
        if self.kind not in (DETECTOR, LANDMARK):
            return ""
        name = self.path.name
        if name == DEFAULT_DETECTOR.filename and self.sha256 == DEFAULT_DETECTOR.sha256:
            return "the detector"
        if name == DEFAULT_LANDMARK.filename and self.sha256 == DEFAULT_LANDMARK.sha256:
            return "model_complexity=1, the default"
        for variant, file in LANDMARK_FILES.items():
            if name == file and self.kind == LANDMARK and variant != "full":
                return f"model_complexity={COMPLEXITY[variant]}"
        return "--detector-model" if self.kind == DETECTOR else "--landmark-model"


def _identify(path: Path, label: str) -> RegisteredModel:
    try:
        kind, graph = _examine(path)
    except _Unusable as why:
        raise ModelError(f"{label} is not a BlazePose detector or landmark model: {why}") from None
    sha = sha256_of(path)
    known = KNOWN_MODELS.get(sha)
    if known is not None and known.kind == kind:
        variant, release = known.variant, known.release
    else:
        variant, release = (_variant_by_size(graph) if kind == LANDMARK else None), UNKNOWN_RELEASE
    return RegisteredModel(path, kind, variant, release, sha, path.stat().st_size)


def identify(path: str | Path) -> RegisteredModel:
    """What a ``.tflite`` file is: a BlazePose detector or landmark model (with its variant),
    and its release when MediaPipe published its checksum. Anything else is a ModelError."""
    return _identify(Path(path), str(path))


def _destination(model: RegisteredModel, models_dir: Path) -> Path:
    if model.kind == DETECTOR:
        if model.sha256 == DEFAULT_DETECTOR.sha256:
            return models_dir / DEFAULT_DETECTOR.filename
        return models_dir / f"pose_detection-{model.sha256[:12]}.tflite"
    if model.variant == "full" and model.sha256 != DEFAULT_LANDMARK.sha256:
        return models_dir / f"pose_landmark_full-{model.sha256[:12]}.tflite"
    return models_dir / LANDMARK_FILES[model.variant]


def _place(model: RegisteredModel, models_dir: Path) -> RegisteredModel:
    """Copy the model to its one place in the cache, atomically; the same file twice is one copy."""
    target = _destination(model, models_dir)
    if target.is_file() and sha256_of(target) == model.sha256:
        return replace(model, path=target)
    fd, tmp_name = tempfile.mkstemp(dir=models_dir, prefix=".adding-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, open(model.path, "rb") as src:
            shutil.copyfileobj(src, out)
        os.replace(tmp_name, target)
    except OSError as exc:
        raise ModelError(f"cannot write the model cache in {models_dir}: {exc.strerror or exc}") from None
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    return replace(model, path=target)


def _add_bundle(path: Path, models_dir: Path) -> RegisteredModel:
    """A bundle's landmark model, placed as its variant. The variant comes from the bundle's
    published checksum, else from the landmark model itself (its checksum, else its size): the
    file name is not needed. The detector must be one, but is not kept: every published
    bundle's detector is the default network (with TFLite metadata added)."""
    bundle_known = KNOWN_MODELS.get(sha256_of(path))
    detector_file, landmark_file = unpack_task_bundle(path)
    detector = _identify(detector_file, f"{path}'s {DETECTOR_MEMBER}")
    landmark = _identify(landmark_file, f"{path}'s {LANDMARK_MEMBER}")
    for model, member, wanted in ((detector, DETECTOR_MEMBER, DETECTOR), (landmark, LANDMARK_MEMBER, LANDMARK)):
        if model.kind != wanted:
            raise ModelError(f"{path} is not a usable pose landmarker bundle: its {member} is a {model.kind}, "
                             f"not a {wanted}")
    if bundle_known is not None and bundle_known.kind == BUNDLE and landmark.release == UNKNOWN_RELEASE:
        landmark = replace(landmark, variant=bundle_known.variant,
                           release=f"the landmark model of {bundle_known.release}")
    return _place(landmark, models_dir)


def add(paths: list[str | Path]) -> list[RegisteredModel]:
    """Verify model files and copy them into the cache, each to its one place (see the module's
    docstring). A ``.task`` bundle gives its landmark model. Raises ModelError
    at the first file that is not a BlazePose model; the files before it stay added."""
    models_dir = cache_dir() / "models"
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"cannot write the model cache in {models_dir}: {exc.strerror or exc}") from None
    added = []
    for given in paths:
        path = Path(given)
        if not path.is_file():
            raise ModelError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
        try:
            with open(path, "rb") as f:
                is_tflite = f.read(8)[4:8] == b"TFL3"
        except OSError as exc:
            raise ModelError(f"cannot read {path}: {exc.strerror or exc}") from None
        # A .tflite whose metadata carries files is a zip as well: the TFLite header decides first.
        if not is_tflite and zipfile.is_zipfile(path):
            added.append(_add_bundle(path, models_dir))
        else:
            added.append(_place(identify(path), models_dir))
    return added


def listing() -> list[RegisteredModel]:
    """The model files in the cache, added and default. A file that is no model is listed with
    kind "unusable" and the reason as its release."""
    models_dir = cache_dir() / "models"
    found = []
    for path in sorted(models_dir.glob("*.tflite")):
        try:
            found.append(identify(path))
        except ModelError as exc:
            why = str(exc).removeprefix(f"{path} is not a BlazePose detector or landmark model: ")
            found.append(RegisteredModel(path, "unusable", None, why, "", path.stat().st_size))
    return found


def landmark_model_path(variant: str) -> Path:
    """The landmark model file of ``variant`` (lite, full or heavy). Lite and heavy are added by
    the user (``posepipe models add``); when one is missing, or is not a landmark model, the
    ModelError names the file and the command."""
    if variant == "full":
        return ensure_default_models() / DEFAULT_LANDMARK.filename
    name = LANDMARK_FILES[variant]
    path = cache_dir() / "models" / name
    add_it = f"add the file you have with `posepipe models add {name}` (or a pose_landmarker_{variant}.task)"
    if not path.is_file():
        raise ModelError(f"model_complexity={COMPLEXITY[variant]} needs MediaPipe's {name}, which posepipe does "
                         f"not download: {add_it}, or point POSEPIPE_LANDMARK_MODEL at it")
    try:
        kind, _ = _examine(path)
        why = f"it is a BlazePose {kind}"
    except _Unusable as unusable:
        kind, why = None, str(unusable)
    if kind != LANDMARK:
        raise ModelError(f"{path} is not a landmark model ({why}); model_complexity={COMPLEXITY[variant]} needs "
                         f"MediaPipe's {name}: {add_it}")
    return path
