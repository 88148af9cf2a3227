"""Dependencies the routes declare: the token check, admission behind the gate, and
running work on the inference threads within the request's time."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import AsyncIterator, Callable, TypeVar

from fastapi import Request

from .errors import ApiError, busy
from .inference import Inference, Ticket
from .settings import Settings

T = TypeVar("T")


def token_matches(settings: Settings, authorization: str | None) -> bool:
    if settings.token is None:
        return True
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(given.strip().encode(), settings.token.encode())


def require_token(request: Request) -> None:
    if not token_matches(request.app.state.settings, request.headers.get("authorization")):
        raise ApiError(401, "this server needs the header 'Authorization: Bearer <token>' with its token",
                       {"WWW-Authenticate": "Bearer"})


async def admitted(request: Request) -> AsyncIterator[Ticket]:
    """A place among the photo requests in flight, or 503 with Retry-After."""
    ticket = request.app.state.inference.gate.enter()
    if ticket is None:
        raise busy("requests")
    try:
        yield ticket
    finally:
        ticket.drop()


class Deadline:
    """The time a request has left (``Settings.request_timeout_s`` from its start)."""

    def __init__(self, request: Request):
        self.seconds = request.app.state.settings.request_timeout_s
        self.at = time.monotonic() + self.seconds

    def left(self) -> float:
        return self.at - time.monotonic()


async def run_inference(request: Request, ticket: Ticket, deadline: Deadline, work: Callable[..., T], *args) -> T:
    """``work(*args)`` on an inference thread; 504 when the deadline passes first (the thread
    keeps the request's place until it ends)."""
    inference: Inference = request.app.state.inference
    ticket.hold()
    future = inference.executor.submit(work, *args)
    future.add_done_callback(lambda _: ticket.drop())
    try:
        return await asyncio.wait_for(asyncio.wrap_future(future), max(0.001, deadline.left()))
    except asyncio.TimeoutError:
        raise ApiError(504, f"the request took longer than this server's limit of {deadline.seconds:g} s") from None
