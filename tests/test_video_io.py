"""Video workflows through the real command, on videos made here from a dependency-shipped photo:
outputs and their formats, timestamps, image sequences, audio, and bad input."""

import json
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.conftest import sample_image


def posepipe(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "posepipe.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def one_sentence(stderr: str) -> str:
    """posepipe's own lines (LiteRT prints an INFO line of its own)."""
    lines = [line for line in stderr.splitlines() if line.startswith("posepipe")]
    assert "Traceback" not in stderr
    assert len(lines) == 1, stderr
    return lines[0]


def make_video(path: Path, times_ms: list[float], audio: bool = False) -> None:
    """The Grace Hopper photo panning sideways, with frames at the given times (ms)."""
    image = sample_image("grace_hopper.jpg")[:592, :512]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 512, 592, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        if audio:
            sound = out.add_stream("aac", rate=44100)
        for i, t in enumerate(times_ms):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.roll(image, 3 * i, axis=1)), format="rgb24")
            frame.pts, frame.time_base = int(t), Fraction(1, 1000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
        if audio:
            samples = int(44100 * (times_ms[-1] + 40) / 1000)
            tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / 44100)).astype(np.float32)[None]
            for start in range(0, samples, 1024):
                chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, start:start + 1024]), format="fltp",
                                                   layout="mono")
                chunk.sample_rate, chunk.pts = 44100, start
                out.mux(sound.encode(chunk))
            out.mux(sound.encode())


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    make_video(path, [40.0 * i for i in range(12)], audio=True)
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_video_command_writes_every_output(tmp_path, clip, model_paths):
    out = tmp_path / "out"
    proc = posepipe("video", clip, "-o", out / "poses.jsonl", "--overlay", out / "drawn.mp4",
                    "--csv", out / "poses.csv", "--parquet", out / "poses.parquet")
    assert proc.returncode == 0, proc.stderr
    records = read_jsonl(out / "poses.jsonl")
    assert [r["frame"] for r in records] == list(range(12))
    assert [r["timestamp_ms"] for r in records] == [40.0 * i for i in range(12)]
    assert all(len(r["poses"]) == 1 and r["poses"][0]["track_id"] == 0 for r in records)
    nose_x = [r["poses"][0]["landmarks"][0]["x"] for r in records]
    assert 2.0 < np.polyfit(np.arange(12), nose_x, 1)[0] < 4.0  # the picture pans 3 px a frame, so does the nose
    with av.open(str(out / "drawn.mp4")) as drawn:
        assert drawn.streams.video[0].codec_context.name == "h264"
        assert len(drawn.streams.audio) == 1  # the source's sound is kept
        frames = list(drawn.decode(video=0))
    assert len(frames) == 12 and [round(float(f.time) * 1000) for f in frames] == [40 * i for i in range(12)]
    rows = (out / "poses.csv").read_text().splitlines()
    assert len(rows) == 13 and rows[0].startswith("frame,timestamp_ms,track_id,score,nose_x,nose_y")
    table = pq.read_table(out / "poses.parquet")
    assert table.num_rows == 12 * 33
    assert str(table.schema.field("x").type) == "float"
    assert not list(out.glob(".*partial*"))  # the temporary overlay became the output


def test_variable_frame_rate_keeps_container_times(tmp_path, model_paths):
    times = [0.0, 33.0, 50.0, 120.0, 130.0, 300.0]
    make_video(tmp_path / "vfr.mp4", times)
    proc = posepipe("video", tmp_path / "vfr.mp4", "-o", tmp_path / "vfr.jsonl")
    assert proc.returncode == 0, proc.stderr
    assert [r["timestamp_ms"] for r in read_jsonl(tmp_path / "vfr.jsonl")] == times


def test_image_sequence_folder_and_glob(tmp_path, model_paths):
    folder = tmp_path / "frames"
    folder.mkdir()
    image = cv2.cvtColor(sample_image("grace_hopper.jpg"), cv2.COLOR_RGB2BGR)
    for i in range(4):
        cv2.imwrite(str(folder / f"{i:04d}.png"), np.roll(image, 2 * i, axis=1))
    (folder / "0002.png").write_bytes(b"broken")  # one bad frame does not end the sequence
    proc = posepipe("video", folder, "--fps", 10, "-o", tmp_path / "seq.jsonl")
    assert proc.returncode == 1 and "1 frame(s) could not be read" in proc.stderr
    records = read_jsonl(tmp_path / "seq.jsonl")
    assert [r.get("timestamp_ms") for r in records] == [0.0, 100.0, None, 300.0]
    assert "error" in records[2] and len(records[3]["poses"]) == 1
    proc = posepipe("video", str(folder / "000[01].png"), "-o", tmp_path / "glob.jsonl")
    assert proc.returncode == 0, proc.stderr
    assert len(read_jsonl(tmp_path / "glob.jsonl")) == 2


def test_zero_lag_smoothing_smooths_without_delay(tmp_path, clip, model_paths):
    proc = posepipe("video", clip, "--zero-lag", 3, "-o", tmp_path / "zl.jsonl", "--csv", tmp_path / "zl.csv",
                    "--overlay", tmp_path / "zl.mp4")
    assert proc.returncode == 0, proc.stderr
    raw = posepipe("video", clip, "--no-smooth", "-o", tmp_path / "raw.jsonl")
    assert raw.returncode == 0, raw.stderr
    nose = lambda path: np.array([r["poses"][0]["landmarks"][0]["x"] for r in read_jsonl(path)])  # noqa: E731
    smooth, rough = nose(tmp_path / "zl.jsonl"), nose(tmp_path / "raw.jsonl")
    assert np.abs(np.diff(smooth, 2)).sum() < np.abs(np.diff(rough, 2)).sum()  # less jitter
    assert abs(np.mean(smooth - rough)) < 1.0  # and no lag behind the steady pan
    with av.open(str(tmp_path / "zl.mp4")) as drawn:
        assert drawn.streams.video[0].frames == 12


def test_interrupted_run_leaves_valid_outputs(tmp_path, model_paths):
    long_clip = tmp_path / "long.mp4"
    make_video(long_clip, [40.0 * i for i in range(400)])
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "posepipe.cli", "video", str(long_clip), "-o", str(out / "p.jsonl"),
                             "--overlay", str(out / "p.mp4"), "--parquet", str(out / "p.parquet"),
                             "--csv", str(out / "p.csv")], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and (not (out / "p.jsonl").exists() or len(read_jsonl(out / "p.jsonl")) < 5):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted" in one_sentence(stderr)
    records = read_jsonl(out / "p.jsonl")  # every line whole
    assert 5 <= len(records) < 400
    with av.open(str(out / "p.mp4")) as drawn:
        assert len(list(drawn.decode(video=0))) == len(records)
    assert pq.read_table(out / "p.parquet").num_rows == 33 * len(records)
    assert len((out / "p.csv").read_text().splitlines()) == len(records) + 1


@pytest.fixture(scope="module")
def broken_videos(tmp_path_factory, clip) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("broken")
    data = clip.read_bytes()
    avi = folder / "whole.avi"  # AVI states its frame count up front, as the street video does
    make_video(avi, [40.0 * i for i in range(30)])
    whole = avi.read_bytes()
    (folder / "truncated.avi").write_bytes(whole[: len(whole) // 2])
    corrupt = bytearray(data)
    # Fixed noise: random bytes now and then spell a container header of some other format,
    # which opens and then has no video stream (a different sentence, as true).
    corrupt[: len(corrupt) // 2] = np.random.default_rng(0).integers(0, 256, len(corrupt) // 2, np.uint8).tobytes()
    (folder / "corrupt.mp4").write_bytes(bytes(corrupt))
    (folder / "notes.mp4").write_text("this is not a video\n")
    (folder / "empty.avi").write_bytes(whole[: whole.index(b"movi") + 4])  # the header, then no frame at all
    return {p.stem: p for p in folder.iterdir()}


@pytest.mark.parametrize("name, expected", [
    ("truncated", "ends after"),
    ("corrupt", "not a readable video"),
    ("notes", "not a readable video"),
    ("empty", "no frames"),
])
def test_broken_videos(tmp_path, broken_videos, name, expected, model_paths):
    out = tmp_path / "out.jsonl"
    proc = posepipe("video", broken_videos[name], "-o", out, "--overlay", tmp_path / "o.mp4")
    assert proc.returncode != 0
    assert expected in one_sentence(proc.stderr)
    if out.exists():
        records = read_jsonl(out)  # what was done stays valid
        if name == "truncated":
            assert 0 < len(records) < 30
            with av.open(str(tmp_path / "o.mp4")) as drawn:
                assert len(list(drawn.decode(video=0))) == len(records)


def test_unreachable_stream_missing_camera_and_unwritable_output(tmp_path, clip, model_paths):
    proc = posepipe("video", "rtsp://127.0.0.1:9/live", "-o", tmp_path / "s.jsonl", timeout=60)
    assert proc.returncode == 2 and "cannot open the stream" in one_sentence(proc.stderr)
    proc = posepipe("webcam", "--device", 97, "--no-window", "-o", tmp_path / "w.jsonl", timeout=60)
    assert proc.returncode == 2 and "no camera found at device 97" in one_sentence(proc.stderr)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    for option in ("-o", "--csv", "--parquet", "--overlay"):
        target = blocker / ("x.mp4" if option == "--overlay" else "x.out")
        proc = posepipe("video", clip, option, target)
        assert proc.returncode == 2, (option, proc.stderr)
        assert "cannot write" in one_sentence(proc.stderr), option
    proc = posepipe("video", tmp_path / "missing.mp4")
    assert proc.returncode == 2 and "file not found" in one_sentence(proc.stderr)


def test_refused_runs_leave_no_files(tmp_path, clip, model_paths):
    """Options, extras and paths are checked before any output is opened."""
    out = tmp_path / "out"
    every_output = ["-o", out / "a.jsonl", "--csv", out / "a.csv", "--overlay", out / "a.mp4"]
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    refusals = [
        (["--parquet", out / "a.parquet"], "Parquet needs pyarrow", "import sys; sys.modules['pyarrow'] = None"),
        (["--zero-lag", 3], "needs SciPy", "import sys; sys.modules['scipy'] = None"),
        (["--zero-lag", 13], "half the frame rate (12.5 Hz)", ""),  # the clip runs at 25 frames/s
        (["--zero-lag", -1], "cutoff must be between 0", ""),
        (["--parquet", blocker / "x.parquet"], "is a file, not a folder", ""),
        (["--parquet", out / "a.csv"], "two outputs write to", ""),
        (["--parquet", clip], "is the input video", ""),
        (["-o", tmp_path], "is a folder", ""),  # the last -o counts
    ]
    for extra, sentence, prelude in refusals:
        code = f"{prelude}\nimport sys\nfrom posepipe.cli import run\nsys.argv = ['posepipe'] + sys.argv[1:]\nrun()"
        proc = subprocess.run([sys.executable, "-c", code, "video", str(clip), *map(str, every_output + extra)],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2, (extra, proc.stderr)
        assert sentence in one_sentence(proc.stderr), extra
        assert not out.exists() or not any(out.iterdir()), (extra, list(out.iterdir()))
    overlay = posepipe("video", clip, "-o", out / "a.jsonl", "--overlay", out / "a.avi")
    assert overlay.returncode == 2 and "the overlay must be" in one_sentence(overlay.stderr)
    stream = posepipe("video", "rtsp://127.0.0.1:9/live", "--zero-lag", 3, "-o", out / "s.jsonl", timeout=60)
    assert stream.returncode == 2 and "files, not streams" in one_sentence(stream.stderr)
    assert not out.exists() or not any(out.iterdir())


def _opencv_frames(path: Path, count: int) -> list[np.ndarray]:
    """RGB frames as MediaPipe's Python examples read them: cv2.VideoCapture, then BGR to RGB."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < count:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


@pytest.mark.parametrize("which", ["clip", "street"])
def test_decoded_frames_are_opencvs(which, clip):
    """The pixels the pipeline sees are those of MediaPipe-style code (one swscale converter kept
    for the whole video gives what a frame's own conversion gives)."""
    from posepipe.video.sources import open_source
    from tests.conftest import SHARED

    path = clip if which == "clip" else SHARED / "data" / "video" / "street_720p_205f.avi"
    if not path.is_file():
        pytest.skip("../shared (the street video) is absent")
    with open_source(str(path)) as source:
        ours = [frame.image for _, frame in zip(range(40), source)]
    theirs = _opencv_frames(path, 40)
    assert len(ours) == len(theirs) > 0
    for index, (a, b) in enumerate(zip(ours, theirs)):
        assert a.shape == b.shape and a.dtype == b.dtype == np.uint8
        assert np.array_equal(a, b), f"frame {index}: {np.count_nonzero(a != b)} values differ"
