"""Shared pieces of the store/collector benchmarks: a collector subprocess, signed uploads
with retries, pre-encoded batches (encoding is the probe's cost, not the collector's), and a
lean HTTP/1.1 client for presigned requests (signing is the probe's cost too, and httpx's
~1 ms of CPU per request on the client's core was as much as the collector's)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h11
import httpx
import trio

from analyzer.synthetic.varied import PATHS, make_batches
from ixmeter.core.wire import Batch, encode_columns, sign

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_keys(path: Path, probes: list[str]) -> dict[str, bytes]:
    keys = {p: os.urandom(32) for p in probes}
    path.write_text("".join(f"{p}: {k.hex()}\n" for p, k in keys.items()))
    return keys


class CollectorProcess:
    """``ixmeter collector serve`` in a subprocess, optionally pinned to one CPU."""

    def __init__(self, db: str, keys: Path, port: int, cpu: int | None = 0,
                 extra: tuple[str, ...] = (), src: Path = ROOT) -> None:
        self.db, self.keys, self.port, self.cpu, self.extra = db, keys, port, cpu, extra
        self.src = src  # the source tree the collector runs from (another commit's, to compare)
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> CollectorProcess:
        # retention off: the benchmark's results carry fixed 2026 send times
        cmd = [sys.executable, "-m", "ixmeter.cli", "collector", "serve", "--db", self.db,
               "--bind", f"127.0.0.1:{self.port}", "--keys", str(self.keys),
               "--retention-days", "0", *self.extra]
        if self.cpu is not None and shutil.which("taskset"):
            cmd = ["taskset", "-c", str(self.cpu), *cmd]
        self.proc = subprocess.Popen(cmd, cwd=self.src, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("collector did not start")

    def cpu_seconds(self) -> float:
        """CPU time (user + system, all threads) the collector has used so far (Linux /proc;
        taskset execs the collector, so its pid is the collector's)."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def bodies(probe: str, n_batches: int, size: int, templates: int = 4, seed: int = 1,
           encode: Callable[[Batch], bytes] = encode_columns,
           paths: tuple[tuple[str, str, str, str], ...] = PATHS) -> list[tuple[str, bytes]]:
    """(batch_id, body) pairs; a few encoded templates with the batch id swapped in. Wire v2
    (columnar, what probes send) unless ``encode`` says otherwise."""
    out = []
    encoded = [encode(b) for b in make_batches(probe, templates, size, seed=seed, paths=paths)]
    for k in range(n_batches):
        template = encoded[k % templates]
        old = f'"batch_id":"{probe}-b{k % templates}"'.encode()
        batch_id = f"{probe}-x{k}"
        out.append((batch_id, template.replace(old, f'"batch_id":"{batch_id}"'.encode(), 1)))
    return out


@dataclass
class Tally:
    """Per-batch outcomes seen by the uploading probes."""

    sent_batches: int = 0
    acked: set[tuple[str, str]] = field(default_factory=set)
    duplicate_acks: int = 0
    retries: int = 0
    errors: dict[str, int] = field(default_factory=dict)


async def upload(client: httpx.AsyncClient, url: str, key: bytes, probe: str, batch_id: str,
                 body: bytes, tally: Tally, retry_for: float = 120.0) -> None:
    """POST until acknowledged (re-signed each time: a new nonce), like the probe's uploader."""
    tally.sent_batches += 1
    deadline = time.monotonic() + retry_for
    while True:
        try:
            r = await client.post(url + "/v1/batches", content=body,
                                  headers=sign(key, probe, "POST", "/v1/batches", body,
                                               time.time()))
            if r.status_code == 200:
                answer = r.json()
                tally.acked.add((probe, batch_id))
                tally.duplicate_acks += answer["duplicate"]
                return
            reason = f"http {r.status_code}"
        except httpx.HTTPError as exc:
            reason = type(exc).__name__
        tally.errors[reason] = tally.errors.get(reason, 0) + 1
        if time.monotonic() > deadline:
            return
        tally.retries += 1
        await trio.sleep(0.2)


Raw = tuple[h11.Request, bytes]


def presigned(keys: dict[str, bytes], payloads: dict[str, list[tuple[str, bytes]]],
              host: str) -> list[Raw]:
    """One signed ``POST /v1/batches`` per batch, signed now (good for the collector's clock
    skew, 300 s by default)."""
    now = time.time()
    return [(h11.Request(method="POST", target="/v1/batches", headers=[
        ("Host", host), ("Content-Length", str(len(body))),
        *sign(keys[probe], probe, "POST", "/v1/batches", body, now).items()]), body)
        for probe, items in payloads.items() for _, body in items]


async def send_raw(host: str, port: int, requests: list[Raw],
                   concurrency: int) -> list[tuple[int, bytes]]:
    """Send the requests over ``concurrency`` keep-alive connections (request ``k`` on
    connection ``k % concurrency``); returns (status, body) per request, in order."""
    answers: list[tuple[int, bytes]] = [(0, b"")] * len(requests)

    async def connection(k: int) -> None:
        async with await trio.open_tcp_stream(host, port) as stream:
            conn = h11.Connection(h11.CLIENT)
            for i in range(k, len(requests), concurrency):
                request, body = requests[i]
                await stream.send_all((conn.send(request) or b"")
                                      + (conn.send(h11.Data(data=body)) if body else b"")
                                      + (conn.send(h11.EndOfMessage()) or b""))
                answers[i] = await _response(conn, stream)
                conn.start_next_cycle()

    async with trio.open_nursery() as nursery:
        for k in range(concurrency):
            nursery.start_soon(connection, k)
    return answers


async def _response(conn: h11.Connection, stream: trio.SocketStream) -> tuple[int, bytes]:
    status, body = 0, b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(65536))
        elif isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return status, body
        else:
            raise RuntimeError(f"collector closed the connection ({event!r})")
