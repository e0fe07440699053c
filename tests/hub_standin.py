"""A stand-in for the Hugging Face Hub on 127.0.0.1, for testing the real download code.

It serves the few endpoints huggingface_hub 2.x uses to fetch one file:

  GET  /api/models/{owner}/{name}[/revision/{rev}] model_info(files_metadata=True)
  HEAD /{owner}/{name}/resolve/{rev}/{file}        hf_hub_download's metadata call
  GET  /{owner}/{name}/resolve/{rev}/{file}        the download, with Range support

with the headers the client relies on (X-Repo-Commit, ETag / X-Linked-Etag,
X-Linked-Size, Content-Length, Content-Range, X-Error-Code). It records every
request, and can misbehave on purpose: cut a download short, or serve bytes
that differ from what it lists.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class HostedFile:
    data: bytes
    listed_sha256: str  # what the listing and ETag claim (differs from data when corrupt)
    cut_first_download_at: int | None = None  # close the first full GET after this many bytes
    downloads_started: int = 0


@dataclass
class StandInHub:
    repos: dict[str, dict[str, HostedFile]] = field(default_factory=dict)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, path, Range
    url: str = ""

    def add_file(self, repo: str, filename: str, data: bytes, *, listed_data: bytes | None = None,
                 cut_first_download_at: int | None = None) -> None:
        listed = hashlib.sha256(listed_data if listed_data is not None else data).hexdigest()
        self.repos.setdefault(repo, {})[filename] = HostedFile(data, listed, cut_first_download_at)

    def start(self) -> "StandInHub":
        hub = self

        class Handler(_Handler):
            standin = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "StandInHub":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def downloads_of(self, filename: str) -> list[str | None]:
        """The Range header of every GET of `filename` (None for a whole-file GET)."""
        return [rng for method, path, rng in self.requests if method == "GET" and path.endswith("/" + filename)]


_RESOLVE = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
_INFO = re.compile(r"^/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?$")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    standin: StandInHub

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def _record(self) -> str:
        path = unquote(urlsplit(self.path).path)
        self.standin.requests.append((self.command, path, self.headers.get("Range")))
        return path

    def _error(self, status: int, code: str | None) -> None:
        self.send_response(status)
        if code:
            self.send_header("X-Error-Code", code)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _lookup(self, repo: str, revision: str) -> dict[str, HostedFile] | None:
        if repo not in self.standin.repos:
            self._error(401, "RepoNotFound")
            return None
        if revision not in ("main", COMMIT):
            self._error(404, "RevisionNotFound")
            return None
        return self.standin.repos[repo]

    def do_GET(self) -> None:
        path = self._record()
        if match := _INFO.match(path):
            self._model_info(match.group(1), match.group(2) or "main")
        elif match := _RESOLVE.match(path):
            self._resolve(*match.groups(), send_body=True)
        else:
            self._error(404, None)

    def do_HEAD(self) -> None:
        path = self._record()
        if match := _RESOLVE.match(path):
            self._resolve(*match.groups(), send_body=False)
        else:
            self._error(404, None)

    def _model_info(self, repo: str, revision: str) -> None:
        files = self._lookup(repo, revision)
        if files is None:
            return
        siblings = [
            {"rfilename": name, "size": len(f.data), "blobId": "b" * 40,
             "lfs": {"size": len(f.data), "sha256": f.listed_sha256, "pointerSize": 134}}
            for name, f in files.items()
        ]
        body = json.dumps({"id": repo, "sha": COMMIT, "siblings": siblings}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _resolve(self, repo: str, revision: str, filename: str, send_body: bool) -> None:
        files = self._lookup(repo, revision)
        if files is None:
            return
        hosted = files.get(filename)
        if hosted is None:
            self._error(404, "EntryNotFound")
            return
        start = 0
        range_header = self.headers.get("Range")
        if range_header and (match := re.fullmatch(r"bytes=(\d+)-", range_header.strip())):
            start = int(match.group(1))
        body = hosted.data[start:]
        self.send_response(206 if start else 200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{hosted.listed_sha256}"')
        self.send_header("X-Linked-Etag", f'"{hosted.listed_sha256}"')
        self.send_header("X-Linked-Size", str(len(hosted.data)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(body)))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(hosted.data) - 1}/{len(hosted.data)}")
        self.end_headers()
        if not send_body:
            return
        hosted.downloads_started += 1
        cut = hosted.cut_first_download_at
        if cut is not None and hosted.downloads_started == 1 and start == 0:
            # Promise the whole file, send part of it, hang up: a dropped connection.
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


def point_huggingface_hub_at(standin: StandInHub, monkeypatch, hf_home) -> None:
    """Send huggingface_hub to `standin`, with its cache and token under `hf_home`."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", standin.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", standin.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(hf_home / "token"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
