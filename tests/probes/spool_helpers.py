"""Result factory shared by the spool, uploader and agent tests."""

from __future__ import annotations

from ixmeter.record import Method, Result, Status, TimestampSource, TypeP

PROBE = "cs-tianyi-zn-ct"


def result(seq: int, probe: str = PROBE, lost: bool = False) -> Result:
    return Result(
        probe_id=probe, method=Method.ICMP, src_site="cs-tianyi-zn", src_carrier="CT",
        dst_site="cs-yungu", dst_carrier="CM", src_addr="198.18.1.10", dst_addr="198.18.65.10",
        type_p=TypeP("icmp", 4, 64), seq=seq, sent_at_ns=1_790_000_000_000_000_000 + seq,
        status=Status.LOST if lost else Status.RECEIVED, tmax_ns=3_000_000_000,
        ts_source=TimestampSource.KERNEL, rtt_ns=None if lost else 1_000_000 + seq)
