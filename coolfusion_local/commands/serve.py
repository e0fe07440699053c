"""`coolfusion serve`: the fused model as an OpenAI-compatible local API.

Loads the configured models once (progress on stderr), then serves
`/v1/models`, `/v1/chat/completions`, `/v1/completions` and `/health` with
uvicorn. SIGINT/SIGTERM: new requests are refused, the answer being written
stops within a segment and ends as a well-formed response, and the process
exits 0. See docs/serve.md.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path

from ..errors import CoolfusionError
from ..fusion_engine import FusionEngine, load_config
from .common import add_config_argument, configure_logging, describe_load_event

SHUTDOWN_GRACE_SECONDS = 10  # uvicorn's cap on waiting for open connections once stopping


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve the fused model over an OpenAI-compatible HTTP API",
        description="Serve the fused model over an OpenAI-compatible HTTP API (/v1/chat/completions, "
        "/v1/completions, /v1/models, /health). Models: 'coolfusion' (the config's mode), "
        "'coolfusion:cool', 'coolfusion:adaptive', 'coolfusion:cool+r', and each source model by name.",
    )
    add_config_argument(parser)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    parser.add_argument("--api-key-env", metavar="VAR",
                        help="require 'Authorization: Bearer <key>', the key read from environment variable VAR")
    parser.add_argument("--cors", metavar="ORIGIN", action="append", default=[],
                        help="allow browser pages from ORIGIN (repeatable; '*' for any); none by default")
    parser.add_argument("--allow-host", metavar="NAME", action="append", default=[],
                        help="accept requests whose Host header is NAME, beside IP addresses, localhost and --host "
                        "(repeatable; '*' for any): for a name this machine is reached by, e.g. host.docker.internal")
    parser.add_argument("--max-queue", type=int, default=8, metavar="N",
                        help="requests that may wait behind the one being answered; more get 429 (default 8)")
    parser.add_argument("--max-body-bytes", type=int, default=1_048_576, metavar="N",
                        help="largest request body accepted; larger ones get 413 (default 1 MiB)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no loading messages and no access log")
    parser.set_defaults(func=run)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _api_key(variable: str | None) -> str | None:
    if variable is None:
        return None
    key = os.environ.get(variable, "")
    if not key.strip():
        raise CoolfusionError(f"--api-key-env {variable}: the environment variable {variable} is not set or empty",
                              exit_code=2)
    return key.strip()


def _check_numbers(args: argparse.Namespace) -> None:
    if not 0 < args.port < 65536:
        raise CoolfusionError(f"--port {args.port}: choose a port from 1 to 65535", exit_code=2)
    if args.max_queue < 0:
        raise CoolfusionError("--max-queue must be 0 or more", exit_code=2)
    if args.max_body_bytes < 1024:
        raise CoolfusionError("--max-body-bytes must be at least 1024", exit_code=2)


def run(args: argparse.Namespace) -> int:
    configure_logging()
    _check_numbers(args)
    key = _api_key(args.api_key_env)
    config = load_config(Path(args.config) if args.config else None)

    def say(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    if not _is_loopback(args.host) and key is None:
        print(f"warning: serving on {args.host} with no API key: anyone who can reach this port can use it "
              "(set one with --api-key-env VAR)", file=sys.stderr, flush=True)

    # Deliberately lazy: the web stack loads for `serve` only, not for every command's --help.
    import uvicorn
    from sse_starlette.sse import AppStatus

    from ..api import ServeSettings, create_app
    from ..api.server import StoppingServer

    with FusionEngine(config) as engine:
        for event in engine.load():
            for line in describe_load_event(event):
                say(line)
        if not any(engine.status(name).info is not None for name in engine.model_names):
            raise CoolfusionError("no model could be loaded; nothing to serve (see the warnings above)")
        settings = ServeSettings(api_key=key, max_waiting=args.max_queue, max_body_bytes=args.max_body_bytes,
                                 cors_origins=tuple(args.cors), host=args.host,
                                 allowed_hosts=tuple(args.allow_host))
        app = create_app(engine, settings)
        worker = app.state.worker
        # Our shutdown ends every stream itself (the answer stops, the stream closes with
        # a finish chunk and [DONE]); sse-starlette must not cut them off first.
        AppStatus.disable_automatic_graceful_drain()

        server = StoppingServer(uvicorn.Config(
            app, host=args.host, port=args.port, log_level="warning" if args.quiet else "info",
            access_log=not args.quiet, timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
            server_header=False,
        ), worker)
        where = f"[{args.host}]" if ":" in args.host else args.host
        say(f"serving {engine.mode} on http://{where}:{args.port}/v1"
            + (f" (API key from ${args.api_key_env})" if key else ""))
        try:
            server.run()
        except SystemExit:  # uvicorn exits when it cannot bind; it has logged why
            server.started = False
        if not server.started:
            worker.shutdown()
            raise CoolfusionError(f"cannot listen on {args.host}:{args.port} (in use, or not an address here)")
        worker.shutdown()
        worker.join(timeout=SHUTDOWN_GRACE_SECONDS)
    say("stopped")
    return 0
