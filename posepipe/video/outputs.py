"""Where one video's results go: JSON lines, CSV, Parquet, the drawn video.

Everything that can refuse a run is checked by :meth:`VideoOutputs.check` before any file
is opened (the extras each output needs, the overlay's container, writable folders, two
outputs on one path), so a refused run leaves nothing behind.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..drawing import PoseAnnotator
from ..errors import PosepipeError
from ..io import JsonLinesWriter, image_record, why_not_writable
from ..results import Poses
from .exports import CsvWriter, ParquetWriter
from .overlay import OVERLAY_SUFFIXES, VideoWriter
from .sources import Frame, FrameSource

STDOUT = "-"


class Sink(Protocol):
    needs_pixels: bool  # whether write() reads frame.image (the zero-lag pass decodes again for these)

    def write(self, frame: Frame, poses: Poses) -> None: ...
    def close(self) -> None: ...


class JsonLinesSink:
    """The contract's records, one per frame; a frame that could not be read gets an error record."""

    needs_pixels = True  # a record holds the frame's size

    def __init__(self, writer, source: str):
        self.writer, self.source = writer, source

    def write(self, frame: Frame, poses: Poses) -> None:
        if frame.error is not None:
            self.writer.write({"source": self.source, "frame": frame.index, "error": frame.error})
        else:
            self.writer.write(image_record(self.source, frame.image, poses, frame.index, frame.timestamp_ms))

    def close(self) -> None:
        self.writer.close()


class TableSink:
    """A CSV or Parquet writer from :mod:`posepipe.video.exports`."""

    needs_pixels = False

    def __init__(self, table):
        self.table = table

    def write(self, frame: Frame, poses: Poses) -> None:
        if frame.error is None:
            self.table.write(frame.index, frame.timestamp_ms, poses)

    def close(self) -> None:
        self.table.close()


class OverlaySink:
    """The drawn video (see :class:`posepipe.video.overlay.VideoWriter`)."""

    needs_pixels = True

    def __init__(self, video_writer, annotator=None):
        self.video, self.annotator = video_writer, annotator or PoseAnnotator()

    def write(self, frame: Frame, poses: Poses) -> None:
        if frame.image is not None:
            self.video.write(self.annotator.annotate(frame.image, poses), frame.timestamp_ms)

    def close(self) -> None:
        self.video.close()


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class VideoOutputs:
    """The files one video's results go to; ``jsonl`` may be ``"-"`` for standard output."""

    jsonl: str | None = None
    csv: str | None = None
    parquet: str | None = None
    overlay: str | None = None

    def files(self) -> list[Path]:
        return [Path(p) for p in (self.jsonl, self.csv, self.parquet, self.overlay) if p and p != STDOUT]

    def check(self, source: str | None = None, fps: float | None = None, zero_lag_hz: float | None = None) -> None:
        """Refuse, in one sentence, a run from ``source`` (a path or URL, at ``fps`` where
        known) that could not finish writing these outputs."""
        if self.parquet and not _importable("pyarrow.parquet"):
            raise PosepipeError("Parquet needs pyarrow: pip install 'posepipe[analysis]'")
        if self.overlay and Path(self.overlay).suffix.lower() not in OVERLAY_SUFFIXES:
            raise PosepipeError(f"{self.overlay}: the overlay must be {', '.join(OVERLAY_SUFFIXES)}")
        is_stream = source is not None and "://" in source
        if zero_lag_hz is not None:
            if not _importable("scipy.signal"):
                raise PosepipeError("the zero-lag filter needs SciPy: pip install 'posepipe[analysis]'")
            if is_stream:
                raise PosepipeError("the zero-lag filter needs the whole recording: use it on files, not streams")
            nyquist = fps / 2 if fps else None
            if not zero_lag_hz > 0 or (nyquist and zero_lag_hz >= nyquist):
                bound = f" and half the frame rate ({nyquist:.3g} Hz)" if nyquist else ""
                raise PosepipeError(f"the zero-lag cutoff must be between 0{bound}")
        files = self.files()
        resolved = [p.resolve() for p in files]
        for path, again in zip(files, resolved):
            if resolved.count(again) > 1:
                raise PosepipeError(f"two outputs write to {path}")
            if source is not None and not is_stream and Path(source).resolve() == again:
                raise PosepipeError(f"{path} is the input video; write the outputs elsewhere")
            reason = why_not_writable(path)
            if reason:
                raise PosepipeError(f"cannot write {path}: {reason}")

    def open(self, source: FrameSource) -> list[Sink]:
        """Every output opened before the first frame; if one fails, those opened are closed
        and the files they created removed."""
        sinks: list[Sink] = []
        created = [p for p in self.files() if not p.exists()]
        try:
            if self.jsonl:
                sinks.append(JsonLinesSink(JsonLinesWriter(self.jsonl), source.name))
            if self.csv:
                sinks.append(TableSink(CsvWriter(self.csv)))
            if self.parquet:
                sinks.append(TableSink(ParquetWriter(self.parquet, source=source.name)))
            if self.overlay:
                sinks.append(OverlaySink(VideoWriter(self.overlay, source.fps, source.audio_path)))
        except BaseException:
            for sink in sinks:
                try:
                    sink.close()
                except PosepipeError:
                    pass
            for path in created:
                path.unlink(missing_ok=True)
            raise
        return sinks


def close_all(sinks: list[Sink]) -> None:
    """Close every sink, even after one fails; the first failure is raised."""
    errors = []
    for sink in sinks:
        try:
            sink.close()
        except PosepipeError as exc:
            errors.append(exc)
    if errors:
        raise errors[0]
