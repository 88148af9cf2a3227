"""Video input and output: files, network streams, image sequences, cameras; the drawn video.

Files and streams are decoded with PyAV (FFmpeg's libraries): it gives each frame's
presentation time from the container (correct for variable frame rates), the rotation
stored by phones, the audio to copy into the overlay, and an H.264 encoder. On the street
video its frames are identical to OpenCV's, at 3.4 ms against 2.2 ms a 720p frame, a cost
hidden by decoding on its own thread. Cameras go through OpenCV, which knows every
platform's camera API.
"""

from __future__ import annotations

import glob
import os
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import ImageError, PosepipeError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
STREAM_TIMEOUT_S = 10.0


@dataclass
class Frame:
    index: int
    timestamp_ms: float
    image: np.ndarray | None  # RGB uint8; None when this frame could not be read (see ``error``)
    error: str | None = None


class FrameSource:
    """Frames of one input, in order. ``frame_count`` is None where unknown (streams, cameras)."""

    name: str
    fps: float
    frame_count: int | None = None
    audio_path: str | None = None  # a file whose audio the overlay may copy

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _av_error(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(": '")[0].rstrip(".")


class PyAVSource(FrameSource):
    """A video file or a network stream (``rtsp://``, ``http(s)://``, ``udp://`` …)."""

    def __init__(self, target: str):
        import av

        self.name = target
        is_url = "://" in target
        if not is_url:
            path = Path(target)
            if not path.exists():
                raise PosepipeError(f"{target}: file not found")
            if path.is_dir():
                raise PosepipeError(f"{target}: is a folder; give image sequences as a folder of images")
            if path.stat().st_size == 0:
                raise PosepipeError(f"{target}: the file is empty")
        options = {"rtsp_transport": "tcp"} if target.startswith("rtsp") else {}
        try:
            self.container = av.open(target, options=options, timeout=STREAM_TIMEOUT_S if is_url else None)
        except av.FFmpegError as exc:
            what = "cannot open the stream" if is_url else "not a readable video"
            raise PosepipeError(f"{target}: {what} ({_av_error(exc)})") from None
        if not self.container.streams.video:
            self.container.close()
            raise PosepipeError(f"{target}: has no video stream")
        self.stream = self.container.streams.video[0]
        # One decoding thread: it already runs beside the models, and FFmpeg's frame threads
        # cost more CPU than they save on a small machine (bench/video_tracking.py).
        rate = self.stream.average_rate or self.stream.guessed_rate
        self.fps = float(rate) if rate else 30.0
        self.frame_count = self.stream.frames or None
        self.audio_path = None if is_url or not self.container.streams.audio else target
        self.start = self.stream.start_time or 0

    def __iter__(self) -> Iterator[Frame]:
        import av

        tb = self.stream.time_base
        index = 0
        try:
            for frame in self.container.decode(self.stream):
                if frame.pts is not None and tb is not None:
                    t_ms = float((frame.pts - self.start) * tb) * 1000.0
                else:
                    t_ms = index * 1000.0 / self.fps
                image = frame.to_ndarray(format="rgb24")
                if frame.rotation:  # phones store portrait video as landscape plus a rotation
                    image = np.ascontiguousarray(np.rot90(image, round(frame.rotation / 90)))
                yield Frame(index, t_ms, image)
                index += 1
        except av.FFmpegError as exc:
            raise PosepipeError(f"{self.name}: decoding failed after {index} frames ({_av_error(exc)})") from None
        if index == 0:
            raise PosepipeError(f"{self.name}: no frames could be decoded")
        if self.frame_count and index < self.frame_count - 1:  # containers may count one frame loosely
            raise PosepipeError(f"{self.name}: the video ends after {index} of its {self.frame_count} frames "
                                "(truncated or corrupt); the frames before were processed")

    def close(self) -> None:
        self.container.close()


class ImageSequence(FrameSource):
    """A folder of images or a glob pattern, in name order, at a given frame rate."""

    def __init__(self, paths: list[Path], name: str, fps: float):
        if not paths:
            raise PosepipeError(f"{name}: no images found")
        self.paths, self.name, self.fps, self.frame_count = paths, name, fps, len(paths)

    def __iter__(self) -> Iterator[Frame]:
        from .io import read_image

        for index, path in enumerate(self.paths):
            t_ms = index * 1000.0 / self.fps
            try:
                yield Frame(index, t_ms, read_image(path))
            except ImageError as exc:  # one bad picture does not end the sequence
                yield Frame(index, t_ms, None, f"{path.name}: {exc}")


class CameraSource(FrameSource):
    """A local camera through OpenCV; timestamps from the clock, as frames arrive."""

    def __init__(self, device: int):
        import cv2

        self.name, self.fps = f"camera {device}", 30.0
        self.capture = cv2.VideoCapture(device)
        if not self.capture.isOpened():
            self.capture.release()
            raise PosepipeError(f"no camera found at device {device}")
        self.fps = self.capture.get(cv2.CAP_PROP_FPS) or 30.0

    def __iter__(self) -> Iterator[Frame]:
        import cv2

        start = time.monotonic()
        index = 0
        while True:
            ok, bgr = self.capture.read()
            if not ok:
                if index == 0:
                    raise PosepipeError(f"{self.name} gave no picture")
                return
            yield Frame(index, (time.monotonic() - start) * 1000.0, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            index += 1

    def close(self) -> None:
        self.capture.release()


def open_source(target: str, fps: float = 30.0) -> FrameSource:
    """The right source for ``target``: URL, folder or glob of images, or video file.

    ``fps`` dates the frames of image sequences (videos carry their own timestamps).
    """
    if "://" in target:
        return PyAVSource(target)
    path = Path(target)
    if path.is_dir():
        images = [p for p in sorted(path.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
        return ImageSequence(images, target, fps)
    if glob.has_magic(target):
        images = [Path(p) for p in sorted(glob.glob(target)) if Path(p).suffix.lower() in IMAGE_SUFFIXES]
        return ImageSequence(images, target, fps)
    return PyAVSource(target)


class VideoWriter:
    """The drawn video: H.264 in MP4/MOV/MKV, frame times kept (variable frame rates stay
    correct), audio copied from the source at ``close()`` where the container takes it.

    Frames go to a temporary file next to the output, which becomes the output at
    ``close()``; an interrupted run still closes it, so what was written is playable.
    """

    def __init__(self, path: str | Path, fps: float, audio_from: str | None = None):
        import av

        self.path = Path(path)
        if self.path.suffix.lower() not in (".mp4", ".mov", ".mkv", ".m4v"):
            raise PosepipeError(f"{path}: the overlay must be .mp4, .mov, .mkv or .m4v")
        self.partial = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        try:
            if self.path.parent != Path(""):
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self.container = av.open(str(self.partial), "w")
        except (OSError, av.FFmpegError) as exc:
            raise PosepipeError(f"cannot write {path}: {_av_error(exc)}") from None
        self.fps, self.audio_from = fps, audio_from
        self.stream = None
        self.time_base = Fraction(1, 1000)  # pts in milliseconds: any frame timing survives

    def _open_stream(self, width: int, height: int) -> None:
        codec = "libx264" if "libx264" in __import__("av").codecs_available else "mpeg4"
        self.stream = self.container.add_stream(codec, rate=Fraction(self.fps).limit_denominator(1001))
        self.stream.width, self.stream.height = width - width % 2, height - height % 2  # yuv420p: even sides
        self.stream.pix_fmt = "yuv420p"
        self.stream.codec_context.time_base = self.time_base  # the muxer picks the stream's own
        if codec == "libx264":
            self.stream.options = {"crf": "20", "preset": "veryfast"}
        self.last_pts = -1

    def write(self, rgb: np.ndarray, timestamp_ms: float) -> None:
        import av

        if self.stream is None:
            self._open_stream(rgb.shape[1], rgb.shape[0])
        rgb = rgb[: self.stream.height, : self.stream.width]
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = max(int(round(timestamp_ms)), self.last_pts + 1)
        frame.time_base = self.time_base
        self.last_pts = frame.pts
        try:
            for packet in self.stream.encode(frame):
                self.container.mux(packet)
        except (OSError, av.FFmpegError) as exc:
            raise PosepipeError(f"cannot write {self.path}: {_av_error(exc)}") from None

    def close(self) -> None:
        import av

        try:
            if self.stream is not None:
                for packet in self.stream.encode():
                    self.container.mux(packet)
            self.container.close()
        except (OSError, av.FFmpegError) as exc:
            raise PosepipeError(f"cannot write {self.path}: {_av_error(exc)}") from None
        if self.stream is None:  # nothing drawn: no empty video left behind
            self.partial.unlink(missing_ok=True)
            return
        if self.audio_from and _copy_with_audio(self.partial, self.audio_from, self.path):
            self.partial.unlink(missing_ok=True)
        else:
            os.replace(self.partial, self.path)


def _copy_with_audio(video_path: Path, audio_source: str, output: Path) -> bool:
    """Remux our video with the source's first audio stream, unchanged; False if impossible
    (say, PCM audio into MP4), and the video is then kept without sound."""
    import av

    try:
        with av.open(str(video_path)) as vin, av.open(audio_source) as ain, av.open(str(output), "w") as out:
            v_out = out.add_stream_from_template(vin.streams.video[0])
            a_in = ain.streams.audio[0]
            a_out = out.add_stream_from_template(a_in)
            for packet in vin.demux(vin.streams.video[0]):
                if packet.dts is not None:
                    packet.stream = v_out
                    out.mux(packet)
            for packet in ain.demux(a_in):
                if packet.dts is not None:
                    packet.stream = a_out
                    out.mux(packet)
        return True
    except (OSError, av.FFmpegError, ValueError):
        output.unlink(missing_ok=True)
        return False
