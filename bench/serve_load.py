"""Load on ``posepipe serve`` over loopback, bounded in time and requests.

1. ``posepipe image``'s own loop on the same photos (read, detect, record: in this process,
   models loaded first), for the throughput to compare with;
2. ``--clients`` concurrent clients posting the shared photos for ``--seconds``: throughput,
   p50/p95/p99 latency, answers by status (503 is the server's intended "busy"), the
   server's memory (RSS) before and after;
3. one WebSocket client streaming the 5-frame clip at ``--fps`` for ``--stream-seconds``:
   frames answered per second, latency from sending to the answer, frames dropped.

Without ``--url`` it starts a server on a free loopback port (and stops it after); with
``--url``, give ``--pid`` for the memory figures.

    python bench/serve_load.py --seconds 30 --clients 8
    python bench/serve_load.py --url http://127.0.0.1:8000 --pid 12345 --token T
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import cv2
import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"


def rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def cli_loop(photos: list[Path], seconds: float) -> float:
    """Images a second through ``posepipe image``'s per-image work, models loaded beforehand."""
    from posepipe.io import image_record, read_image
    from posepipe.pipeline import PoseLandmarker

    done = 0
    with PoseLandmarker() as landmarker:
        landmarker.detect(read_image(photos[0]))  # the backend's first-run costs
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            path = photos[done % len(photos)]
            image = read_image(path)
            json.dumps(image_record(str(path), image, landmarker.detect(image)))
            done += 1
        return done / (time.perf_counter() - start)


def post_photos(url: str, headers: dict, photos: list[bytes], clients: int, seconds: float,
                max_requests: int) -> tuple[list[float], Counter, float]:
    latencies: list[float] = []
    statuses: Counter = Counter()
    lock = threading.Lock()
    stop = time.perf_counter() + seconds
    sent = [0]

    def client(k: int) -> None:
        with httpx.Client(timeout=60, headers=headers) as session:
            i = k
            while time.perf_counter() < stop:
                with lock:
                    if sent[0] >= max_requests:
                        return
                    sent[0] += 1
                t = time.perf_counter()
                try:
                    status = session.post(url + "/v1/pose", content=photos[i % len(photos)]).status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                with lock:
                    statuses[status] += 1
                    if status == 200:
                        latencies.append(time.perf_counter() - t)
                i += clients

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, statuses, time.perf_counter() - start


def stream(url: str, headers: dict, fps: float, seconds: float) -> dict:
    import av
    from websockets.sync.client import connect

    with av.open(str(SHARED / "video" / "demo_540p_5f.mp4")) as container:
        frames = [cv2.imencode(".jpg", f.to_ndarray(format="bgr24"))[1].tobytes() for f in container.decode(video=0)]
    sent_at: dict[float, float] = {}
    latencies: list[float] = []
    last: dict = {}
    with connect(url.replace("http", "ws", 1) + "/v1/stream", additional_headers=headers, max_size=None) as ws:
        def receive() -> None:
            try:
                while True:
                    reply = json.loads(ws.recv())
                    answered_at = time.perf_counter()
                    latencies.append(answered_at - sent_at[reply["timestamp_ms"]])
                    last.update(reply, answered_at=answered_at)
            except Exception:  # noqa: BLE001 - the connection closed at the end
                pass

        receiver = threading.Thread(target=receive, daemon=True)
        receiver.start()
        start = time.perf_counter()
        k = 0
        while (now := time.perf_counter()) - start < seconds:
            stamp = round(1000 * (now - start), 3)
            sent_at[stamp] = now
            ws.send(json.dumps({"timestamp_ms": stamp}))
            ws.send(frames[k % len(frames)])
            k += 1
            time.sleep(max(0.0, start + k / fps - time.perf_counter()))
        time.sleep(1.0)  # the last answers
    wall = last.get("answered_at", time.perf_counter()) - start  # from the first frame sent to the last answer
    return {"sent": k, "answered": len(latencies), "fps_sent": k / seconds, "fps_answered": len(latencies) / wall,
            "dropped": last.get("dropped", 0), "p50": percentile(latencies, 50), "p95": percentile(latencies, 95)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="A running server (default: start one on a free loopback port).")
    parser.add_argument("--pid", type=int, help="The running server's process id, for its memory.")
    parser.add_argument("--token", help="The server's token, if it has one.")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0, help="How long the clients post photos.")
    parser.add_argument("--max-requests", type=int, default=20_000)
    parser.add_argument("--fps", type=float, default=30.0, help="The stream's frame rate.")
    parser.add_argument("--stream-seconds", type=float, default=10.0)
    args = parser.parse_args()

    from posepipe.models.cpu import describe

    photos = sorted((SHARED / "images").glob("*.jpg"))
    if not photos:
        sys.exit(f"no photos in {SHARED / 'images'}")
    print(describe())
    print(f"{len(photos)} photos from {SHARED / 'images'}; {args.clients} clients for {args.seconds:g} s")

    baseline = cli_loop(photos, min(args.seconds, 20.0))
    print(f"posepipe image's loop (read, detect, record; one process): {baseline:.1f} images/s")

    server, pid, url = None, args.pid, args.url
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    if url is None:
        sys.path.insert(0, str(ROOT / "tests"))
        from serve_process import ServeProcess

        server = ServeProcess(Path(tempfile.mkdtemp(prefix="serve-load-")) / "data",
                              "--max-concurrent", str(max(8, args.clients)), token=args.token)
        pid, url = server.process.pid, server.url
    try:
        data = [p.read_bytes() for p in photos]
        httpx.post(url + "/v1/pose", content=data[0], headers=headers, timeout=120)  # models loaded
        before = rss_mb(pid)
        latencies, statuses, wall = post_photos(url, headers, data, args.clients, args.seconds, args.max_requests)
        after = rss_mb(pid)
        done = statuses.get(200, 0)
        errors = {k: v for k, v in statuses.items() if k not in (200, 503)}
        print(f"\nPOST /v1/pose, {args.clients} clients, {wall:.1f} s:")
        print(f"  throughput   {done / wall:.1f} images/s ({100 * done / wall / baseline:.0f}% of posepipe image's)")
        print(f"  latency      p50 {1000 * percentile(latencies, 50):.0f} ms, p95 {1000 * percentile(latencies, 95):.0f}"
              f" ms, p99 {1000 * percentile(latencies, 99):.0f} ms")
        print(f"  answers      {done} × 200, {statuses.get(503, 0)} × 503 (busy), errors {errors or 'none'}")
        if before is not None:
            print(f"  server RSS   {before:.0f} MB before, {after:.0f} MB after")
        s = stream(url, headers, args.fps, args.stream_seconds)
        print(f"\nWS /v1/stream at {args.fps:g} fps for {args.stream_seconds:g} s:")
        print(f"  answered     {s['fps_answered']:.1f} frames/s of {s['fps_sent']:.1f} sent; {s['dropped']} dropped")
        print(f"  latency      p50 {1000 * s['p50']:.0f} ms, p95 {1000 * s['p95']:.0f} ms (sent to answered)")
        if server is not None:
            print(f"  server RSS   {rss_mb(pid):.0f} MB after the stream")
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
