"""`posepipe batch` through the real command: a mixed folder against `posepipe image` and
`posepipe video`, interrupted runs resumed, options checked, manifests; the plan on its own."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from posepipe.batch.plan import Source, make_plan, unit_key
from posepipe.video.exports import parquet_schema
from tests.conftest import SHARED, needs_shared

IMAGES = SHARED / "data" / "images"
CLIP = SHARED / "data" / "video" / "demo_540p_5f.mp4"
STREET = SHARED / "data" / "video" / "street_720p_205f.avi"
PHOTOS = ["COCO_val2014_000000000241.jpg", "COCO_val2014_000000000192.jpg", "mpii_004645041.jpg"]
# `auto` measures which runtime is faster per thread count, so a batch worker (one thread of two
# cores) and a command using all cores may rightly run different runtimes, whose values differ
# by rounding. With the runtime named, the same code runs, and the values must match exactly.
RUNTIME = ("--backend", "onnxruntime")
KEY = ["source", "frame", "track_id", "landmark_index"]


def posepipe_command(*args) -> list[str]:
    return [sys.executable, "-m", "posepipe.cli", *map(str, args)]


def posepipe(*args, timeout=240) -> subprocess.CompletedProcess:
    return subprocess.run(posepipe_command(*args), capture_output=True, text=True, timeout=timeout)


def posepipe_lines(stderr: str) -> list[str]:
    """posepipe's own lines (LiteRT prints INFO lines of its own); never a traceback."""
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("posepipe")]


def poses_table(out: Path) -> pa.Table:
    return ds.dataset(out / "poses").to_table().sort_by([(k, "ascending") for k in KEY])


def sources_table(out: Path) -> dict[str, dict]:
    return {row["source"]: row for row in pq.read_table(out / "sources.parquet").to_pylist()}


def assert_no_duplicates(table: pa.Table) -> None:
    keys = table.select(KEY).group_by(KEY).aggregate([([], "count_all")])
    assert keys.num_rows == table.num_rows


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    """Photos at two depths, the 5-frame clip, an empty .jpg, a text file named .mp4, a note."""
    root = tmp_path_factory.mktemp("mixed")
    (root / "sub").mkdir()
    for name, folder in zip(PHOTOS, (root, root, root / "sub")):
        (folder / name).write_bytes((IMAGES / name).read_bytes())
    (root / "sub" / "clip.mp4").write_bytes(CLIP.read_bytes())
    (root / "empty.jpg").write_bytes(b"")
    (root / "text.mp4").write_text("not a video\n")
    (root / "notes.md").write_text("not an input\n")
    return root


@pytest.fixture(scope="module")
def mixed_run(mixed, tmp_path_factory):
    out = tmp_path_factory.mktemp("mixed-out") / "dataset"
    proc = posepipe("batch", mixed, "--out", out, "--workers", 2, *RUNTIME)
    return proc, out


@needs_shared
def test_a_mixed_folder_gives_the_rows_of_the_image_and_video_commands(mixed, mixed_run, tmp_path):
    proc, out = mixed_run
    assert proc.returncode == 1, proc.stderr
    assert posepipe_lines(proc.stderr) == ["posepipe: 2 input(s) could not be processed (see sources.parquet)"]

    sources = sources_table(out)
    photos = [str(mixed / PHOTOS[0]), str(mixed / PHOTOS[1]), str(mixed / "sub" / PHOTOS[2])]
    clip = str(mixed / "sub" / "clip.mp4")
    assert set(sources) == {*photos, clip, str(mixed / "empty.jpg"), str(mixed / "text.mp4")}
    assert sources[str(mixed / "empty.jpg")] | {"seconds": 0} == {
        "source": str(mixed / "empty.jpg"), "kind": "image", "frames": 0, "poses": 0, "status": "error",
        "error": "the file is empty", "seconds": 0}
    broken_video = sources[str(mixed / "text.mp4")]
    assert (broken_video["kind"], broken_video["status"]) == ("video", "error")
    assert broken_video["error"].startswith("not a readable video")
    assert sources[clip]["kind"] == "video" and sources[clip]["frames"] == 5

    table = poses_table(out)
    expected_schema = pa.schema([pa.field("source", pa.string()), *parquet_schema()])
    assert table.schema.remove_metadata().equals(expected_schema)
    assert_no_duplicates(table)

    # The video: `posepipe video --parquet` holds the same rows, bit for bit.
    video_out = tmp_path / "clip.parquet"
    done = posepipe("video", clip, "--parquet", video_out, "--no-progress", *RUNTIME)
    assert done.returncode == 0, done.stderr
    reference = pq.read_table(video_out).sort_by([(k, "ascending") for k in KEY[1:]])
    rows = table.filter(pc.equal(table["source"], clip))
    assert sources[clip]["poses"] > 0
    assert rows.num_rows == reference.num_rows == 33 * sources[clip]["poses"]
    for column in reference.column_names:
        assert rows[column].to_pylist() == reference[column].to_pylist(), column

    # The photos: `posepipe image`'s JSON lines, whose values are the same numbers rounded.
    lines = tmp_path / "photos.jsonl"
    done = posepipe("image", *photos, "-o", lines, *RUNTIME)
    assert done.returncode == 0, done.stderr
    found_somebody = False
    for record in map(json.loads, lines.read_text().splitlines()):
        rows = table.filter(pc.equal(table["source"], record["source"])).to_pydict()
        assert sources[record["source"]]["poses"] == len(record["poses"])
        assert len(rows["x"]) == 33 * len(record["poses"])
        assert set(rows["frame"]) <= {0} and set(rows["timestamp_ms"]) <= {0.0}
        for i, pose in enumerate(record["poses"]):
            found_somebody = True
            mine = slice(33 * i, 33 * (i + 1))
            assert rows["track_id"][mine] == [i] * 33
            assert [lm["name"] for lm in pose["landmarks"]] == rows["landmark"][mine]
            for c, digits in (("x", 3), ("y", 3), ("z", 3), ("visibility", 5), ("presence", 5)):
                assert [round(v, digits) for v in rows[c][mine]] == [lm[c] for lm in pose["landmarks"]], c
            for c in "xyz":
                assert [round(v, 5) for v in rows[f"world_{c}"][mine]] == [lm[c] for lm in pose["world_landmarks"]]
    assert found_somebody


def wait_for_parts(out: Path, more_than: int, process: subprocess.Popen, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        parts = len(list((out / "poses").glob("part-*.parquet"))) if (out / "poses").is_dir() else 0
        if parts > more_than:
            return parts
        assert process.poll() is None, "the run ended before it could be interrupted"
        time.sleep(0.05)
    raise AssertionError("no part was committed in time")


def assert_consistent(out: Path) -> None:
    """Readable as one table; every source in the status table, and only those, has rows."""
    table = poses_table(out)
    assert_no_duplicates(table)
    sources = sources_table(out)
    assert set(table["source"].to_pylist()) <= set(sources)
    for name, row in sources.items():
        assert table.filter(pc.equal(table["source"], name)).num_rows == 33 * row["poses"]


@needs_shared
def test_interrupted_runs_resume_complete_without_duplicates(tmp_path):
    photos = sorted(IMAGES.glob("*.jpg"))
    inputs = [STREET, CLIP, *photos]
    out = tmp_path / "resumed"
    command = posepipe_command("batch", *inputs, "--out", out, "--workers", 2, "--no-progress", *RUNTIME)

    # Ctrl-C, as a terminal sends it to the whole process group, once something is committed.
    run = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    committed = wait_for_parts(out, 0, run)
    os.killpg(run.pid, signal.SIGINT)
    sent = time.monotonic()
    _, stderr = run.communicate(timeout=60)
    assert time.monotonic() - sent < 10
    assert run.returncode == 130, stderr
    assert "run the same command again" in posepipe_lines(stderr)[-1]
    assert_consistent(out)
    assert len(sources_table(out)) < len(inputs)

    # SIGKILL of the whole group: no chance to tidy up.
    run = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    committed = wait_for_parts(out, committed, run)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait(timeout=30)

    started = time.monotonic()
    finished = subprocess.run(command, capture_output=True, text=True, timeout=240)
    last_run = time.monotonic() - started
    assert finished.returncode == 0, finished.stderr
    table = poses_table(out)
    assert_no_duplicates(table)
    assert_consistent(out)
    sources = sources_table(out)
    assert set(sources) == {str(p) for p in inputs}
    assert all(row["status"] == "ok" for row in sources.values())
    assert sources[str(STREET)]["frames"] == 205

    # The same rows as one uninterrupted run.
    clean = tmp_path / "clean"
    started = time.monotonic()
    done = posepipe("batch", *inputs, "--out", clean, "--workers", 2, *RUNTIME)
    clean_run = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert poses_table(clean).equals(table)

    # Again, finished: nothing is redone or rewritten, and it takes a fraction of the work's time.
    before = {p.name: p.stat().st_mtime_ns for p in (out / "poses").iterdir()}
    started = time.monotonic()
    again = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert time.monotonic() - started < max(clean_run, last_run) / 2
    assert f"({len(inputs)} done before): 0 done now" in again.stderr
    assert {p.name: p.stat().st_mtime_ns for p in (out / "poses").iterdir()} == before
    assert poses_table(out).equals(table)


@needs_shared
def test_changed_options_are_refused_and_overwrite_starts_over(tmp_path):
    photo = IMAGES / PHOTOS[0]
    out = tmp_path / "dataset"
    assert posepipe("batch", photo, "--out", out, "--workers", 1, *RUNTIME).returncode == 0
    parts = sorted(p.name for p in (out / "poses").iterdir())

    refused = posepipe("batch", photo, "--out", out, "--workers", 1, "--num-poses", 2, *RUNTIME)
    assert refused.returncode == 2
    (line,) = posepipe_lines(refused.stderr)
    assert "num_poses = 1, not 2" in line and "--overwrite" in line
    assert sorted(p.name for p in (out / "poses").iterdir()) == parts

    # The runtime changes values by rounding only: not refused.
    assert posepipe("batch", photo, "--out", out, "--workers", 1, "--backend", "litert").returncode == 0

    redone = posepipe("batch", photo, "--out", out, "--workers", 1, "--num-poses", 2, "--overwrite", *RUNTIME)
    assert redone.returncode == 0, redone.stderr
    assert json.loads((out / "batch.json").read_text())["num_poses"] == 2
    assert "1 inputs: 1 done now" in redone.stderr

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("mine\n")
    refused = posepipe("batch", photo, "--out", foreign, *RUNTIME)
    assert refused.returncode == 2 and "not made by posepipe batch" in posepipe_lines(refused.stderr)[0]


@needs_shared
def test_manifests_list_the_inputs(tmp_path):
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "a.txt").write_text(f"# photos\n{IMAGES / PHOTOS[0]}\n\n")
    (lists / "b.csv").write_text(f"id,path\n1,{IMAGES / PHOTOS[1]}\n")
    clip = lists / "clip.mp4"
    clip.write_bytes(CLIP.read_bytes())
    pq.write_table(pa.table({"path": ["clip.mp4"]}), lists / "c.parquet")  # relative: from the manifest's folder
    out = tmp_path / "dataset"
    proc = posepipe("batch", lists / "a.txt", lists / "b.csv", lists / "c.parquet", "--out", out, "--workers", 2,
                    *RUNTIME)
    assert proc.returncode == 0, proc.stderr
    sources = sources_table(out)
    assert set(sources) == {str(IMAGES / PHOTOS[0]), str(IMAGES / PHOTOS[1]), str(clip)}
    assert sources[str(clip)]["frames"] == 5

    (lists / "d.csv").write_text("file\nx.jpg\n")
    refused = posepipe("batch", lists / "d.csv", "--out", tmp_path / "other")
    assert refused.returncode == 2
    assert posepipe_lines(refused.stderr) == [f"posepipe: error: {lists / 'd.csv'}: the manifest has no 'path' column"]


@needs_shared
def test_the_plan_puts_long_videos_first_and_photos_in_chunks(tmp_path):
    (tmp_path / "a.jpg").write_bytes((IMAGES / PHOTOS[0]).read_bytes())
    (tmp_path / "b.png").write_bytes(b"")
    (tmp_path / "photo_without_suffix").write_bytes((IMAGES / PHOTOS[1]).read_bytes())
    inputs = [str(CLIP), str(tmp_path / "*.*"), str(STREET), str(tmp_path / "photo_without_suffix"), str(CLIP)]
    plan = make_plan(inputs, finished=set(), photos_per_chunk=8)  # the last 16 photos in chunks of 2
    assert [u.kind for u in plan.units] == ["video", "video", "image", "image"]
    assert [u.sources[0].name for u in plan.units[:2]] == [str(STREET), str(CLIP)]  # 4.1 s before 0.2 s
    assert plan.units[0].sources[0].frames == 205
    photos = [s.name for u in plan.units[2:] for s in u.sources]
    assert photos == [str(tmp_path / "a.jpg"), str(tmp_path / "b.png"), str(tmp_path / "photo_without_suffix")]
    assert plan.sources == 5 and plan.finished == 0
    assert plan.units[2].key == unit_key("image", photos[:2])

    again = make_plan(inputs, finished={str(STREET), str(tmp_path / "a.jpg")}, photos_per_chunk=8)
    assert again.finished == 2 and [u.kind for u in again.units] == ["video", "image"]
    assert again.units[1].sources == (Source(photos[1], photos[1], "image"), Source(photos[2], photos[2], "image"))


@needs_shared
def test_the_last_photos_go_in_smaller_chunks(tmp_path):
    """So that workers finishing at different times wait for a short chunk, not a whole one."""
    for i in range(45):
        os.link(IMAGES / PHOTOS[0], tmp_path / f"p{i:02d}.jpg")
    plan = make_plan([str(tmp_path)], finished=set(), photos_per_chunk=8)
    assert [len(u.sources) for u in plan.units] == [8, 8, 8, 5] + [2] * 8
    names = [s.name for u in plan.units for s in u.sources]
    assert names == sorted(str(p) for p in tmp_path.glob("*.jpg"))  # every photo once, in order


@needs_shared
def test_a_model_that_cannot_load_stops_the_run_in_one_sentence(tmp_path):
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a flatbuffer")
    out = tmp_path / "dataset"
    photo = IMAGES / PHOTOS[0]
    failed = posepipe("batch", photo, "--out", out, "--workers", 1, "--landmark-model", broken)
    assert failed.returncode == 2
    (line,) = posepipe_lines(failed.stderr)
    assert line.startswith("posepipe: error: ") and "broken.tflite is not a TFLite model" in line
    assert not list((out / "poses").iterdir())
    # Nothing was committed, so the folder is not bound to the broken model's options.
    assert posepipe("batch", photo, "--out", out, "--workers", 1, *RUNTIME).returncode == 0
