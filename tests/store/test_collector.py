"""The collector over real HTTP on 127.0.0.1 (its HTTP/1.1 server in the test's nursery)."""

from __future__ import annotations

import contextlib
import json
import ssl
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgspec
import pytest
import trio

from analyzer.collector.app import Collector
from analyzer.collector.auth import Authenticator
from analyzer.collector.keys import KeyRing, load_keys
from analyzer.collector.openapi import openapi_document
from analyzer.collector.server import serve
from analyzer.store import Query, Retention, Store, open_store
from analyzer.store.writes import Writer
from analyzer.synthetic.varied import make_batches
from inventory.loader import default_inventory, load
from ixmeter.core import plan as plan_format
from ixmeter.core import wire
from ixmeter.core.wire import Batch, encode_columns, sign
from tests.conftest import require_tool
from tests.store.pgcluster import PgCluster

KEY_A, KEY_B, KEY_A_OLD = b"a" * 32, b"b" * 32, b"o" * 32
PROBE_A, PROBE_B = "cs-tianyi-zn-ct", "cs-yungu-ct"
ALL = Query(0, 2**62)


@dataclass
class Server:
    url: str
    store: Store
    collector: Collector
    client: httpx.AsyncClient

    async def post(self, key: bytes, probe: str, body: bytes, path: str = "/v1/batches",
                   now: float | None = None, headers: dict[str, str] | None = None
                   ) -> httpx.Response:
        h = headers or sign(key, probe, "POST", path, body, time.time() if now is None else now)
        return await self.client.post(self.url + path, content=body, headers=h)

    async def metric(self, line_start: str) -> float:
        text = (await self.client.get(self.url + "/metrics")).text
        for line in text.splitlines():
            if line.startswith(line_start):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def stored(self) -> int:
        return len(list(self.store.read_results(ALL)))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "collector.db"


@pytest.fixture
async def server(db_path: Path) -> AsyncIterator[Server]:
    store = open_store(db_path)
    keys = KeyRing({PROBE_A: [KEY_A, KEY_A_OLD], PROBE_B: [KEY_B]})
    collector = Collector(store, Authenticator(keys), load(default_inventory()),
                          max_body=256 * 1024)
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        [url] = await nursery.start(lambda task_status: serve(
            collector, "127.0.0.1:0", shutdown_trigger=stop.wait, task_status=task_status))
        async with httpx.AsyncClient(timeout=30) as client:
            yield Server(url, store, collector, client)
        stop.set()
    store.close()


def _batch(probe: str = PROBE_A, n: int = 50, k: int = 0) -> Batch:
    return make_batches(probe, k + 1, n)[k]


async def test_batch_accepted_once_and_resend_is_duplicate(server: Server) -> None:
    body = encode_columns(_batch())
    first = await server.post(KEY_A, PROBE_A, body)
    assert first.status_code == 200
    assert first.json()["accepted"] == 50
    assert first.json()["duplicate"] is False
    again = await server.post(KEY_A, PROBE_A, body)  # a retry: fresh nonce, same batch
    assert again.json() == {"accepted": 0, "duplicate": True,
                            "chain_head": first.json()["chain_head"]}
    assert server.stored() == 50
    assert server.store.chain_head().head == first.json()["chain_head"]
    stolen = await server.post(KEY_B, PROBE_B, body)  # B re-sends A's stored batch
    assert (stolen.status_code, stolen.json()["reason"]) == (403, "wrong_probe")
    assert await server.metric('ixmeter_collector_batches_total{outcome="duplicate"}') == 1


async def test_old_key_still_accepted_during_rotation(server: Server) -> None:
    response = await server.post(KEY_A_OLD, PROBE_A, encode_columns(_batch()))
    assert response.status_code == 200


async def _auth_case(server: Server, case: str) -> httpx.Response:
    body = encode_columns(_batch())
    if case == "unknown_probe":
        return await server.post(KEY_A, "nobody", body)
    if case == "bad_signature":
        return await server.post(KEY_B, PROBE_A, body)
    if case == "tampered_body":
        headers = sign(KEY_A, PROBE_A, "POST", "/v1/batches", body, time.time())
        return await server.post(KEY_A, PROBE_A, body + b" ", headers=headers)
    if case == "stale_timestamp":
        return await server.post(KEY_A, PROBE_A, body, now=time.time() - 3600)
    if case == "missing_headers":
        return await server.client.post(server.url + "/v1/batches", content=body)
    if case == "replayed_nonce":
        other = encode_columns(_batch(k=1))
        headers = sign(KEY_A, PROBE_A, "POST", "/v1/batches", other, time.time())
        assert (await server.post(KEY_A, PROBE_A, other, headers=headers)).status_code == 200
        return await server.post(KEY_A, PROBE_A, other, headers=headers)
    assert case == "wrong_probe"
    return await server.post(KEY_B, PROBE_B, body)  # B signs A's batch


@pytest.mark.parametrize(("case", "status", "reason"), [
    ("unknown_probe", 401, "unknown_probe"),
    ("bad_signature", 401, "bad_signature"),
    ("tampered_body", 401, "bad_signature"),
    ("stale_timestamp", 401, "stale_timestamp"),
    ("missing_headers", 401, "missing_headers"),
    ("replayed_nonce", 401, "replayed_nonce"),
    ("wrong_probe", 403, "wrong_probe"),
])
async def test_auth_failures_store_nothing_and_are_counted(
        server: Server, case: str, status: int, reason: str) -> None:
    response = await _auth_case(server, case)
    assert response.status_code == status
    assert response.json()["reason"] == reason
    assert server.stored() == (50 if case == "replayed_nonce" else 0)  # the first send only
    family = ("ixmeter_collector_rejected_total" if reason == "wrong_probe"
              else "ixmeter_collector_auth_failures_total")
    assert await server.metric(f'{family}{{reason="{reason}"}}') == 1
    assert (await server.post(KEY_A, PROBE_A, encode_columns(_batch(k=2)))).status_code == 200


def _bad_results_body(field: str, value: object) -> bytes:
    obj = json.loads(encode_columns(_batch(n=3)))
    obj["streams"][1][field] = value
    return json.dumps(obj).encode()


@pytest.mark.parametrize(("body", "status", "field", "needle"), [
    (b"{not json", 400, "body", "not valid JSON"),
    (b"[1, 2]", 400, "body", "expected `object`"),
    (json.dumps({"v": 9, "probe_id": PROBE_A, "batch_id": "x", "streams": []}).encode(),
     422, "v", "9"),
    (_bad_results_body("seq", "x"), 422, "streams[1].seq", "got `str`"),
    (_bad_results_body("status", 7), 422, "streams[1].status", "7 is not within 0..2"),
    (_bad_results_body("probe_id", PROBE_B), 422, "streams[1].probe_id", "unknown key"),
])
async def test_bad_input_names_field_and_value(server: Server, body: bytes, status: int,
                                               field: str, needle: str) -> None:
    response = await server.post(KEY_A, PROBE_A, body)
    assert response.status_code == status
    assert response.json()["field"] == field
    assert needle in response.json()["error"]
    assert server.stored() == 0
    assert (await server.client.get(server.url + "/healthz")).status_code == 200


async def _raw_post(url: str, headers: dict[str, str], body_parts: list[bytes]) -> int:
    """Send a request on a plain socket (so an early 413 is read even while the body is still
    being sent) and return the status code."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    lines = ["POST /v1/batches HTTP/1.1", f"Host: {host}", *[f"{k}: {v}" for k, v in
                                                             headers.items()], "", ""]
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        await stream.send_all("\r\n".join(lines).encode())
        with trio.move_on_after(5), contextlib.suppress(trio.BrokenResourceError):
            for part in body_parts:  # the server may answer and close before the end
                await stream.send_all(part)
        answer = b""
        while b"\r\n" not in answer:
            data = await stream.receive_some(65536)
            if not data:
                break
            answer += data
    return int(answer.split(b" ", 2)[1])


async def test_oversize_body_is_413_declared_or_streamed(server: Server) -> None:
    big = encode_columns(_batch(n=6000))
    assert len(big) > server.collector.max_body
    headers = sign(KEY_A, PROBE_A, "POST", "/v1/batches", big, time.time())
    declared = await _raw_post(server.url, {**headers, "Content-Length": str(len(big))}, [])
    assert declared == 413
    chunks = [b"%x\r\n%s\r\n" % (len(big[i:i + 16384]), big[i:i + 16384])
              for i in range(0, len(big), 16384)] + [b"0\r\n\r\n"]
    headers = sign(KEY_A, PROBE_A, "POST", "/v1/batches", big, time.time())  # a fresh nonce
    streamed = await _raw_post(server.url, {**headers, "Transfer-Encoding": "chunked"}, chunks)
    assert streamed == 413
    assert server.stored() == 0
    assert await server.metric('ixmeter_collector_rejected_total{reason="oversize"}') == 2
    assert (await server.post(KEY_A, PROBE_A, encode_columns(_batch()))).status_code == 200


async def test_other_methods_on_batches_are_405(server: Server) -> None:
    response = await server.client.get(server.url + "/v1/batches")
    assert (response.status_code, response.headers["allow"]) == (405, "POST")
    assert (await server.client.put(server.url + "/v1/batches", content=b"{}")).status_code == 405


async def test_client_gone_mid_body_is_not_answered_or_counted(server: Server) -> None:
    body = encode_columns(_batch())
    headers = sign(KEY_A, PROBE_A, "POST", "/v1/batches", body, time.time())
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    lines = ["POST /v1/batches HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}",
             *[f"{k}: {v}" for k, v in headers.items()], "", ""]
    stream = await trio.open_tcp_stream(host, int(port))
    await stream.send_all("\r\n".join(lines).encode() + body[:len(body) // 2])
    await stream.aclose()
    assert (await server.client.get(server.url + "/healthz")).status_code == 200
    assert server.stored() == 0
    assert await server.metric("ixmeter_collector_requests_total{route=\"batches\"") == 0
    assert await server.metric("ixmeter_collector_auth_failures_total") == 0
    assert (await server.post(KEY_A, PROBE_A, body)).status_code == 200  # re-signed, as probes do


async def test_inventory_for_probe(server: Server) -> None:
    path = f"/v1/probes/{PROBE_A}/inventory"
    headers = sign(KEY_A, PROBE_A, "GET", path, b"", time.time())
    response = await server.client.get(server.url + path, headers=headers)
    assert response.status_code == 200
    signed = plan_format.SignedPlan(response.content, response.headers[plan_format.HEADER])
    served = plan_format.verify(signed, [KEY_A])
    assert served["probe_id"] == PROBE_A
    # the rotation state: both accepted keys, newest first; a probe holding either can check it
    assert served["keys"] == [plan_format.fingerprint(k) for k in (KEY_A, KEY_A_OLD)]
    assert plan_format.verify(signed, [KEY_A_OLD]) == served
    plan = served["plan"]
    assert plan["probe"]["id"] == PROBE_A
    assert plan["specs"]
    assert plan["targets"]
    with pytest.raises(plan_format.PlanError):
        plan_format.verify(signed, [KEY_B])
    unsigned = await server.client.get(server.url + path)
    assert unsigned.status_code == 401


async def test_openapi_and_metrics(server: Server) -> None:
    doc = (await server.client.get(server.url + "/openapi.json")).json()
    assert {"/v1/batches", "/v1/probes/{probe_id}/heartbeat",
            "/v1/probes/{probe_id}/inventory", "/healthz"} <= set(doc["paths"])
    await server.post(KEY_A, PROBE_A, encode_columns(_batch()))
    assert await server.metric("ixmeter_collector_results_total") == 50


def test_openapi_documents_the_body_from_its_schema() -> None:
    """The documented body is the decoder's schema: the keys of its msgspec Structs, the
    required ones exactly those without a default."""
    schemas = openapi_document("x")["components"]["schemas"]
    for name, struct in (("WireBody", wire.WireBody), ("WireStream", wire.WireStream),
                         ("WireTypeP", wire.WireTypeP)):
        info = msgspec.structs.fields(struct)
        assert set(schemas[name]["properties"]) == {f.name for f in info}
        assert set(schemas[name]["required"]) == {f.name for f in info if f.required}


async def test_concurrent_probes_exactly_once(server: Server) -> None:
    batches = make_batches(PROBE_A, 8, 100) + make_batches(PROBE_B, 8, 100)
    codes: list[int] = []

    async def upload(b: Batch) -> None:
        key = KEY_A if b.probe_id == PROBE_A else KEY_B
        for _ in range(2):  # every batch sent twice, concurrently with the others
            codes.append((await server.post(key, b.probe_id, encode_columns(b))).status_code)

    async with trio.open_nursery() as nursery:
        for b in batches:
            nursery.start_soon(upload, b)
    assert codes == [200] * 32
    assert server.stored() == 1600
    assert server.store.chain_head().length == 16
    assert server.store.verify().ok


async def test_keys_file_reloaded_on_change(tmp_path: Path) -> None:
    keys = tmp_path / "keys.yaml"
    keys.write_text(f"{PROBE_A}: {KEY_A.hex()}\n")
    store = open_store(tmp_path / "k.db")
    collector = Collector(store, Authenticator(load_keys(keys)))
    stop = trio.Event()
    body = encode_columns(_batch(PROBE_B))
    async with trio.open_nursery() as nursery, httpx.AsyncClient(timeout=30) as client:
        [url] = await nursery.start(lambda task_status: serve(
            collector, "127.0.0.1:0", keys_path=str(keys), shutdown_trigger=stop.wait,
            task_status=task_status))

        async def post() -> int:
            headers = sign(KEY_B, PROBE_B, "POST", "/v1/batches", body, time.time())
            return (await client.post(url + "/v1/batches", content=body,
                                      headers=headers)).status_code

        assert await post() == 401
        keys.write_text(f"{PROBE_A}: {KEY_A.hex()}\n{PROBE_B}: {KEY_B.hex()}\n")
        codes = []
        for _ in range(50):  # the watcher polls every 2 s
            codes.append(await post())
            if codes[-1] == 200:
                break
            await trio.sleep(0.2)
        assert codes[-1] == 200
        stop.set()
    store.close()


async def test_retention_prunes_old_results(tmp_path: Path) -> None:
    store = open_store(tmp_path / "r.db")
    assert isinstance(store, Writer)
    store.write_batch(_batch(), time.time_ns())  # results sent in May 2026, long ago
    collector = Collector(store, Authenticator(KeyRing({PROBE_A: [KEY_A]})))
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: serve(
            collector, "127.0.0.1:0", retention=Retention(raw_days=1 / 1440),
            shutdown_trigger=stop.wait,
            task_status=task_status))
        with trio.fail_after(10):  # read on the store thread too: one connection, one thread
            while True:
                if not await collector.in_store_thread(lambda: list(store.read_results(ALL))):
                    break
                await trio.sleep(0.05)
        stop.set()
    kinds = [row[0] for row in store.db.execute("SELECT kind FROM links ORDER BY idx")]
    assert kinds == ["batch", "fold", "prune"]  # the chain stays and records both
    assert store.verify().ok
    store.close()


@pytest.mark.postgres
async def test_two_collectors_on_one_postgres_store_once(pg_cluster: PgCluster) -> None:
    """Several collectors behind a load balancer: one chain, each batch stored once."""
    url = pg_cluster.new_database()
    keys = KeyRing({PROBE_A: [KEY_A], PROBE_B: [KEY_B]})
    stores = [open_store(url), open_store(url)]
    collectors = [Collector(s, Authenticator(keys)) for s in stores]
    stop = trio.Event()
    batches = make_batches(PROBE_A, 6, 100) + make_batches(PROBE_B, 6, 100)
    acks: list[bool] = []
    async with trio.open_nursery() as nursery, httpx.AsyncClient(timeout=30) as client:
        urls = [(await nursery.start(lambda task_status, c=c: serve(
            c, "127.0.0.1:0", shutdown_trigger=stop.wait, task_status=task_status)))[0]
            for c in collectors]

        async def send(b: Batch, base: str) -> None:
            key = KEY_A if b.probe_id == PROBE_A else KEY_B
            body = encode_columns(b)
            r = await client.post(base + "/v1/batches", content=body,
                                  headers=sign(key, b.probe_id, "POST", "/v1/batches", body,
                                               time.time()))
            assert r.status_code == 200
            acks.append(r.json()["duplicate"])

        async with trio.open_nursery() as senders:
            for b in batches:  # every batch to both collectors at once
                for base in urls:
                    senders.start_soon(send, b, base)
        stop.set()
    assert sorted(acks) == [False] * 12 + [True] * 12
    assert stores[0].chain_head().length == 12
    assert len(list(stores[1].read_results(ALL))) == 1200
    assert stores[1].verify().ok
    for s in stores:
        s.close()


async def test_serves_on_ipv6_loopback(tmp_path: Path) -> None:
    store = open_store(tmp_path / "v6.db")
    collector = Collector(store, Authenticator(KeyRing({PROBE_A: [KEY_A]})))
    stop = trio.Event()
    body = encode_columns(_batch())
    async with trio.open_nursery() as nursery, httpx.AsyncClient(timeout=30) as client:
        [url] = await nursery.start(lambda task_status: serve(
            collector, "[::1]:0", shutdown_trigger=stop.wait, task_status=task_status))
        assert url.startswith("http://[::1]:")
        response = await client.post(url + "/v1/batches", content=body, headers=sign(
            KEY_A, PROBE_A, "POST", "/v1/batches", body, time.time()))
        assert response.json()["accepted"] == 50
        stop.set()
    store.close()


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 and its key."""
    openssl = require_tool("openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


async def test_serves_https_with_certfile(tmp_path: Path,
                                          self_signed: tuple[Path, Path]) -> None:
    cert, key = self_signed
    store = open_store(tmp_path / "tls.db")
    collector = Collector(store, Authenticator(KeyRing({PROBE_A: [KEY_A]})))
    stop = trio.Event()
    body = encode_columns(_batch())
    ctx = ssl.create_default_context(cafile=str(cert))
    async with trio.open_nursery() as nursery, httpx.AsyncClient(timeout=30, verify=ctx) as c:
        [url] = await nursery.start(lambda task_status: serve(
            collector, "127.0.0.1:0", tls=(str(cert), str(key)), shutdown_trigger=stop.wait,
            task_status=task_status))
        assert url.startswith("https://")
        response = await c.post(url + "/v1/batches", content=body, headers=sign(
            KEY_A, PROBE_A, "POST", "/v1/batches", body, time.time()))
        assert response.json()["accepted"] == 50
        stop.set()
    store.close()
