"""A tiny worker written as the reference's (``inference/worker/__main__.py``, ``work.py``), with a
fake model: ``python -m examples.inference_server.worker --help``.

Sync ``websocket-client``: connects to ``/workers/work`` with ``X-API-Key`` and
``X-Protocol-Version``, sends its ``WorkerInfo``, then handles each ``WorkRequest`` in a thread of
its own (up to ``--parallel``), sending one text frame per token (``TokenResponse``) and a
``GeneratedTextResponse``, from several threads under one lock; answers pings with a
``PongResponse`` carrying its metrics. Its "model" builds the prompt as the reference's v2 prompt
(every thread message's content) and answers with the words of the last prompter message,
reversed, one token each, ``--delay`` seconds apart. When the server is unreachable or drops
the connection (it does when its Redis fails), it connects again ``--reconnect`` seconds later, as
the reference's worker does.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

log = logging.getLogger("worker")

V2_ASST_PREFIX = "<|assistant|>"
V2_PROMPTER_PREFIX = "<|prompter|>"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m examples.inference_server.worker",
        description=(
            "A worker for the example inference server, written as the reference's worker (sync "
            "websocket-client, a thread per request, one text frame per token) with a fake model "
            "that answers with the last prompt's words reversed."
        ),
    )
    parser.add_argument(
        "--url", default="ws://127.0.0.1:8080", help="the server (default ws://127.0.0.1:8080)"
    )
    parser.add_argument("--api-key", default="dev-key", help="X-API-Key (default: dev-key)")
    parser.add_argument(
        "--model-config",
        default="_lorem",
        help="a name of oasst_shared.model_configs.MODEL_CONFIGS (default _lorem)",
    )
    parser.add_argument("--parallel", type=int, default=4, help="max_parallel_requests (default 4)")
    parser.add_argument("--delay", type=float, default=0.02, help="seconds between two tokens (default 0.02)")
    parser.add_argument("--once", action="store_true", help="exit after one answer")
    parser.add_argument(
        "--reconnect",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="when the server is unreachable or closes the connection, connect again after this "
        "long, as the reference's worker does (default 5; 0: exit instead)",
    )
    return parser.parse_args(argv)


def answer_words(work: Any) -> list[str]:
    """The fake model: the prompt built as the reference's v2 prompt, answered with the last
    prompter message's words reversed."""
    prompt = "".join(
        (V2_ASST_PREFIX if m.is_assistant else V2_PROMPTER_PREFIX) + (m.content or "")
        for m in work.thread.messages
    )
    last = prompt.rsplit(V2_PROMPTER_PREFIX, 1)[-1]
    words = last.split() or ["..."]
    return [w if i == 0 else " " + w for i, w in enumerate(reversed(words))]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s worker: %(message)s")
    try:
        import websocket  # websocket-client

        from oasst_shared.model_configs import MODEL_CONFIGS
        from oasst_shared.schemas import inference
    except ImportError as exc:
        sys.exit(f"worker: {exc}. Run it with the project's venv: make install, then .venv/bin/python -m ...")
    model_config = MODEL_CONFIGS.get(args.model_config)
    if model_config is None:
        sys.exit(f"worker: unknown model config {args.model_config!r}")
    config = inference.WorkerConfig(model_config=model_config, max_parallel_requests=args.parallel)
    while True:
        try:
            serve(args, config)
            return
        except (Disconnected, OSError, websocket.WebSocketException) as exc:
            reason = str(exc) or type(exc).__name__
            if args.reconnect <= 0:
                sys.exit(f"worker: {reason}")
            log.warning("%s; connecting again in %g s", reason, args.reconnect)
            time.sleep(args.reconnect)


class Disconnected(Exception):
    """The server closed the connection (its answers in progress end there with an error)."""


def serve(args: argparse.Namespace, config: Any) -> None:
    """One connection: its handshake, then requests until ``--once`` is done or the server sends
    ``TerminateRequest``. Raises ``Disconnected`` (or the connection's error) when it is lost."""
    import websocket

    from oasst_shared import codec
    from oasst_shared.hardware import collect_hardware_info, collect_metrics_info
    from oasst_shared.schemas import inference

    ws = websocket.create_connection(
        f"{args.url}/workers/work",
        header={"X-API-Key": args.api_key, "X-Protocol-Version": inference.INFERENCE_PROTOCOL_VERSION},
    )
    lock = threading.Lock()
    done = threading.Event()

    def send(response: Any) -> None:
        with lock:
            ws.send(response.json())

    def work(request: Any) -> None:
        words = answer_words(request)
        try:
            for i, word in enumerate(words):
                time.sleep(args.delay)
                send(inference.TokenResponse(request_id=request.id, text=word, token_id=i))
            send(
                inference.GeneratedTextResponse(
                    request_id=request.id,
                    text="".join(words),
                    finish_reason="eos_token",
                    metrics=collect_metrics_info(),
                )
            )
        except (OSError, websocket.WebSocketConnectionClosedException):
            log.warning("request %s abandoned: the connection closed", request.id)
            return
        log.info("answered %s with %d tokens", request.id, len(words))
        if args.once:
            done.set()

    send(inference.WorkerInfo(config=config, hardware_info=collect_hardware_info()))
    log.info("connected to %s as %s", args.url, config.compat_hash)
    futures: list[Future[None]] = []
    try:
        with ThreadPoolExecutor(max_workers=args.parallel) as pool:
            ws.settimeout(0.5)
            while not done.is_set():
                try:
                    text = ws.recv()
                except websocket.WebSocketTimeoutException:
                    continue
                except websocket.WebSocketConnectionClosedException:
                    text = ""
                if not text:
                    raise Disconnected("the server closed the connection")
                request = codec.worker_request.decode(text)
                if isinstance(request, inference.WorkRequest):
                    futures.append(pool.submit(work, request))
                elif isinstance(request, inference.PingRequest):
                    send(inference.PongResponse(request_id=request.id, metrics=collect_metrics_info()))
                elif isinstance(request, inference.WrongApiKeyRequest):
                    sys.exit("worker: the server says the API key is wrong")
                elif isinstance(request, inference.UpgradeProtocolRequest):
                    sys.exit("worker: the server asks for another protocol version")
                elif isinstance(request, inference.TerminateRequest):
                    break
                for f in [f for f in futures if f.done()]:
                    futures.remove(f)
                    f.result()
    finally:
        ws.close()


if __name__ == "__main__":
    main()
