"""Video jobs: upload, follow, download, delete."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from ..deps import require_token
from ..errors import ApiError
from ..jobs import OUTPUTS, JobQueue
from ..uploads import receive_upload

router = APIRouter(tags=["video jobs"], dependencies=[Depends(require_token)])


def _jobs(request: Request) -> JobQueue:
    return request.app.state.jobs


@router.post("/v1/jobs", status_code=202, responses={
    413: {"description": "Over the upload or pixel limit."}, 415: {"description": "Not a readable video."},
    503: {"description": "The job queue is full; see Retry-After."}})
async def create_job(request: Request):
    """Upload a video (raw body or multipart field ``file``) to be tracked in the background.
    The answer is ``{"id", "status"}``; follow it at ``/v1/jobs/{id}``."""
    jobs, settings = _jobs(request), request.app.state.settings
    job = jobs.create()
    try:
        with open(jobs.input_path(job), "wb") as sink:
            filename = await receive_upload(request, sink, settings.max_video_bytes, settings.request_timeout_s)
        job.source = (Path(filename).name if filename else "") or "upload"
        await run_in_threadpool(jobs.probe, job)
        jobs.submit(job)
    except BaseException:  # refused, cut off or cancelled: nothing of it stays
        await asyncio.shield(run_in_threadpool(jobs.discard, job))
        raise
    return {"id": job.id, "status": job.status}


@router.get("/v1/jobs/{job_id}")
async def job_status(job_id: str, request: Request):
    """The job's status (queued, running, done, failed), frames done and in all, its error
    and, once done, the files it has."""
    return _jobs(request).get(job_id).public()


@router.get("/v1/jobs/{job_id}/{name}", responses={
    200: {"description": "The file.", "content": {t: {} for t in set(OUTPUTS.values())}},
    404: {"description": "No such job or file."}, 409: {"description": "The job is not done."}})
async def job_file(job_id: str, name: str, request: Request):
    """One of the job's outputs: ``poses.jsonl`` (``posepipe video``'s records), ``poses.csv``,
    ``poses.parquet``, ``overlay.mp4`` (the drawn video), ``angles.csv`` (joint angles)."""
    jobs = _jobs(request)
    job = jobs.get(job_id)
    if name not in OUTPUTS:
        raise ApiError(404, f"jobs have no file {name!r} (they have {', '.join(OUTPUTS)})")
    if job.status != "done":
        raise ApiError(409, f"the job is {job.status}; its files come when it is done")
    path = jobs.folder(job_id) / name
    if name not in job.files or not path.is_file():
        reason = " (nobody was found in the video)" if name == "angles.csv" else ""
        raise ApiError(404, f"this job has no {name}{reason}")
    return FileResponse(path, media_type=OUTPUTS[name], filename=f"{Path(job.source).stem}-{name}")


@router.delete("/v1/jobs/{job_id}")
async def delete_job(job_id: str, request: Request):
    """Forget the job and remove its files (a running job stops first)."""
    _jobs(request).delete(job_id)
    return {"id": job_id, "status": "deleted"}
