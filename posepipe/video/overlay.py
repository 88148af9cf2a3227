"""The drawn video: the overlay written as H.264 with the source's timing and audio."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import PosepipeError
from .sources import av_error_text

OVERLAY_SUFFIXES = (".mp4", ".mov", ".mkv", ".m4v")

class VideoWriter:
    """The drawn video: H.264 in MP4/MOV/MKV, frame times kept (variable frame rates stay
    correct), audio copied from the source at ``close()`` where the container takes it.

    Frames go to a temporary file next to the output, which becomes the output at
    ``close()``; an interrupted run still closes it, so what was written is playable.
    """

    def __init__(self, path: str | Path, fps: float, audio_from: str | None = None):
        import av

        self.path = Path(path)
        if self.path.suffix.lower() not in OVERLAY_SUFFIXES:
            raise PosepipeError(f"{path}: the overlay must be {', '.join(OVERLAY_SUFFIXES)}")
        self.partial = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        try:
            if self.path.parent != Path(""):
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self.container = av.open(str(self.partial), "w")
        except (OSError, av.FFmpegError) as exc:
            raise PosepipeError(f"cannot write {path}: {av_error_text(exc)}") from None
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
            raise PosepipeError(f"cannot write {self.path}: {av_error_text(exc)}") from None

    def close(self) -> None:
        import av

        try:
            if self.stream is not None:
                for packet in self.stream.encode():
                    self.container.mux(packet)
            self.container.close()
        except (OSError, av.FFmpegError) as exc:
            raise PosepipeError(f"cannot write {self.path}: {av_error_text(exc)}") from None
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
