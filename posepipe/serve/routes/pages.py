"""The page at ``/`` and the API reference at ``/docs``: static files shipped in the package,
with no build step and nothing fetched from elsewhere. They hold no data, so they are served
without the token; the page asks for it (or takes ``?token=`` once) and sends it with every
API call."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(include_in_schema=False)


@router.get("/")
async def page():
    return FileResponse(STATIC / "index.html", media_type="text/html")


@router.get("/docs")
async def docs():
    return FileResponse(STATIC / "docs.html", media_type="text/html")
