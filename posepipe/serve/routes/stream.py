"""``WS /v1/stream``: live frames in, tracked and smoothed landmarks out.

The client sends JPEG (or PNG, WebP, BMP) frames as binary messages, each optionally
preceded by a text message ``{"timestamp_ms": t}``; without one, the frame is dated by its
arrival. Each processed frame gets one JSON reply. A frame that arrives while another waits
replaces it: only the newest waiting frame is processed, and ``dropped`` in each reply
counts the ones skipped so far, so a client sending faster than the server keeps up gets
fresh answers instead of a growing backlog.

Browsers cannot set headers on a WebSocket: where the server has a token, the first message
may be ``{"token": "<token>"}`` instead of the ``Authorization`` header.
"""

from __future__ import annotations

import asyncio
import json
import time

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from ...io import image_record
from ...pipeline import PoseLandmarker
from ...video.tracking import PoseTracker
from ..deps import token_matches
from ..errors import ApiError
from ..images import decode_upload
from ..inference import ModelPool

router = APIRouter()

POLICY_VIOLATION, TRY_AGAIN_LATER = 1008, 1013


class _Tracking:
    """One connection's tracker. The models come from the pool for each frame; the tracker
    keeps only this person's state (tracks, filters) between frames."""

    def __init__(self, pool: ModelPool):
        self.pool = pool
        self.tracker: PoseTracker | None = None
        self.last_ms = float("-inf")

    def process(self, data: bytes, timestamp_ms: float, max_pixels: int) -> dict:
        image = decode_upload(data, max_pixels)
        if timestamp_ms <= self.last_ms:
            raise ApiError(422, f"timestamps must increase (got {timestamp_ms:g} after {self.last_ms:g})")
        started = time.perf_counter()
        with self.pool.landmarker() as landmarker:
            self._use(landmarker)
            poses = self.tracker.process(image, timestamp_ms)
        self.last_ms = timestamp_ms
        record = image_record("stream", image, poses, timestamp_ms=timestamp_ms)
        return record | {"processing_ms": round(1000 * (time.perf_counter() - started), 2)}

    def _use(self, landmarker: PoseLandmarker) -> None:
        if self.tracker is None:
            self.tracker = PoseTracker(smooth=True, landmarker=landmarker)
        self.tracker.landmarker, self.tracker.options = landmarker, landmarker.options


@router.websocket("/v1/stream")
async def stream(websocket: WebSocket) -> None:
    app = websocket.app
    settings = app.state.settings
    await websocket.accept()
    place = app.state.streams.enter()
    if place is None:
        await websocket.close(TRY_AGAIN_LATER, "the server has as many live streams as it allows")
        return
    try:
        await _serve(websocket, settings, app.state.inference)
    except WebSocketDisconnect:
        pass
    finally:
        place.drop()


async def _serve(websocket: WebSocket, settings, inference) -> None:
    authorized = token_matches(settings, websocket.headers.get("authorization"))
    tracking = _Tracking(inference.pool)
    opened = time.monotonic()
    pending: list = []  # at most one (bytes, timestamp_ms, arrival)
    counts = {"received": 0, "dropped": 0}
    wake = asyncio.Event()
    ended = False
    sending = asyncio.Lock()

    async def reply(message: dict) -> None:
        async with sending:
            await websocket.send_text(json.dumps(message, separators=(",", ":")))

    async def receive() -> None:
        nonlocal authorized, ended
        stamp = None
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("text") is not None:
                    try:
                        said = json.loads(message["text"])
                        if not isinstance(said, dict):
                            raise ValueError
                    except ValueError:
                        await reply({"error": "text messages must be JSON objects"})
                        continue
                    if "token" in said:
                        authorized = token_matches(settings, f"Bearer {said['token']}")
                    if isinstance(said.get("timestamp_ms"), (int, float)):
                        stamp = float(said["timestamp_ms"])
                    continue
                if not authorized:
                    await websocket.close(POLICY_VIOLATION, "send the token first: {\"token\": ...} or the "
                                                            "Authorization header")
                    return
                counts["received"] += 1
                if pending:
                    counts["dropped"] += 1
                    pending.clear()
                arrival = time.perf_counter()
                when = stamp if stamp is not None else 1000 * (time.monotonic() - opened)
                pending.append((message.get("bytes") or b"", when, arrival))
                stamp = None
                wake.set()
        finally:
            ended = True
            wake.set()

    receiver = asyncio.create_task(receive())
    loop = asyncio.get_running_loop()
    try:
        while True:
            await wake.wait()
            wake.clear()
            if ended:
                return
            if not pending:
                continue
            data, when, arrival = pending.pop()
            frame = counts["received"] - 1
            try:
                record = await loop.run_in_executor(inference.executor, tracking.process, data, when,
                                                    settings.max_pixels)
            except ApiError as exc:
                record = {"source": "stream", "timestamp_ms": when, "error": exc.message}
            record |= {"frame": frame, "dropped": counts["dropped"],
                       "latency_ms": round(1000 * (time.perf_counter() - arrival), 2)}
            await reply(record)
    finally:
        receiver.cancel()
