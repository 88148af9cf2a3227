"""Memory that does not grow with the video: the zero-lag filter's two passes keep poses, not
frames. Peak resident memory of the real command on N and 4N frames of a synthetic 720p video."""

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.conftest import sample_image

WIDTH, HEIGHT = 1280, 720
FRAME_BYTES = WIDTH * HEIGHT * 3  # one decoded RGB frame
N = 40


def make_720p_video(path: Path, frames: int) -> None:
    """The Grace Hopper photo on a grey 720p canvas, drifting sideways."""
    person = sample_image("grace_hopper.jpg")[:600, :512]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for i in range(frames):
            canvas = np.full((HEIGHT, WIDTH, 3), 110, np.uint8)
            x = 300 + 2 * i % 400
            canvas[60:660, x:x + 512] = person
            frame = av.VideoFrame.from_ndarray(canvas, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())


def peak_rss_bytes(*args: str) -> int:
    """Peak resident memory of one ``posepipe`` process, from the kernel's accounting of it."""
    proc = subprocess.Popen([sys.executable, "-m", "posepipe.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.returncode == 0, stderr
    return usage.ru_maxrss * 1024  # kilobytes on Linux


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in kilobytes on Linux only")
def test_zero_lag_memory_does_not_grow_with_the_video(tmp_path, model_paths):
    peaks = {}
    for frames in (N, 4 * N):
        video = tmp_path / f"v{frames}.mp4"
        make_720p_video(video, frames)
        peaks[frames] = peak_rss_bytes("video", str(video), "--zero-lag", "3", "-o", str(tmp_path / f"{frames}.jsonl"),
                                       "--overlay", str(tmp_path / f"{frames}.mp4"))
        assert len((tmp_path / f"{frames}.jsonl").read_text().splitlines()) == frames
    # Keeping the frames would add 3N decoded frames (~330 MB). The poses of 3N frames are a few
    # hundred kilobytes; allocator and decoder noise is tens of megabytes: allow a tenth.
    growth = peaks[4 * N] - peaks[N]
    assert growth < 0.1 * 3 * N * FRAME_BYTES, (peaks, growth / 1e6)
