"""``posepipe serve``: the pipeline as an HTTP service (FastAPI under uvicorn) with a live
WebSocket stream and a page that shows what the model sees.

Photos at ``POST /v1/pose``, video jobs at ``/v1/jobs``, the live stream at ``WS /v1/stream``,
the page at ``/``, the API reference at ``/docs`` (docs/serve.md has it all by example).
Needs the ``serve`` extra: ``pip install 'posepipe[serve]'``.
"""

from .app import create_app, run
from .settings import Settings

__all__ = ["Settings", "create_app", "run"]
