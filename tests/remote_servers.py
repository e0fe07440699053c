"""Real HTTP servers for the remote-member tests: llama-cpp-python's own, and two that fall short.

* `LlamaServer`: `python -m llama_cpp.server` on a free 127.0.0.1 port, the
  real OpenAI-compatible server a user would run (test extra: its FastAPI deps).
* `serve_directory`: Python's plain `http.server`, which is no API at all.
* `NoEchoServer`: answers /v1/completions the way llama.cpp's llama-server
  does (log-probabilities of generated tokens only, `echo` ignored), so a
  server that cannot score is refused at load. It is a stand-in for a
  binary this machine does not have, not for llama.cpp: fusion never runs on it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from helpers import free_port


LAUNCHER = Path(__file__).with_name("llama_server_launcher.py")


class LlamaServer:
    """llama-cpp-python's server with one model, started and stopped by the test."""

    def __init__(self, model: Path, *, alias: str = "qwen", api_key: str | None = None, n_ctx: int = 2048):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        command = [
            # The server with this machine's llama.cpp CPU decision (AMX crashes: llama_server_launcher.py).
            sys.executable, str(LAUNCHER), "--model", str(model), "--model_alias", alias,
            "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(n_ctx),
            # The two cores are shared with the test process, which waits while the server decodes.
            "--n_threads", "2", "--verbose", "False",
        ]
        if api_key:
            command += ["--api_key", api_key]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_until_up()

    def _wait_until_up(self, seconds: float = 120) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited: {self.process.stderr.read().decode()[-2000:]}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/docs", timeout=2).close()
                return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError("llama_cpp.server did not start within two minutes")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


def serve_directory(folder: Path) -> tuple[ThreadingHTTPServer, str]:
    """A plain file server on a free port (in a thread); returns it and its /v1 URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietFiles, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


class _NoEchoHandler(BaseHTTPRequestHandler):
    """/v1/models and /v1/completions as llama-server answers them: no prompt log-probabilities."""

    def log_message(self, *args) -> None:
        pass

    def _send(self, document: dict, status: int = 200) -> None:
        data = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            self._send({"object": "list", "data": [{"id": "qwen", "object": "model"}]})
        else:
            self._send({"error": {"message": "not found"}}, 404)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != "/v1/completions":
            self._send({"error": {"message": "not found"}}, 404)
            return
        if not isinstance(body["prompt"], str):
            self._send({"error": {"message": "prompt must be a string"}}, 400)
            return
        count = max(1, body.get("max_tokens") or 1)
        tokens = [" Paris", ".", " It", " is"][:count]
        logprobs = {"tokens": tokens, "token_logprobs": [-0.1] * len(tokens),
                    "text_offset": [0] * len(tokens), "top_logprobs": None}
        self._send({
            "object": "text_completion", "model": "qwen",
            "choices": [{"index": 0, "text": "".join(tokens), "logprobs": logprobs, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": len(tokens), "total_tokens": 5 + len(tokens)},
        })


def serve_no_echo() -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NoEchoHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"


def serve_fixed(body: bytes, status: int = 200) -> tuple[ThreadingHTTPServer, str]:
    """A server that answers every request with the same bytes (broken JSON, for instance)."""

    class Fixed(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Fixed)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"
