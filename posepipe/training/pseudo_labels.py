"""Pseudo-labels: the pretrained model labels unlabelled photos and footage (``posepipe label``).

A dataset folder holds

- ``frames/<name>.jpg``: the pictures the labels refer to (images as given, every Nth frame
  of a video as ``<video>_<frame>.jpg``);
- ``crops/<name>_p<k>.jpg``: the 256×256 crop the teacher saw of each person, to look at;
- ``labels.jsonl``: posepipe's JSON-lines contract, ``source`` relative to the folder, plus
  per pose the teacher's crop ``"roi": [x, y, size, rotation]`` and per record ``"origin"``
  (the input it came from); :func:`posepipe.analysis.labels.load_labels` reads it back.

The teacher runs on the stored JPEG's pixels (written, then read back as training reads
them), so a training crop made with the recorded ROI is exactly the crop it labelled.
Videos go through the tracker frame by frame, as in video inference (each crop comes from
the previous frame's landmarks), without smoothing, so that a label is the model's own
output on its recorded crop; every Nth frame is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import PosepipeError
from ..io import JsonLinesWriter, error_record, image_record, read_image, write_image
from ..analysis.labels import LABELS_FILE
from ..landmarks import INPUT_SIZE
from ..results import Poses
from ..roi import RegionOfInterest, warp_crop
from ..video.sources import IMAGE_SUFFIXES, open_source

JPEG_SUFFIX = ".jpg"


@dataclass
class LabelStats:
    images: int = 0  # pictures written to frames/ (images and video frames)
    people: int = 0
    failures: int = 0  # inputs (or the rest of a video) that could not be read


def list_inputs(inputs: list[str]) -> list[tuple[str, bool]]:
    """(input, is_video) in the order given; a folder gives its files by name, hidden ones
    skipped. Anything not named like an image is taken for a video (or a stream URL)."""
    listed = []
    for given in inputs:
        path = Path(given)
        children = sorted(c for c in path.iterdir() if c.is_file() and not c.name.startswith(".")) \
            if "://" not in given and path.is_dir() else [given]
        listed += [(str(c), "://" in str(c) or Path(c).suffix.lower() not in IMAGE_SUFFIXES) for c in children]
    return listed


class DatasetWriter:
    """Frames, crops and label lines of one dataset folder; each record is written after the
    pictures it refers to, so an interrupted run leaves a readable dataset."""

    def __init__(self, out_dir: str | Path):
        self.root = Path(out_dir)
        try:
            for folder in ("frames", "crops"):
                (self.root / folder).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PosepipeError(f"cannot create the dataset folder {self.root}: {exc.strerror or exc}") from None
        self.lines = JsonLinesWriter(self.root / LABELS_FILE)
        self.names: set[str] = set()
        self.stats = LabelStats()

    def unique(self, stem: str) -> str:
        """A frame name not used yet in this run (two inputs may share a file name)."""
        name, n = stem, 1
        while name in self.names:
            n += 1
            name = f"{stem}_{n}"
        self.names.add(name)
        return name

    def store_frame(self, name: str, rgb: np.ndarray) -> np.ndarray:
        """Write frames/<name>.jpg; returns its pixels as read back (what training will see)."""
        path = self.root / "frames" / (name + JPEG_SUFFIX)
        write_image(path, rgb)
        return read_image(path)

    def add(self, name: str, image: np.ndarray, poses: Poses, origin: str, frame: int = 0,
            timestamp_ms: float | None = None) -> None:
        for k, roi in enumerate(poses.rois):
            write_image(self.root / "crops" / f"{name}_p{k}{JPEG_SUFFIX}",
                        warp_crop(image, RegionOfInterest(*map(float, roi)), INPUT_SIZE))
        record = image_record(f"frames/{name}{JPEG_SUFFIX}", image, poses, frame, timestamp_ms)
        for pose, roi in zip(record["poses"], poses.rois):
            pose["roi"] = [float(v) for v in roi]  # float32 in full: the crop is then bit-identical
        self.lines.write(record | {"origin": origin})
        self.stats.images += 1
        self.stats.people += len(poses)

    def fail(self, origin: str, message: str) -> None:
        self.lines.write(error_record(origin, message))
        self.stats.failures += 1

    def close(self) -> None:
        self.lines.close()


def make_dataset(inputs: list[str], out_dir: str | Path, landmarker: Callable, tracker: Callable, every: int = 10,
                 on_error: Callable[[str, str], None] | None = None) -> LabelStats:
    """Label ``inputs`` (images, folders, videos, streams) into ``out_dir``.

    ``landmarker()`` and ``tracker()`` make the still-image and video models (each only if
    needed, once). A bad input gets an error record and ``on_error(input, message)``; the
    others go on.
    """
    if every < 1:
        raise PosepipeError("--every must be at least 1")
    models: dict[str, object] = {}

    def model(kind: str, make: Callable):
        if kind not in models:
            models[kind] = make()
        return models[kind]

    writer = DatasetWriter(out_dir)
    try:
        for given, is_video in list_inputs(inputs):
            try:
                if is_video:
                    _label_video(given, model("video", tracker), writer, every)
                else:
                    name = writer.unique(Path(given).stem)
                    image = writer.store_frame(name, read_image(given))
                    writer.add(name, image, model("image", landmarker).detect(image), given)
            except PosepipeError as exc:
                writer.fail(given, str(exc))
                if on_error:
                    on_error(given, str(exc))
    finally:
        writer.close()
        for m in models.values():
            m.close()
    return writer.stats


def _label_video(target: str, tracker, writer: DatasetWriter, every: int) -> None:
    tracker.reset()  # a new recording: nobody is tracked yet
    stem = writer.unique(Path(target.rstrip("/")).stem or "stream")
    with open_source(target) as frames:
        for frame in frames:
            if frame.index % every:  # tracked all the same: the next crop comes from this frame
                tracker.process(frame.image, frame.timestamp_ms)
                continue
            name = writer.unique(f"{stem}_{frame.index:06d}")
            image = writer.store_frame(name, frame.image)
            poses = tracker.process(image, frame.timestamp_ms)
            writer.add(name, image, poses, target, frame.index, frame.timestamp_ms)
