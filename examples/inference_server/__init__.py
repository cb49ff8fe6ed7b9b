"""An Open-Assistant inference server on FastAPI, uvicorn and ``oasst_shared.relay``.

``python -m examples.inference_server --help``: the reference's worker websocket and chat routes,
the chats in Redis (shared by ``--workers N`` processes), Prometheus metrics at ``/metrics``.
Modules: ``__main__`` (the command line, the supervisor), ``serve`` (one uvicorn process),
``app`` (the FastAPI app), ``chats`` and ``workers`` (the routes), ``store`` (the chats in
Redis), ``settings``, ``state``, and ``worker`` (a small worker written as the reference's).
"""
