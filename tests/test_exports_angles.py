"""Tables and angles without models: CSV/Parquet/JSONL round trips, joint-angle geometry and
its invariances, and the ``angles`` command, including its one-sentence errors."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from posepipe.analysis.angles import ANGLE_NAMES, TRUNK, angle_table, joint_angles
from posepipe.cli import main
from posepipe.video.exports import CSV_COLUMNS, PARQUET_COLUMNS, CsvWriter, ParquetWriter, PoseSeries, load_pose_table
from posepipe.io import JsonLinesWriter, image_record
from posepipe.results import Poses
from posepipe.topology import LANDMARK_INDEX as I

WIDTH, HEIGHT = 640, 480


def make_poses(rng: np.random.Generator, track_ids: list[int] | None) -> Poses:
    n = 2 if track_ids is None else len(track_ids)

    def u(*shape: int) -> np.ndarray:
        return rng.uniform(size=shape).astype(np.float32)

    landmarks = u(n, 33, 3) * np.float32([WIDTH, HEIGHT, 100]) - np.float32([0, 0, 50])
    return Poses(landmarks, u(n, 33), u(n, 33), u(n, 33, 3) - 0.5, u(n), u(n, 4), u(n, 2, 3), (WIDTH, HEIGHT),
                 track_ids=None if track_ids is None else np.array(track_ids))


def standing() -> np.ndarray:
    """(33, 2) image points of an upright person: left elbow bent 90°, legs straight, the rest parked
    at the mid-hip (angles are only checked where set)."""
    p = np.tile([300.0, 300.0], (33, 1))
    p[I["left_shoulder"]], p[I["right_shoulder"]] = [280, 100], [320, 100]
    p[I["left_hip"]], p[I["right_hip"]] = [285, 300], [315, 300]
    p[I["left_elbow"]], p[I["left_wrist"]] = [280, 200], [380, 200]  # upper arm down, forearm forward
    p[I["right_elbow"]], p[I["right_wrist"]] = [320, 200], [320, 300]  # arm hanging straight
    for side, x in (("left", 285), ("right", 315)):
        p[I[f"{side}_knee"]], p[I[f"{side}_ankle"]] = [x, 400], [x, 500]
        p[I[f"{side}_foot_index"]] = [x + 30, 500]  # foot flat, forward
    return p


def test_known_angles():
    a = joint_angles(standing())
    assert set(a) == set(ANGLE_NAMES)
    assert a["left_elbow"] == pytest.approx(90)
    assert a["right_elbow"] == pytest.approx(180)
    assert a["left_knee"] == pytest.approx(180) and a["right_knee"] == pytest.approx(180)
    assert a["left_hip"] == pytest.approx(180, abs=2)  # shoulder, hip, knee nearly aligned
    assert a["left_ankle"] == pytest.approx(90)
    assert a["left_shoulder"] == pytest.approx(0, abs=3)  # arm along the trunk
    assert a[TRUNK] == pytest.approx(0)


def test_trunk_and_degenerate():
    p = standing()
    p[I["left_shoulder"]] += [200, 0]
    p[I["right_shoulder"]] += [200, 0]  # shoulders 200 px up and 200 px aside of the hips: 45°
    assert joint_angles(p)[TRUNK] == pytest.approx(45)
    p[I["left_wrist"]] = p[I["left_elbow"]]
    assert np.isnan(joint_angles(p)["left_elbow"])
    # World y points down too: shoulders above the hips at z = 0.3 m forward → 45° lean in 3-D.
    world = np.zeros((33, 3))
    world[[I["left_shoulder"], I["right_shoulder"]]] = [[-0.2, -0.3, 0.3], [0.2, -0.3, 0.3]]
    world[[I["left_hip"], I["right_hip"]]] = [[-0.1, 0, 0], [0.1, 0, 0]]
    assert joint_angles(world)[TRUNK] == pytest.approx(45)


def test_vectorised_and_rotated_3d():
    flat = np.column_stack([standing(), np.zeros(33)]) / 100
    rotated = Rotation.from_euler("xyz", [30, -50, 70], degrees=True).apply(flat)
    batch = np.stack([flat, rotated])[None]  # (1, 2, 33, 3)
    a = joint_angles(batch)
    assert a["left_elbow"].shape == (1, 2)
    assert a["left_elbow"][0] == pytest.approx([90, 90])
    for name, values in a.items():
        if name != TRUNK:
            np.testing.assert_allclose(values[0, 0], values[0, 1], atol=1e-9, err_msg=name)


coords = st.floats(-500, 500, allow_nan=False, width=32)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), turn=st.floats(-np.pi, np.pi), shift=st.tuples(coords, coords, coords),
       scale=st.floats(0.1, 10))
def test_angles_invariant(seed, turn, shift, scale):
    rng = np.random.default_rng(seed)
    for dims in (2, 3):
        points = rng.uniform(-100, 100, (33, dims))
        rotation = Rotation.from_rotvec(rng.normal(size=3) * turn) if dims == 3 else None
        if dims == 2:
            c, s = np.cos(turn), np.sin(turn)
            moved = points @ np.array([[c, -s], [s, c]]).T
        else:
            moved = rotation.apply(points)
        moved = moved * scale + np.array(shift[:dims])
        before, after = joint_angles(points), joint_angles(moved)
        for name in ANGLE_NAMES:
            if name != TRUNK:  # the trunk is measured against "up", so only scale and shift leave it alone
                np.testing.assert_allclose(after[name], before[name], atol=1e-6, err_msg=name)
        shifted = joint_angles(points * scale + np.array(shift[:dims]))
        np.testing.assert_allclose(shifted[TRUNK], before[TRUNK], atol=1e-6)


def write_three_frames(tmp_path: Path) -> tuple[list[Poses], dict[str, Path]]:
    """Frames 0-2 with tracks 7 and 3; frame 1 also checks untracked positions in JSONL below."""
    rng = np.random.default_rng(0)
    frames = [make_poses(rng, [7, 3]) for _ in range(3)]
    paths = {kind: tmp_path / "sub" / f"poses.{kind}" for kind in ("csv", "parquet", "jsonl")}
    with CsvWriter(paths["csv"]) as c, ParquetWriter(paths["parquet"], source="clip.mp4", width=WIDTH,
                                                     height=HEIGHT) as p, JsonLinesWriter(paths["jsonl"]) as j:
        image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        for frame, poses in enumerate(frames):
            c.write(frame, frame * 33.333, poses)
            p.write(frame, frame * 33.333, poses)
            j.write(image_record("clip.mp4", image, poses, frame, timestamp_ms=frame * 33.333))
        empty = Poses.empty(WIDTH, HEIGHT)
        c.write(3, 100.0, empty)
        p.write(3, 100.0, empty)
    return frames, paths


@pytest.mark.parametrize("kind", ["csv", "parquet", "jsonl"])
def test_round_trip(tmp_path, kind):
    frames, paths = write_three_frames(tmp_path)
    series = load_pose_table(paths[kind])
    assert list(series) == [3, 7]
    pixels, world = (1e-3, 1e-5) if kind == "jsonl" else (0, 0)
    for track_id, person in ((7, 0), (3, 1)):
        s = series[track_id]
        assert isinstance(s, PoseSeries) and s.track_id == track_id and len(s) == 3
        assert s.frame.tolist() == [0, 1, 2]
        np.testing.assert_allclose(s.timestamp_ms, [0, 33.333, 66.666])
        np.testing.assert_allclose(s.landmarks, [f.landmarks[person] for f in frames], atol=pixels, rtol=0)
        np.testing.assert_allclose(s.visibility, [f.visibility[person] for f in frames], atol=world, rtol=0)
        np.testing.assert_allclose(s.world_landmarks, [f.world_landmarks[person] for f in frames], atol=world, rtol=0)
    if kind != "csv":
        assert series[3].source == "clip.mp4"


def test_csv_columns(tmp_path):
    _, paths = write_three_frames(tmp_path)
    with open(paths["csv"], newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == CSV_COLUMNS and len(CSV_COLUMNS) == 4 + 33 * 4 + 33 * 3
    assert rows[0][4:8] == ["nose_x", "nose_y", "nose_z", "nose_visibility"]
    assert rows[0][-1] == "world_right_foot_index_z"
    assert [r[0] for r in rows[1:]] == ["0", "0", "1", "1", "2", "2"]  # the empty frame wrote nothing
    assert [r[2] for r in rows[1:3]] == ["7", "3"]


def test_parquet_schema(tmp_path):
    _, paths = write_three_frames(tmp_path)
    table = pq.read_table(paths["parquet"])
    assert tuple(table.column_names) == PARQUET_COLUMNS
    types = dict(zip(table.column_names, table.schema.types))
    assert types["frame"] == pa.int32() and types["track_id"] == pa.int32()
    assert types["timestamp_ms"] == pa.float64() and types["landmark_index"] == pa.int8()
    assert types["landmark"] == pa.dictionary(pa.int8(), pa.string())
    assert all(types[c] == pa.float32() for c in PARQUET_COLUMNS[5:])
    assert len(table) == 3 * 2 * 33
    assert table.column("landmark")[33 + 11].as_py() == "left_shoulder"
    assert table.schema.metadata == {b"source": b"clip.mp4", b"width": b"640", b"height": b"480"}


def test_empty_parquet_is_readable(tmp_path):
    path = tmp_path / "empty.parquet"
    with ParquetWriter(path) as writer:
        writer.write(0, 0.0, Poses.empty(WIDTH, HEIGHT))
    table = pq.read_table(path)
    assert len(table) == 0 and tuple(table.column_names) == PARQUET_COLUMNS


def test_untracked_stills(tmp_path):
    """Image-command records: no timestamp, no track id → position in the file and in the frame."""
    rng = np.random.default_rng(1)
    path = tmp_path / "images.jsonl"
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    with JsonLinesWriter(path) as j:
        j.write(image_record("a.jpg", image, make_poses(rng, None)))
        j.write({"source": "b.jpg", "error": "not a readable image"})
        j.write(image_record("c.jpg", image, make_poses(rng, None)))
    series = load_pose_table(path)
    assert list(series) == [0, 1]
    assert series[0].frame.tolist() == [0, 2] and series[0].source == str(path)


def test_angle_table_masks_hidden(tmp_path):
    points = np.column_stack([standing(), np.zeros(33)])
    visibility = np.ones((2, 33), np.float32)
    visibility[1, I["left_wrist"]] = 0.2
    series = PoseSeries("x.mp4", 4, np.array([0, 1]), np.array([0.0, 40.0]), np.stack([points] * 2),
                        visibility, np.stack([points / 100] * 2))
    table = angle_table(series)
    assert table["left_elbow_2d"][0] == pytest.approx(90) and table["left_elbow_3d"][0] == pytest.approx(90)
    assert np.isnan(table["left_elbow_2d"][1]) and np.isnan(table["left_elbow_3d"][1])
    assert table["right_knee_2d"][1] == pytest.approx(180)
    assert table["track_id"].tolist() == [4, 4]


def test_angles_command(tmp_path):
    _, paths = write_three_frames(tmp_path)
    out, png = tmp_path / "a" / "angles.csv", tmp_path / "a" / "angles.png"
    result = CliRunner().invoke(main, ["angles", str(paths["parquet"]), "-o", str(out), "--plot", str(png)])
    assert result.exit_code == 0, result.output
    assert "3 frames, 2 track(s)" in result.output
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["frame", "timestamp_ms", "track_id",
                       *(f"{name}_{kind}" for name in ANGLE_NAMES for kind in ("2d", "3d"))]
    assert "left_knee_2d" in rows[0] and "trunk_inclination_3d" in rows[0]
    assert [r[:3] for r in rows[1:3]] == [["0", "0.000", "3"], ["0", "0.000", "7"]]
    assert len(rows) == 1 + 6
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000

    result = CliRunner().invoke(main, ["angles", str(paths["csv"]), "-o", str(out), "--track-id", "7"])
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 1 + 3


def posepipe(*args):
    return subprocess.run([sys.executable, "-m", "posepipe.cli", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}, timeout=120)


def test_angles_bad_input(tmp_path):
    _, paths = write_three_frames(tmp_path)
    (tmp_path / "text.jsonl").write_text("this is not JSON\n")
    (tmp_path / "nopose.jsonl").write_text('{"source": "a.jpg", "frame": 0, "width": 1, "height": 1}\n')
    (tmp_path / "poses.txt").write_text("")
    (tmp_path / "blocker").write_text("a regular file")
    cases = {
        (tmp_path / "missing.jsonl",): "file not found",
        (tmp_path / "text.jsonl",): "line 1 is not JSON",
        (tmp_path / "nopose.jsonl",): "missing field 'poses'",
        (tmp_path / "poses.txt",): "unknown kind of file",
        (paths["jsonl"], "-o", tmp_path / "blocker" / "angles.csv"): "cannot write",
        (paths["jsonl"], "--track-id", "99"): "no track 99",
    }
    for args, message in cases.items():
        proc = posepipe("angles", *args, "-o", tmp_path / "out.csv") if "-o" not in args else posepipe("angles", *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, proc.stderr)
