"""``POST /v1/pose``: one photo in; its JSON record (as ``posepipe image`` writes it), the
drawn picture, or the pipeline trace out."""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path
from typing import Literal

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from ...drawing import PoseAnnotator
from ...io import image_record
from ...trace import run_trace
from ..deps import Deadline, admitted, require_token, run_inference
from ..images import declared_size, decode_upload
from ..inference import ModelPool, Thresholds, Ticket
from ..pictures import png_bytes, png_data_url
from ..uploads import receive_upload

router = APIRouter(tags=["photos"], dependencies=[Depends(require_token)])

ERRORS = {413: {"description": "The upload or its pixel count is over the limit."},
          415: {"description": "Not a JPEG, PNG, WebP or BMP image."},
          422: {"description": "A broken image, or a bad query value."},
          503: {"description": "Busy: as many requests as allowed are in flight; see Retry-After."},
          504: {"description": "The request ran out of time."}}


def wants_png(accept: str | None) -> bool:
    """``Accept: image/png`` first among the types the client names."""
    first = (accept or "").split(",")[0].split(";")[0].strip().lower()
    return first == "image/png"


def _trace(pool: ModelPool, data: bytes, image: np.ndarray, source: str, thresholds: Thresholds,
           deadline: Deadline) -> dict:
    """The record plus every stage's tensors and times and the five pictures."""
    kind, _ = declared_size(data)
    with tempfile.TemporaryDirectory(prefix="posepipe-trace-") as folder, \
            pool.landmarker(thresholds, masks=True, timeout_s=deadline.left()) as landmarker:
        upload = Path(folder) / f"upload.{kind.lower()}"
        upload.write_bytes(data)
        rows = run_trace(upload, Path(folder) / "pictures", landmarker)
        poses = landmarker.detect(image)
        pictures = {p.name: png_data_url(p.read_bytes()) for p in sorted((Path(folder) / "pictures").glob("*.png"))}
    stages = [{"stage": r.stage, "tensor": r.what, "shape": list(r.shape), "min": r.low, "max": r.high,
               "ms": round(r.ms, 3)} for r in rows]
    return image_record(source, image, poses) | {"trace": {"stages": stages, "pictures": pictures}}


def _photo(pool: ModelPool, data: bytes, max_pixels: int, source: str, thresholds: Thresholds, masks: bool,
           png: bool, trace: bool, deadline: Deadline) -> dict | bytes:
    """On an inference thread. A request whose answer (504) has gone does not wait for a model."""
    image = decode_upload(data, max_pixels)
    if trace:
        return _trace(pool, data, image, source, thresholds, deadline)
    with pool.landmarker(thresholds, masks, timeout_s=deadline.left()) as landmarker:
        poses = landmarker.detect(image)
    if png:
        return png_bytes(PoseAnnotator().annotate(image, poses))
    record = image_record(source, image, poses)
    if masks:
        record["masks"] = [png_data_url(png_bytes((mask * 255).round().astype(np.uint8)))
                           for mask in (poses.masks if poses.masks is not None else [])]
    return record


@router.post("/v1/pose", responses={200: {"content": {"image/png": {}}, "description":
                                          "The JSON record, or with format=png the drawn picture."}, **ERRORS})
async def pose(request: Request, ticket: Ticket = Depends(admitted),
               num_poses: int = Query(1, ge=1, le=10, description="Most people to find."),
               masks: bool = Query(False, description="Add each person's segmentation mask (PNG data URLs)."),
               min_detection_confidence: float = Query(0.5, ge=0, le=1, description="Person detector threshold."),
               min_presence_confidence: float = Query(0.5, ge=0, le=1, description="Landmark model pose threshold."),
               accurate: bool = Query(False, description="posepipe's accurate mode: refined crops and a fallback "
                                                         "when nobody is found, at about 3x the time."),
               format: Literal["json", "png"] | None = Query(
                   None, description="png: the drawn picture (as does 'Accept: image/png'); default JSON."),
               trace: bool = Query(False, description="Add the pipeline trace: every stage's tensors, ranges and "
                                                      "times, and its five pictures (JSON only).")):
    """Find poses in one photo, sent as the raw body or as the multipart field ``file``.

    The answer is the JSON record ``posepipe image`` writes for it, with ``source`` the
    upload's file name (multipart) or ``"upload"``."""
    settings = request.app.state.settings
    deadline = Deadline(request)
    body = io.BytesIO()
    filename = await receive_upload(request, body, settings.max_image_bytes, settings.request_timeout_s, deadline.at)
    source = (Path(filename).name if filename else "") or "upload"
    png = not trace and (format == "png" or (format is None and wants_png(request.headers.get("accept"))))
    thresholds = Thresholds(num_poses, min_detection_confidence, min_presence_confidence, accurate)
    result = await run_inference(request, ticket, deadline, _photo, request.app.state.inference.pool,
                                 body.getvalue(), settings.max_pixels, source, thresholds, masks, png, trace,
                                 deadline)
    if png:
        return Response(result, media_type="image/png")
    # The record is plain JSON already: FastAPI's generic encoder would walk its ~500 numbers
    # again (0.6 ms a photo here, a few per cent of the throughput).
    return Response(json.dumps(result), media_type="application/json")
