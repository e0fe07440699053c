"""A real `coolfusion serve` process on 127.0.0.1 and a raw HTTP client for it (stdlib only)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from helpers import free_port

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def connection(self, timeout: float = 120) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method: str, path: str, body: bytes | dict | None = None, *, headers: dict | None = None,
                timeout: float = 120) -> Reply:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        connection = self.connection(timeout)
        try:
            connection.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
            response = connection.getresponse()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            connection.close()

    def stderr(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)


def start_server(tmp: Path, *args: str, env: dict | None = None, timeout: float = 180) -> Server:
    port = free_port()
    log = tmp / f"serve-{port}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "coolfusion_local", "serve", "--port", str(port), *args],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=log.open("w"),
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
    )
    server = Server(process, port, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"coolfusion serve exited with {process.returncode}:\n{server.stderr()}")
        try:
            if server.request("GET", "/health", timeout=5).status == 200:
                return server
        except OSError:
            pass
        time.sleep(0.3)
    process.kill()
    raise AssertionError(f"coolfusion serve did not come up in {timeout}s:\n{server.stderr()}")


def sse_data(response: http.client.HTTPResponse):
    """The `data:` payloads of a server-sent event stream, as they arrive."""
    while True:
        line = response.readline()
        if not line:
            return
        line = line.decode().rstrip("\r\n")
        if line.startswith("data:"):
            yield line[5:].strip()
