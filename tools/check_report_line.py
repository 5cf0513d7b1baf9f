#!/usr/bin/env python3
"""Check one line of a gezinsdossier who-saw-what report without trusting the server.

Needs only Python's standard library and the `cryptography` package (for Ed25519).

Input: a JSON file with the line as the report gave it and the keys you trust:

    {
      "line": "<base64>",            ReportEntry.line
      "line_salt": "<base64>",       ReportEntry.line_salt
      "line_index": 0,               ReportEntry.line_index
      "canonical_event": "<base64>", ReportEntry.canonical_event
      "position": 17,                ReportEntry.position
      "inclusion_proof": ["<base64>", ...],   ReportEntry.inclusion_proof
      "checkpoint": "<note text>",   AccessReport.tree_head.checkpoint, or a cosigned one
      "log_public_key": "<hex>",     the log's Ed25519 key (gezinsdossier public-key)
      "witness_keys": ["<vkey>"]     optional: witnesses that must have cosigned
    }

It checks, in order:
1. the line's commitment, SHA-256("gezinsdossier line v1\\n" || salt || line), is
   commitment number line_index in the sealed payload inside canonical_event;
2. the leaf, SHA-256(0x00 || canonical_event), is at `position` in the tree of the
   checkpoint's size, by the inclusion proof (RFC 9162, 2.1.3.2);
3. the checkpoint (c2sp.org/tlog-checkpoint) is signed by the log's key under its origin,
   and cosigned (c2sp.org/tlog-cosignature, cosignature/v1) by every witness key given.
Then it prints the line. Exit status 0 only when every check passes.
"""

import base64
import hashlib
import json
import struct
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

LINE_PREFIX = b"gezinsdossier line v1\n"
SEALED_MAGIC = b"\x00GZS"


class CheckFailed(Exception):
    pass


def sha256(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()


def payload_of(canonical):
    """The payload field of an event's canonical bytes (layout in log.proto)."""
    if canonical[:1] != b"\x01":
        raise CheckFailed("canonical bytes: unknown format version")
    at = 1
    (n,) = struct.unpack_from(">I", canonical, at)
    at += 4 + n + 8 + 16  # stream name, revision, event id
    (n,) = struct.unpack_from(">I", canonical, at)
    at += 4 + n + 8  # event type, recorded-at
    (n,) = struct.unpack_from(">I", canonical, at)
    at += 4
    payload = canonical[at : at + n]
    if len(payload) != n or len(canonical) != at + n + 32:
        raise CheckFailed("canonical bytes: lengths do not add up")
    return payload


def line_commitments(payload):
    if payload[:4] != SEALED_MAGIC or payload[4:5] != b"\x02":
        raise CheckFailed("the event's payload carries no line commitments")
    (count,) = struct.unpack_from(">H", payload, 4 + 1 + 16)
    start = 4 + 1 + 16 + 2
    return [payload[start + 32 * i : start + 32 * (i + 1)] for i in range(count)]


def root_from_inclusion(leaf, index, size, path):
    if index >= size:
        raise CheckFailed(f"position {index} is not in a tree of {size}")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise CheckFailed("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = sha256(b"\x01", p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = sha256(b"\x01", r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise CheckFailed("inclusion proof is too short")
    return r


def parse_note(note):
    """Text (with its final newline) and signature lines (name, key id, signature)."""
    split = note.rfind("\n\n")
    if split < 0:
        raise CheckFailed("checkpoint: no blank line before the signatures")
    text, sigs = note[: split + 1], note[split + 2 :]
    signatures = []
    for line in sigs.splitlines():
        if not line.startswith("\u2014 "):
            raise CheckFailed(f"checkpoint: bad signature line {line[:32]!r}")
        name, b64 = line[2:].split(" ", 1)
        raw = base64.b64decode(b64, validate=True)
        signatures.append((name, raw[:4], raw[4:]))
    return text, signatures


def key_id(name, sig_type, public_key):
    return sha256(name.encode(), b"\n", bytes([sig_type]), public_key)[:4]


def check_checkpoint(note, log_public_key, witness_vkeys):
    text, signatures = parse_note(note)
    lines = text.split("\n")
    origin, size, root = lines[0], int(lines[1]), base64.b64decode(lines[2], validate=True)
    wanted = key_id(origin, 0x01, log_public_key)
    signed = [s for (n, k, s) in signatures if n == origin and k == wanted]
    if not signed:
        raise CheckFailed(f"checkpoint: no signature of the log {origin}")
    try:
        Ed25519PublicKey.from_public_bytes(log_public_key).verify(signed[0], text.encode())
    except InvalidSignature:
        raise CheckFailed("checkpoint: the log's signature does not verify") from None
    for vkey in witness_vkeys:
        name, hex_id, b64 = vkey.split("+", 2)
        material = base64.b64decode(b64, validate=True)
        if material[0] != 0x04 or key_id(name, 0x04, material[1:]) != bytes.fromhex(hex_id):
            raise CheckFailed(f"witness key {name}: not a cosignature/v1 key")
        cosigs = [s for (n, k, s) in signatures if n == name and k == bytes.fromhex(hex_id)]
        if not cosigs:
            raise CheckFailed(f"checkpoint: no cosignature from witness {name}")
        (timestamp,) = struct.unpack(">Q", cosigs[0][:8])
        message = f"cosignature/v1\ntime {timestamp}\n".encode() + text.encode()
        try:
            Ed25519PublicKey.from_public_bytes(material[1:]).verify(cosigs[0][8:], message)
        except InvalidSignature:
            raise CheckFailed(f"checkpoint: the cosignature of {name} does not verify") from None
    return origin, size, root


def check(given):
    b64 = lambda k: base64.b64decode(given[k], validate=True)  # noqa: E731
    line, salt, canonical = b64("line"), b64("line_salt"), b64("canonical_event")
    commitments = line_commitments(payload_of(canonical))
    index = given["line_index"]
    if index >= len(commitments) or commitments[index] != sha256(LINE_PREFIX, salt, line):
        raise CheckFailed("the line is not what the event committed to")
    origin, size, root = check_checkpoint(
        given["checkpoint"], bytes.fromhex(given["log_public_key"]), given.get("witness_keys", [])
    )
    path = [base64.b64decode(p, validate=True) for p in given["inclusion_proof"]]
    if root_from_inclusion(sha256(b"\x00", canonical), given["position"], size, path) != root:
        raise CheckFailed("the event is not in the checkpoint's tree")
    return origin, size, json.loads(line)


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        given = json.load(f)
    try:
        origin, size, line = check(given)
    except (CheckFailed, KeyError, ValueError, IndexError, struct.error) as e:
        print(f"NOT OK: {e}", file=sys.stderr)
        return 1
    print(f"OK: this line is in {origin} at size {size}")
    print(json.dumps(line, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
