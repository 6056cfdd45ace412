"""Request authentication for the collector: key lookup, HMAC check, replay window (pure).

The signature scheme is :mod:`ixmeter.wire` (HMAC-SHA256, RFC 2104, over method, path,
timestamp, nonce and the body's SHA-256). A request is accepted only if its probe is known, its
timestamp is within ``max_skew_s`` of the collector's clock, one of the probe's keys verifies it
and its nonce was not seen within the replay window (twice the skew, so a nonce cannot be reused
while its timestamp is still acceptable). No clock is read here: callers pass ``now``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

from analyzer.collector.keys import KeyRing
from ixmeter.wire import HEADER_PROBE, MAX_SKEW_S, AuthError, verify

REASONS = ("unknown_probe", "missing_headers", "bad_timestamp", "stale_timestamp",
           "bad_signature", "replayed_nonce", "wrong_probe")


class NonceCache:
    """Nonces seen per probe, forgotten once their timestamp can no longer pass the skew
    check; bounded (the oldest are dropped first, which a replay cannot exploit because a
    dropped nonce's timestamp is older than every kept one)."""

    def __init__(self, window_s: float = 2 * MAX_SKEW_S, max_entries: int = 1_000_000) -> None:
        self.window_s = window_s
        self.max_entries = max_entries
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()

    def check_and_add(self, probe_id: str, nonce: str, now: float) -> bool:
        """True if new (and remember it); False if it is a replay."""
        self._expire(now)
        key = (probe_id, nonce)
        if key in self._seen:
            return False
        self._seen[key] = now
        if len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)
        return True

    def _expire(self, now: float) -> None:
        while self._seen:
            key, seen_at = next(iter(self._seen.items()))
            if now - seen_at <= self.window_s:
                break
            del self._seen[key]

    def __len__(self) -> int:
        return len(self._seen)


class Authenticator:
    """Checks a signed request against the key ring and the nonce cache."""

    def __init__(self, keys: KeyRing, max_skew_s: float = MAX_SKEW_S) -> None:
        self.keys = keys
        self.max_skew_s = max_skew_s
        self.nonces = NonceCache(2 * max_skew_s)

    def authenticate(self, headers: Mapping[str, str], method: str, path: str, body: bytes,
                     now: float, url_probe: str | None = None) -> str:
        """Return the authenticated probe id or raise :class:`AuthError` with a reason."""
        probe_id = _header(headers, HEADER_PROBE)
        if not probe_id:
            raise AuthError("missing_headers", f"missing {HEADER_PROBE} header")
        keys = self.keys.keys_for(probe_id)
        if not keys:
            raise AuthError("unknown_probe", f"probe {probe_id!r} has no key on this collector")
        nonce = self._verify_any(keys, headers, method, path, body, now)
        if url_probe is not None and url_probe != probe_id:
            raise AuthError("wrong_probe", f"probe {probe_id!r} cannot act for {url_probe!r}")
        if not self.nonces.check_and_add(probe_id, nonce, now):
            raise AuthError("replayed_nonce", f"nonce {nonce!r} was already used")
        return probe_id

    def _verify_any(self, keys: list[bytes], headers: Mapping[str, str], method: str,
                    path: str, body: bytes, now: float) -> str:
        error: AuthError | None = None
        for key in keys:
            try:
                return verify(key, headers, method, path, body, now, self.max_skew_s)
            except AuthError as exc:
                if exc.reason != "bad_signature":
                    raise
                error = exc
        assert error is not None
        raise error


def _header(headers: Mapping[str, str], name: str) -> str:
    for k, v in headers.items():
        if k.lower() == name.lower():
            return v
    return ""
