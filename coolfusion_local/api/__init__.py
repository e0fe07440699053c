"""`coolfusion serve`: the fused model behind an OpenAI-compatible HTTP API.

* `app.py`: the ASGI app (FastAPI) and its routes.
* `schemas.py`: request bodies, validated, turned into engine arguments.
* `shapes.py`: OpenAI's response, chunk and model-list objects.
* `worker.py`: the one thread that runs the engine, and its bounded queue.
* `guards.py`: API key, body size cap.
* `browser.py`: what web pages could do: Host (DNS rebinding), Origin and CORS, JSON bodies only.
* `server.py`: uvicorn's server, stopping the worker when it stops (no lock in the signal handler).
* `errors.py`: OpenAI-style error bodies.

The engine answers one request at a time (one lock, one llama.cpp call at a
time); the async side only validates, queues and streams.
"""

from .app import ServeSettings, create_app

__all__ = ["ServeSettings", "create_app"]
