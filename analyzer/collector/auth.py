"""Request authentication for the collector: key lookup, HMAC check, replay window (pure).

The signature scheme is :mod:`ixmeter.core.wire` (HMAC-SHA256, RFC 2104, over method, path,
timestamp, nonce and the body's SHA-256, which the probe also sends in a header). Everything
but the body is checked from the request head, *before* the body is read
(:meth:`Authenticator.authenticate_head`): the headers' forms, a known probe, a timestamp within
``max_skew_s`` of the collector's clock, the HMAC with one of the probe's keys, and a nonce not
seen within the replay window (twice the skew, so a nonce cannot be reused while its timestamp
is still acceptable). Only a head that passes all of these is remembered, so a client without
a key cannot fill the nonce cache or burn a probe's nonces. Once read, the body is checked
against the signed digest (:func:`ixmeter.core.wire.verify_body`). No clock is read here: callers
pass ``now``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

from analyzer.collector.keys import KeyRing
from ixmeter.core.wire import (
    MAX_SKEW_S,
    AuthError,
    SignedHead,
    signed_head,
    verify_body,
    verify_head,
)

REASONS = ("unknown_probe", "missing_headers", "bad_timestamp", "stale_timestamp", "bad_nonce",
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

    def authenticate_head(self, headers: Mapping[str, str], method: str, path: str,
                          now: float, url_probe: str | None = None) -> SignedHead:
        """Check what the head of a request carries and remember its nonce; raise
        :class:`AuthError` with a reason. The body is then checked with :meth:`check_body`."""
        head = signed_head(headers)
        keys = self.keys.keys_for(head.probe_id)
        if not keys:
            raise AuthError("unknown_probe",
                            f"probe {head.probe_id!r} has no key on this collector")
        self._verify_any(keys, head, method, path, now)
        if url_probe is not None and url_probe != head.probe_id:
            raise AuthError("wrong_probe",
                            f"probe {head.probe_id!r} cannot act for {url_probe!r}")
        if not self.nonces.check_and_add(head.probe_id, head.nonce, now):
            raise AuthError("replayed_nonce", f"nonce {head.nonce!r} was already used")
        return head

    @staticmethod
    def check_body(head: SignedHead, body: bytes) -> None:
        """The body read after :meth:`authenticate_head` is the one its digest names."""
        verify_body(head, body)

    def authenticate(self, headers: Mapping[str, str], method: str, path: str, body: bytes,
                     now: float, url_probe: str | None = None) -> str:
        """Head and body at once (for a body already read); the authenticated probe id."""
        head = self.authenticate_head(headers, method, path, now, url_probe)
        self.check_body(head, body)
        return head.probe_id

    def _verify_any(self, keys: list[bytes], head: SignedHead, method: str, path: str,
                    now: float) -> None:
        error: AuthError | None = None
        for key in keys:
            try:
                verify_head(key, head, method, path, now, self.max_skew_s)
                return
            except AuthError as exc:
                if exc.reason != "bad_signature":
                    raise
                error = exc
        assert error is not None
        raise error
