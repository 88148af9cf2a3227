"""The ASGI app: routers, shared state, error answers; and :func:`run` under uvicorn."""

from __future__ import annotations

import logging
import sys
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from ..errors import PosepipeError
from .deps import require_token
from .errors import ApiError
from .inference import Gate, Inference
from .jobs import JobQueue
from .routes import jobs, pages, pose, stream
from .settings import Settings

log = logging.getLogger("posepipe.serve")


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _validation_sentence(exc: RequestValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ())[1:]) or "the request"
    return f"{where}: {first.get('msg', 'invalid value')}"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        app.state.inference.close()

    app = FastAPI(title="posepipe", summary="MediaPipe Pose (BlazePose, 33 landmarks) as a service.",
                  version="0.1.0", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.settings = settings
    app.state.inference = Inference(settings.max_concurrent)
    app.state.streams = Gate(settings.max_concurrent)
    app.state.jobs = JobQueue(settings.data_dir, settings.job_queue_size, settings.max_pixels)

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError):
        return _error(exc.status, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError):
        return _error(422, _validation_sentence(exc))

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException):
        message = {404: "no such route", 405: "this route does not take that method"}.get(exc.status_code,
                                                                                          str(exc.detail))
        return _error(exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(PosepipeError)
    async def posepipe_error(_request: Request, exc: PosepipeError):
        return _error(422, str(exc))

    @app.exception_handler(MemoryError)
    async def out_of_memory(_request: Request, _exc: MemoryError):
        return _error(507, "the server ran out of memory on this request")

    @app.exception_handler(Exception)
    async def failure(request: Request, exc: Exception):
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return _error(500, "the server failed on this request (its log says why)")

    @app.get("/healthz", tags=["server"], dependencies=[Depends(require_token)])
    async def healthz():
        """Up: the server answers."""
        return {"status": "ok"}

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require_token)])
    async def openapi():
        return app.openapi()

    for module in (pose, jobs, stream, pages):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=pages.STATIC), name="static")
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["GET", "POST", "DELETE"], allow_headers=["Authorization", "Content-Type"])
    return app


def run(settings: Settings) -> None:
    """Serve until stopped (Ctrl-C)."""
    import uvicorn

    if not settings.loopback and not settings.token:
        print(f"posepipe serve: warning: listening on {settings.host} without a token: anyone who can reach "
              "this machine can use the server (give --token or POSEPIPE_TOKEN)", file=sys.stderr)
    app = create_app(settings)
    print(f"posepipe serve: the page at http://{settings.host}:{settings.port}/, the API reference at /docs; "
          f"jobs in {settings.data_dir}", file=sys.stderr)
    uvicorn.run(app, host=settings.host, port=settings.port, ws_max_size=settings.max_ws_message_bytes,
                log_level="warning")
