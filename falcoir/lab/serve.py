"""The lab server process: ``python -m falcoir.lab.serve --state-dir DIR [...]``.

Kept free of typer and rich so that a detached lab starts fast. Writes ``DIR/lab.pid``
and, once it answers, ``DIR/server.json`` and ``DIR/kubeconfig``; removes them on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="falcoir-lab-server")
    ap.add_argument("--state-dir", required=True, type=Path)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--nodes", type=int, default=0)
    ap.add_argument("--latency-ms", type=float, default=0.0)
    ap.add_argument("--runtime", default=os.environ.get("FALCOIR_LAB_RUNTIME", "auto"))
    ap.add_argument("--no-enforce-network-policy", action="store_true")
    return ap.parse_args(argv)


@contextlib.contextmanager
def without_client_ca_loading() -> Iterator[None]:
    """While aiohttp is imported, give it client SSL contexts without the system CAs.

    ``aiohttp.connector`` builds two client contexts at import time, and loading the CA
    bundle into them (twice) is the largest single cost of a lab's cold start (60-80 ms). The lab
    server makes no outgoing TLS connections; should anything in this process ever use
    those contexts, verification fails closed (no CA is trusted), never open."""
    import ssl

    if "aiohttp" in sys.modules:
        yield
        return
    real = ssl.create_default_context

    def bare(purpose: ssl.Purpose = ssl.Purpose.SERVER_AUTH, **kw: Any) -> ssl.SSLContext:
        if purpose is ssl.Purpose.SERVER_AUTH and not kw:
            return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, trusting no CA
        return real(purpose, **kw)

    real_paths = ssl.SSLContext.set_default_verify_paths
    ssl.create_default_context = bare
    ssl.SSLContext.set_default_verify_paths = lambda self: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        ssl.create_default_context = real
        ssl.SSLContext.set_default_verify_paths = real_paths  # type: ignore[method-assign]


async def run(args: argparse.Namespace, ready: asyncio.Event | None = None) -> None:
    from falcoir.lab import pki

    with without_client_ca_loading():
        from falcoir.lab.server import LabServer

    state_dir: Path = args.state_dir
    server = LabServer(
        state_dir,
        nodes=args.nodes,
        enforce_network_policy=not args.no_enforce_network_policy,
        runtime=args.runtime,
        latency_ms=args.latency_ms,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Every way a terminal or a supervisor asks it to stop goes through server.stop(),
    # which kills the pods (a lab's pods must never outlive it).
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    port = await server.start(args.host, args.port)
    url = f"https://{args.host}:{port}"
    pki.write_kubeconfig(state_dir, url, server.tokens)
    info = {
        "pid": os.getpid(),
        "port": port,
        "server": url,
        "runtime": type(server.runtime).__name__,
        "isolated": bool(getattr(server.runtime, "isolated", False)),
        "nodes": 1 + args.nodes,
    }
    tmp = state_dir / "server.json.tmp"
    tmp.write_text(json.dumps(info))
    tmp.replace(state_dir / "server.json")
    if ready is not None:
        ready.set()
    print(f"falcoir lab serving on {url} (state dir {state_dir})", file=sys.stderr, flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()
        for name in ("server.json", "lab.pid"):
            with contextlib.suppress(FileNotFoundError):
                (state_dir / name).unlink()


def main(argv: list[str] | None = None) -> None:
    args = _parse(sys.argv[1:] if argv is None else argv)
    args.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    (args.state_dir / "lab.pid").write_text(str(os.getpid()))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
