"""``ixmeter keys``: generate, list and rotate per-probe HMAC keys (docs/collector.md), and
the operator's signing key for published chain heads (docs/auditor.md)."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from ixmeter.core.errors import IxmeterError


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    new = sub.add_parser("new", help="generate a key for a new probe (printed as hex)")
    new.add_argument("--probe", required=True, help="probe id, as in the inventory")
    new.add_argument("--out", help="also add it to this keys file (created 0600 if missing)")
    ls = sub.add_parser("list", help="probes in a keys file with key fingerprints (not keys)")
    ls.add_argument("--keys", required=True, help="keys file")
    rot = sub.add_parser("rotate", help="add a new key in front of a probe's keys (old ones "
                                        "stay valid until retired)")
    rot.add_argument("--probe", required=True)
    rot.add_argument("--keys", required=True, help="keys file")
    rot.add_argument("--retire", action="store_true",
                     help="instead: keep only the newest key of the probe")
    sig = sub.add_parser("signing", help="generate the operator's Ed25519 key that signs "
                                         "published chain heads (prints the public key)")
    sig.add_argument("--out", required=True, help="private key file to create (PEM, 0600)")


def fingerprint(key: bytes) -> str:
    """First 8 hex digits of sha256(key): identifies a key without revealing it."""
    return hashlib.sha256(key).hexdigest()[:8]


def run(args: argparse.Namespace) -> int:
    from analyzer.collector.keys import KeyRing, load_keys, new_key, save_keys

    if args.action == "list":
        ring = load_keys(args.keys)
        for probe in ring.probes():
            prints = " ".join(fingerprint(k) for k in ring.keys_for(probe))
            print(f"{probe}\t{prints}")
        return 0
    if args.action == "signing":
        from analyzer.heads import new_signing_key

        print(new_signing_key(args.out))
        return 0
    if args.action == "new":
        key = new_key()
        if args.out:
            ring = load_keys(args.out) if Path(args.out).exists() else KeyRing()
            if ring.keys_for(args.probe):
                raise IxmeterError(f"probe {args.probe!r} already has a key in {args.out}",
                                   hint="use 'ixmeter keys rotate' to replace it")
            ring.add(args.probe, key)
            save_keys(ring, args.out)
        print(key.hex())
        return 0
    ring = load_keys(args.keys)
    keys = ring.keys_for(args.probe)
    if not keys:
        raise IxmeterError(f"probe {args.probe!r} has no key in {args.keys}",
                           hint="create one with 'ixmeter keys new --probe ID --out FILE'")
    if args.retire:
        ring.add(args.probe, keys[0], retire_old=True)
        save_keys(ring, args.keys)
        print(f"{args.probe}: kept {fingerprint(keys[0])}, retired {len(keys) - 1} key(s)")
        return 0
    key = new_key()
    ring.add(args.probe, key)
    save_keys(ring, args.keys)
    print(key.hex())
    return 0
