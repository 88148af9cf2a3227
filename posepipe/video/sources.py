"""Video input: files, network streams, image sequences, cameras.

Files and streams are decoded with PyAV (FFmpeg's libraries): it gives each frame's
presentation time from the container (correct for variable frame rates), the rotation
stored by phones, and the audio to copy into the overlay. Its frames are identical to
OpenCV's (tests/test_video_io.py); on the street video it takes 2.3–2.7 ms of CPU a 720p
frame, decoding and conversion, against OpenCV's 2.5–2.6 ms on one thread (AMD EPYC Zen 4),
on a thread of its own. Cameras go through OpenCV, which knows every platform's camera API.
"""

from __future__ import annotations

import glob
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import ImageError, PosepipeError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
STREAM_TIMEOUT_S = 10.0


@dataclass
class Frame:
    index: int
    timestamp_ms: float
    image: np.ndarray | None  # RGB uint8; None when this frame could not be read (see ``error``)
    error: str | None = None

    def without_pixels(self) -> "Frame":
        """The frame's place in the video, its image dropped (what a second pass keeps)."""
        return Frame(self.index, self.timestamp_ms, None, self.error)


class FrameSource:
    """Frames of one input, in order. ``frame_count`` is None where unknown (streams, cameras)."""

    name: str
    fps: float
    frame_count: int | None = None
    audio_path: str | None = None  # a file whose audio the overlay may copy
    live: bool = False  # frames come as they are captured (a camera, a stream): reading one may wait for it

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def av_error_text(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(": '")[0].rstrip(".")


class PyAVSource(FrameSource):
    """A video file or a network stream (``rtsp://``, ``http(s)://``, ``udp://`` …)."""

    def __init__(self, target: str):
        import av

        self.name = target
        is_url = "://" in target
        self.live = is_url
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
            raise PosepipeError(f"{target}: {what} ({av_error_text(exc)})") from None
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
        from av.video.reformatter import VideoReformatter

        tb = self.stream.time_base
        index = 0
        # One converter for every frame: a frame's own to_ndarray(format=...) builds a new
        # swscale context each time, which took about as long as the conversion itself
        # (0.6 against 0.35 ms a 720p frame); the pixels are the same.
        to_rgb = VideoReformatter()
        try:
            for frame in self.container.decode(self.stream):
                if frame.pts is not None and tb is not None:
                    t_ms = float((frame.pts - self.start) * tb) * 1000.0
                else:
                    t_ms = index * 1000.0 / self.fps
                image = to_rgb.reformat(frame, format="rgb24").to_ndarray()
                if frame.rotation:  # phones store portrait video as landscape plus a rotation
                    image = np.ascontiguousarray(np.rot90(image, round(frame.rotation / 90)))
                yield Frame(index, t_ms, image)
                index += 1
        except av.FFmpegError as exc:
            raise PosepipeError(f"{self.name}: decoding failed after {index} frames ({av_error_text(exc)})") from None
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
        from ..io import read_image

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

        self.name, self.fps, self.live = f"camera {device}", 30.0, True
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
