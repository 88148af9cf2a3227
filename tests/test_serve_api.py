"""posepipe serve's HTTP API and live stream, against a real server process on a loopback port."""

from __future__ import annotations

import json
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

httpx = pytest.importorskip("httpx", reason="the serve tests need the test extra (httpx)")
pytest.importorskip("fastapi", reason="posepipe serve needs the serve extra")
from websockets.exceptions import ConnectionClosed  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from posepipe.topology import POSE_CONNECTIONS  # noqa: E402

from tests.conftest import SHARED, needs_shared  # noqa: E402
from tests.serve_process import ServeProcess  # noqa: E402

CLIP = SHARED / "data" / "video" / "demo_540p_5f.mp4"
PHOTOS = [SHARED / "data" / "images" / name for name in
          ("COCO_val2014_000000000241.jpg", "mpii_004645041.jpg", "COCO_val2014_000000000192.jpg")]  # 192: nobody found
TOKEN = "s3cret-token"
APP_ORIGIN = "http://app.example"
STATIC = Path(__file__).resolve().parents[1] / "posepipe" / "serve" / "static"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Default limits, no token."""
    serve = ServeProcess(tmp_path_factory.mktemp("serve") / "data")
    yield serve
    serve.stop()


@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    """A token, 1 MB images, one request at a time, 3 s per request, 200 kB stream messages, one
    origin allowed to call it from its pages."""
    serve = ServeProcess(tmp_path_factory.mktemp("strict") / "data", "--max-image-mb", "1", "--max-concurrent", "1",
                         "--request-timeout", "3", "--max-ws-message-mb", "0.2", "--cors-origin", APP_ORIGIN,
                         token=TOKEN)
    yield serve
    serve.stop()


def post_photo(serve: ServeProcess, data: bytes, filename: str | None = "photo.jpg", **params) -> httpx.Response:
    files = {"file": (filename, data)} if filename else None
    content = None if filename else data
    return httpx.post(serve.url + "/v1/pose", params=params, files=files, content=content, headers=serve.headers,
                      timeout=60)


def landmarks(record: dict) -> np.ndarray:
    return np.array([[[p[k] for k in ("x", "y", "z", "visibility", "presence")] for p in pose["landmarks"]]
                     for pose in record["poses"]])


# ---------------------------------------------------------------- photos


def test_a_photo_gives_the_record_posepipe_image_writes(server, grace_path, tmp_path):
    paths = [grace_path] + [p for p in PHOTOS if p.exists()]
    out = tmp_path / "cli.jsonl"
    proc = subprocess.run([sys.executable, "-m", "posepipe.cli", "image", *map(str, paths), "-o", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    expected = [json.loads(line) for line in out.read_text().splitlines()]
    for path, cli in zip(paths, expected):
        answer = post_photo(server, path.read_bytes(), path.name)
        assert answer.status_code == 200, answer.text
        got = answer.json()
        assert got["source"] == path.name
        assert {k: got[k] for k in ("frame", "width", "height")} == {k: cli[k] for k in ("frame", "width", "height")}
        assert len(got["poses"]) == len(cli["poses"]) == (0 if "192" in path.name else 1)
        # Same models, same runtime: equal up to the records' rounding (a thousandth of a pixel).
        if cli["poses"]:
            np.testing.assert_allclose(landmarks(got), landmarks(cli), atol=2e-3)
    raw = post_photo(server, grace_path.read_bytes(), filename=None)
    assert raw.status_code == 200 and raw.json()["source"] == "upload"
    np.testing.assert_allclose(landmarks(raw.json()), landmarks(expected[0]), atol=2e-3)


def test_accurate_query_gives_the_record_of_posepipe_image_accurate(server, grace_path, tmp_path):
    paths = [grace_path] + [p for p in PHOTOS if p.exists() and "192" in p.name]  # the default finds nobody there
    out = tmp_path / "cli.jsonl"
    proc = subprocess.run([sys.executable, "-m", "posepipe.cli", "image", *map(str, paths), "--accurate", "-o",
                           str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for path, line in zip(paths, out.read_text().splitlines()):
        cli = json.loads(line)
        got = post_photo(server, path.read_bytes(), path.name, accurate=1).json()
        assert len(got["poses"]) == len(cli["poses"]) == 1, path.name  # the accurate fallback finds the person
        np.testing.assert_allclose(landmarks(got), landmarks(cli), atol=2e-3)


def test_overlay_comes_back_as_png(server, grace_path):
    for params, headers in (({"format": "png"}, {}), ({}, {"Accept": "image/png"})):
        answer = httpx.post(server.url + "/v1/pose", params=params, content=grace_path.read_bytes(),
                            headers=headers, timeout=60)
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
        assert answer.content[:8] == b"\x89PNG\r\n\x1a\n"
        drawn = cv2.imdecode(np.frombuffer(answer.content, np.uint8), cv2.IMREAD_COLOR)
        original = cv2.imread(str(grace_path))
        assert drawn.shape == original.shape
        changed = np.abs(drawn.astype(int) - original).max(axis=2) > 40
        assert 0.002 < changed.mean() < 0.2  # the skeleton, not the whole picture


def test_trace_gives_the_stage_table_and_pictures(server, grace_path):
    answer = post_photo(server, grace_path.read_bytes(), "grace.jpg", trace=1)
    assert answer.status_code == 200, answer.text
    record = answer.json()
    assert len(record["poses"]) == 1
    stages = record["trace"]["stages"]
    assert [s["stage"][0] for s in stages][0] == "1" and {s["stage"][0] for s in stages} == set("12345")
    crop = next(s for s in stages if s["tensor"] == "landmark crop, rotated")
    assert crop["shape"] == [1, 3, 256, 256]
    pictures = record["trace"]["pictures"]
    assert sorted(pictures) == ["1_detector_input.png", "2_crop.png", "3_heatmaps.png", "4_mask.png", "5_overlay.png"]
    import base64

    crop_png = base64.b64decode(pictures["2_crop.png"].split(",", 1)[1])
    assert cv2.imdecode(np.frombuffer(crop_png, np.uint8), cv2.IMREAD_COLOR).shape == (256, 256, 3)


def test_query_options(server, grace_path):
    masked = post_photo(server, grace_path.read_bytes(), masks=1).json()
    assert len(masked["masks"]) == 1
    mask = cv2.imdecode(np.frombuffer(__import__("base64").b64decode(masked["masks"][0].split(",")[1]), np.uint8),
                        cv2.IMREAD_GRAYSCALE)
    assert mask.shape == (masked["height"], masked["width"]) and mask.max() > 200 and mask.min() < 50
    strict_threshold = post_photo(server, grace_path.read_bytes(), min_detection_confidence=1.0).json()
    assert strict_threshold["poses"] == []
    for params, field in (({"num_poses": 0}, "num_poses"), ({"min_presence_confidence": 2}, "min_presence_confidence"),
                          ({"format": "gif"}, "format")):
        answer = post_photo(server, grace_path.read_bytes(), **params)
        assert answer.status_code == 422 and answer.json()["error"].startswith(field), answer.text


def png(width: int, height: int, rows: int | None = None, depth: int = 8) -> bytes:
    """A grey PNG of ``width`` × ``height`` whose first ``rows`` rows are stored (all when None):
    fewer make a small file that declares a huge picture."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    row = b"\0" * (1 + width * depth // 8)
    body = b"".join(packer.compress(row) for _ in range(height if rows is None else rows)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, depth, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def test_bad_photos_get_a_sentence_and_the_server_goes_on(server, grace_path):
    good = grace_path.read_bytes()
    sixteen_bit = cv2.imencode(".png", cv2.imread(str(grace_path)).astype(np.uint16) * 257)[1].tobytes()
    cases = [
        ("empty.jpg", b"", 422, "empty"),
        ("truncated.jpg", good[: len(good) // 2], 422, "truncated"),
        ("text.jpg", b"this is not a picture\n", 415, "not an image"),
        ("tiny.png", cv2.imencode(".png", np.full((1, 1, 3), 128, np.uint8))[1].tobytes(), 422, "too small"),
        ("huge.png", png(12000, 12000), 413, "12000×12000"),
        ("bomb.png", png(200_000, 200_000, rows=4), 413, "200000×200000"),
        ("cut-header.png", b"\x89PNG\r\n\x1a\n\0\0", 422, "header"),
        ("deep.png", sixteen_bit, 415, "16 bits per channel"),
    ]
    for name, data, status, words in cases:
        answer = post_photo(server, data, name)
        assert answer.status_code == status, (name, answer.text)
        error = answer.json()["error"]
        assert words in error and "\n" not in error and "Traceback" not in error, (name, error)
        assert server.alive(), name
    assert len(cases[5][1]) < 5000  # the bomb is small: only its header gives it away
    assert post_photo(server, good, "plain.jpg").status_code == 200
    no_field = httpx.post(server.url + "/v1/pose", files={"other": ("a.jpg", good)}, timeout=30)
    assert no_field.status_code == 422 and "'file' field" in no_field.json()["error"]
    assert httpx.get(server.url + "/v1/nothing").json() == {"error": "no such route"}


def test_the_page_and_the_api_reference_are_served(server):
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and "posepipe" in page.text
    for script in re.findall(r'src="(/static/[^"]+)"', page.text):
        assert httpx.get(server.url + script).status_code == 200, script
    assert httpx.get(server.url + "/docs").status_code == 200
    spec = httpx.get(server.url + "/openapi.json").json()
    assert {"/v1/pose", "/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/{name}", "/healthz"} <= set(spec["paths"])
    # no page loads anything from elsewhere
    for path in STATIC.iterdir():
        assert not re.search(r"(src|href)=\"(https?:)?//", path.read_text()), path.name


def test_the_page_draws_mediapipes_connections():
    script = (STATIC / "skeleton.js").read_text()
    listed = script.split("const POSE_CONNECTIONS = [", 1)[1].split("];", 1)[0]
    pairs = tuple((int(a), int(b)) for a, b in re.findall(r"\[(\d+), (\d+)\]", listed))
    assert pairs == POSE_CONNECTIONS


def test_no_cors_unless_configured(server, strict):
    preflight = {"Origin": APP_ORIGIN, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization"}
    assert "access-control-allow-origin" not in httpx.options(server.url + "/v1/pose", headers=preflight).headers
    assert "access-control-allow-origin" not in httpx.get(server.url + "/healthz", headers={"Origin": APP_ORIGIN}).headers
    allowed = httpx.options(strict.url + "/v1/pose", headers=preflight)
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == APP_ORIGIN
    other = httpx.options(strict.url + "/v1/pose", headers=preflight | {"Origin": "http://elsewhere.example"})
    assert "access-control-allow-origin" not in other.headers


# ---------------------------------------------------------------- video jobs


def wait_for_job(serve: ServeProcess, job_id: str, timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = httpx.get(f"{serve.url}/v1/jobs/{job_id}", headers=serve.headers).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} not finished in {timeout_s} s: {job}")


@needs_shared
def test_job_lifecycle_and_restart(tmp_path):
    data = tmp_path / "data"
    first = ServeProcess(data)
    try:
        created = httpx.post(first.url + "/v1/jobs", files={"file": (CLIP.name, CLIP.read_bytes())}, timeout=60)
        assert created.status_code == 202, created.text
        job_id = created.json()["id"]
        assert re.fullmatch(r"[0-9a-f]{32}", job_id) and created.json()["status"] == "queued"
        job = wait_for_job(first, job_id)
        assert job["status"] == "done", job
        assert (job["frames_done"], job["frames_total"]) == (5, 5)
        assert job["source"] == CLIP.name
        assert job["files"] == ["poses.jsonl", "poses.csv", "poses.parquet", "overlay.mp4", "angles.csv"]
        lines = httpx.get(f"{first.url}/v1/jobs/{job_id}/poses.jsonl").text.splitlines()
        records = [json.loads(line) for line in lines]
        assert [r["frame"] for r in records] == list(range(5)) and all(len(r["poses"]) == 1 for r in records)
        assert records[0]["source"] == CLIP.name and records[0]["poses"][0]["track_id"] == 0
        angles = httpx.get(f"{first.url}/v1/jobs/{job_id}/angles.csv").text.splitlines()
        assert angles[0].startswith("frame,timestamp_ms,track_id,left_elbow_2d") and len(angles) == 6
        overlay = httpx.get(f"{first.url}/v1/jobs/{job_id}/overlay.mp4")
        assert overlay.headers["content-type"] == "video/mp4" and overlay.content[4:8] == b"ftyp"
        assert httpx.get(f"{first.url}/v1/jobs/{job_id}/poses.parquet").content[:4] == b"PAR1"
        # a second job, deleted once done
        second = httpx.post(first.url + "/v1/jobs", content=CLIP.read_bytes(), timeout=60).json()["id"]
        assert wait_for_job(first, second)["status"] == "done"
        assert httpx.delete(f"{first.url}/v1/jobs/{second}").json() == {"id": second, "status": "deleted"}
        assert httpx.get(f"{first.url}/v1/jobs/{second}").status_code == 404
        assert not (data / "jobs" / second).exists()
    finally:
        first.stop()
    # A job the stopped server was running (as a killed server leaves it).
    stopped = data / "jobs" / ("f" * 32)
    stopped.mkdir()
    (stopped / "status.json").write_text(json.dumps({"id": "f" * 32, "source": "x.mp4", "status": "running",
                                                     "frames_done": 2, "frames_total": 9}))
    again = ServeProcess(data)
    try:
        job = httpx.get(f"{again.url}/v1/jobs/{job_id}").json()
        assert job["status"] == "done" and job["frames_done"] == 5
        assert httpx.get(f"{again.url}/v1/jobs/{job_id}/poses.jsonl").text.splitlines() == lines
        interrupted = httpx.get(f"{again.url}/v1/jobs/{'f' * 32}").json()
        assert interrupted["status"] == "failed" and "stopped before" in interrupted["error"]
        assert httpx.get(f"{again.url}/v1/jobs/{'f' * 32}/poses.csv").status_code == 409
    finally:
        again.stop()


def test_bad_videos_and_job_ids(server, tmp_path):
    for name, data, status in (("empty.mp4", b"", 422), ("text.mp4", b"not a video at all\n" * 50, 415)):
        answer = httpx.post(server.url + "/v1/jobs", files={"file": (name, data)}, timeout=30)
        assert answer.status_code == status and answer.json()["error"], answer.text
    data_dir = Path(server.process.args[server.process.args.index("--data-dir") + 1])
    assert list((data_dir / "jobs").iterdir()) == []  # refused uploads leave nothing
    keep = data_dir / "keep.txt"
    keep.write_text("outside the jobs")
    for path in ("..%2F..%2Fetc%2Fpasswd", "..%2Fkeep.txt", "%2e%2e", "0" * 31, "0" * 32, "A" * 32, "0" * 32 + "%2F..",
                 "..%2F" + "0" * 32):
        answer = httpx.get(f"{server.url}/v1/jobs/{path}")
        assert answer.status_code == 404 and answer.json()["error"] in ("no such job", "no such route"), path
        assert httpx.get(f"{server.url}/v1/jobs/{path}/poses.csv").status_code == 404, path
        # "a/b" decoded is the file route, which takes no DELETE (405): either way nothing is removed
        assert httpx.delete(f"{server.url}/v1/jobs/{path}").status_code in (404, 405), path
    assert keep.read_text() == "outside the jobs"
    assert server.alive()


# ---------------------------------------------------------------- the live stream


def clip_frames() -> list[bytes]:
    import av

    with av.open(str(CLIP)) as container:
        pictures = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    return [cv2.imencode(".jpg", p)[1].tobytes() for p in pictures]


@needs_shared
def test_stream_tracks_and_drops_stale_frames(server):
    frames = clip_frames()
    with connect(server.url.replace("http", "ws") + "/v1/stream", max_size=None) as ws:
        # In step: every frame answered, tracked (one track id) and dated by the client.
        for k, jpeg in enumerate(frames):
            ws.send(json.dumps({"timestamp_ms": 200.0 * k}))
            ws.send(jpeg)
            reply = json.loads(ws.recv(timeout=60))
            assert reply["frame"] == k and reply["timestamp_ms"] == 200.0 * k and reply["dropped"] == 0
            assert len(reply["poses"]) == 1 and reply["poses"][0]["track_id"] == 0
            assert len(reply["poses"][0]["landmarks"]) == 33 and reply["latency_ms"] > 0
        # Faster than it can be processed: 20 frames at once. The newest is always answered; the
        # ones that waited behind a newer one are dropped and counted.
        sent = 20
        for k in range(sent):
            ws.send(json.dumps({"timestamp_ms": 1000.0 + 10 * k}))
            ws.send(frames[k % len(frames)])
        replies = []
        while not replies or replies[-1]["frame"] != len(frames) + sent - 1:
            replies.append(json.loads(ws.recv(timeout=60)))
        last = replies[-1]
        assert last["dropped"] >= 1 and len(replies) + last["dropped"] == sent
        assert [r["frame"] for r in replies] == sorted(r["frame"] for r in replies)
        assert all(r["poses"][0]["track_id"] == 0 for r in replies)
        # A broken frame gets an error reply; the stream goes on.
        ws.send(b"not a jpeg")
        assert "not an image" in json.loads(ws.recv(timeout=60))["error"]
        ws.send(json.dumps({"timestamp_ms": 100.0}))  # the tracker's filters need time to go forward
        ws.send(frames[0])
        assert "timestamps must increase" in json.loads(ws.recv(timeout=60))["error"]
        ws.send(json.dumps({"timestamp_ms": 5000.0}))
        ws.send(frames[0])
        assert len(json.loads(ws.recv(timeout=60))["poses"]) == 1


# ---------------------------------------------------------------- token and limits


def test_token_is_required(strict, grace_path):
    good = grace_path.read_bytes()[:100]
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        for method, path in (("GET", "/healthz"), ("POST", "/v1/pose"), ("POST", "/v1/jobs"), ("GET", "/openapi.json"),
                             ("GET", "/v1/jobs/" + "0" * 32)):
            answer = httpx.request(method, strict.url + path, headers=headers, content=good)
            assert answer.status_code == 401, (path, headers)
            assert "Bearer" in answer.json()["error"]
    assert httpx.get(strict.url + "/").status_code == 200  # the page itself holds no data
    with connect(strict.url.replace("http", "ws") + "/v1/stream") as ws:
        ws.send(b"\xff\xd8")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=30)
        assert closed.value.rcvd.code == 1008
    with connect(strict.url.replace("http", "ws") + "/v1/stream") as ws:  # a browser sends the token first
        ws.send(json.dumps({"token": TOKEN}))
        ws.send(grace_path.read_bytes())
        assert len(json.loads(ws.recv(timeout=60))["poses"]) == 1


def test_oversized_upload_and_stream_message(strict, grace_path):
    big = grace_path.read_bytes() + b"\0" * 1_100_000  # a real JPEG, past the 1 MB limit
    for files, content in (({"file": ("big.jpg", big)}, None), (None, big)):
        answer = httpx.post(strict.url + "/v1/pose", files=files, content=content, headers=strict.headers, timeout=30)
        assert answer.status_code == 413 and "1 MB" in answer.json()["error"]
    assert strict.alive()
    with connect(strict.url.replace("http", "ws") + "/v1/stream", additional_headers=strict.headers) as ws:
        ws.send(b"\xff" * 300_000)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=30)
        assert closed.value.rcvd.code == 1009  # message too big
    assert strict.alive()


def test_busy_server_answers_503_and_slow_uploads_time_out(strict, grace_path):
    """One request in flight (an upload that stalls) fills max-concurrent 1: the next gets 503
    with Retry-After; the stalled one ends with 408 after the 3 s limit, and the server is free."""
    stalled = socket.create_connection(("127.0.0.1", strict.port))
    stalled.sendall(f"POST /v1/pose HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                    "Content-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n".encode() + b"\xff\xd8" * 10)
    started = time.monotonic()
    while time.monotonic() - started < 2.5:  # until the stalled request holds the place (well within its 3 s)
        busy = httpx.post(strict.url + "/v1/pose", content=grace_path.read_bytes(), headers=strict.headers, timeout=30)
        if busy.status_code == 503:
            break
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1" and "busy" in busy.json()["error"]
    stalled.settimeout(10)
    answer = b""
    while b"time limit" not in answer:  # the head and the body may come in separate packets
        chunk = stalled.recv(65536)
        if not chunk:
            break
        answer += chunk
    answer = answer.decode()
    stalled.close()
    assert answer.startswith("HTTP/1.1 408") and "time limit" in answer
    done = httpx.post(strict.url + "/v1/pose", content=grace_path.read_bytes(), headers=strict.headers, timeout=30)
    assert done.status_code == 200 and len(done.json()["poses"]) == 1


def test_non_loopback_without_token_warns(tmp_path):
    with socket.socket() as taken:  # a port in use: the server stops after the warning
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        proc = subprocess.Popen([sys.executable, "-m", "posepipe.cli", "serve", "--host", "0.0.0.0", "--port",
                                 str(taken.getsockname()[1]), "--data-dir", str(tmp_path)], stderr=subprocess.PIPE,
                                text=True)
        try:
            _, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
    assert "warning: listening on 0.0.0.0 without a token" in err
    blocked = tmp_path / "file"
    blocked.write_text("x")
    proc = subprocess.run([sys.executable, "-m", "posepipe.cli", "serve", "--data-dir", str(blocked / "d")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "cannot create the job folder" in proc.stderr and "Traceback" not in proc.stderr
    shutil.rmtree(tmp_path, ignore_errors=True)
