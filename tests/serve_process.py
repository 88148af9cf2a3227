"""A real ``posepipe serve`` process on a free loopback port, for the API and browser tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeProcess:
    """``python -m posepipe.cli serve`` with the given options, up once /healthz answers."""

    def __init__(self, data_dir: Path, *options: str, token: str | None = None, startup_s: float = 60.0):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = token
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        env = {k: v for k, v in os.environ.items() if k != "POSEPIPE_TOKEN"}
        command = [sys.executable, "-m", "posepipe.cli", "serve", "--port", str(self.port), "--data-dir",
                   str(data_dir), *options] + (["--token", token] if token else [])
        self.log = open(Path(data_dir).parent / f"serve-{self.port}.log", "w+")
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + startup_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"posepipe serve exited with {self.process.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.url + "/healthz", headers=self.headers, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"posepipe serve did not answer within {startup_s:g} s:\n{self.output()}")

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def alive(self) -> bool:
        return httpx.get(self.url + "/healthz", headers=self.headers, timeout=10).json() == {"status": "ok"}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
