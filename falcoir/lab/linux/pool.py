"""The lab's mining "pool": a little stratum server on the node, for the miner scenario.

It listens on the lab gateway's port 3333 (``pool.example.com`` in every pod's
``/etc/hosts``), answers xmrig's JSON-RPC (``login``, ``keepalived``, ``submit``) and the
Bitcoin-style ``mining.subscribe``/``mining.authorize``/``mining.submit``, and appends
one JSON line per event to ``<state dir>/pool/received.jsonl``::

    {"ts": 1764340000.12, "peer": "10.213.7.2:40112", "event": "message", "method": "keepalived"}

``event`` is ``connect``, ``message`` or ``close``. Tests read it to see whether a pod
still reaches the pool (for example after a deny-egress NetworkPolicy).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

PORT = 3333
MAX_LINE = 64 * 1024


class StratumPool:
    def __init__(self, host: str, record_dir: Path, port: int = PORT) -> None:
        self.host = host
        self.port = port
        self.record_dir = record_dir
        self.record = record_dir / "received.jsonl"
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.record_dir.mkdir(parents=True, exist_ok=True)
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, limit=MAX_LINE, reuse_address=True
        )
        (self.record_dir / "address").write_text(f"{self.host}:{self.port}\n")

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._conns):
                w.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    def _log(self, peer: str, event: str, **extra: Any) -> None:
        line = json.dumps({"ts": round(time.time(), 3), "peer": peer, "event": event, **extra})
        with open(self.record, "a") as f:
            f.write(line + "\n")

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        addr = writer.get_extra_info("peername") or ("?", 0)
        peer = f"{addr[0]}:{addr[1]}"
        self._conns.add(writer)
        self._log(peer, "connect")
        try:
            while True:
                try:
                    raw = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError, ConnectionError):
                    break
                if not raw:
                    break
                try:
                    msg = json.loads(raw)
                except ValueError:
                    msg = None
                method = str(msg.get("method", "")) if isinstance(msg, dict) else ""
                self._log(peer, "message", method=method[:64], bytes=len(raw))
                if isinstance(msg, dict):
                    writer.write(json.dumps(_answer(msg)).encode() + b"\n")
                    with contextlib.suppress(ConnectionError):
                        await writer.drain()
        finally:
            self._conns.discard(writer)
            self._log(peer, "close")
            writer.close()


def _answer(msg: dict[str, Any]) -> dict[str, Any]:
    mid = msg.get("id")
    method = msg.get("method")
    if method == "login":
        job = {"blob": "0" * 152, "job_id": "1", "target": "b88d0600", "algo": "rx/0"}
        return {"id": mid, "jsonrpc": "2.0", "error": None,
                "result": {"id": "lab", "job": job, "status": "OK"}}  # fmt: skip
    if method == "keepalived":
        return {"id": mid, "jsonrpc": "2.0", "error": None, "result": {"status": "KEEPALIVED"}}
    if method == "mining.subscribe":
        return {"id": mid, "result": [[["mining.notify", "lab"]], "00000000", 4], "error": None}
    if method in ("mining.authorize", "mining.submit"):
        return {"id": mid, "result": True, "error": None}
    return {"id": mid, "jsonrpc": "2.0", "error": None, "result": {"status": "OK"}}


def read_records(state_dir: Path) -> list[dict[str, Any]]:
    """The pool's records so far (for tests and the scenario)."""
    path = state_dir / "pool" / "received.jsonl"
    out = []
    try:
        with open(path) as f:
            for line in f:
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
    except FileNotFoundError:
        pass
    return out


def messages_from(state_dir: Path, ip: str) -> int:
    """How many stratum messages the pool has received from ``ip`` (a pod IP) so far:
    take it twice a few seconds apart to see whether a pod still reaches its pool."""
    prefix = f"{ip}:"
    return sum(
        1
        for r in read_records(state_dir)
        if r.get("event") == "message" and str(r.get("peer", "")).startswith(prefix)
    )
