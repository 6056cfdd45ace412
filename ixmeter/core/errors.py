"""One exception base for the project; the CLI turns it into one actionable line."""

from __future__ import annotations


class IxmeterError(Exception):
    """Base of every error ixmeter raises on purpose.

    ``hint`` says what the user can do about it ("grant CAP_NET_RAW ...").
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base} ({self.hint})" if self.hint else base


class RecordError(IxmeterError):
    """A result record or batch that does not match its schema; names the field and value."""


class PermissionProblem(IxmeterError):
    """A privilege (capability, sysctl, root) that an operation needs is missing."""


class MalformedPacket(IxmeterError):
    """Bytes that are not a well-formed packet of the kind a codec expects (an ICMP echo, a
    STAMP test packet, an IP header); the message says which kind and what is wrong. Every
    codec raises this one class, so a caller counts and drops a malformed packet the same way
    whichever codec read it."""
