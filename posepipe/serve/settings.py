"""What one server runs with: where it listens, where jobs live, and its limits."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

MB = 1_000_000
TOKEN_VARIABLE = "POSEPIPE_TOKEN"


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("posepipe-data")  # video jobs: data_dir/jobs/<id>/
    token: str | None = None  # when set, every API call needs "Authorization: Bearer <token>"
    max_image_bytes: int = 20 * MB
    max_video_bytes: int = 2000 * MB
    max_pixels: int = 50 * MB  # width × height of a photo, or of a video's frames
    max_concurrent: int = 8  # photo requests in flight (uploading, waiting for a model, running); one more gets 503
    request_timeout_s: float = 60.0  # a photo request, upload included; gaps between upload chunks
    max_ws_message_bytes: int = 4 * MB  # one frame of the live stream
    cors_origins: tuple[str, ...] = ()  # none: browsers refuse cross-origin calls
    job_queue_size: int = 8  # video jobs waiting; one more gets 503

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        if self.token is None:
            self.token = os.environ.get(TOKEN_VARIABLE) or None
        for name in ("max_image_bytes", "max_video_bytes", "max_pixels", "max_concurrent", "max_ws_message_bytes",
                     "job_queue_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.request_timeout_s <= 0:
            raise ValueError("request_timeout_s must be more than 0")

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: only "localhost" is known to stay on this machine
        return False
