#!/usr/bin/env python3
"""Independent verifier for authledger v1 signed event logs.

Written from the normative spec ``schemas/README.md`` alone (no reference to the
Rust implementation). Standard library only: Ed25519 verification is implemented
here following RFC 8032 section 5.1 with plain integer arithmetic, SHA-256 and
SHA-512 come from hashlib, base64 from the base64 module.

Usage:
    verify.py --vectors tests/data/vectors.json
    verify.py --log dump.jsonl --trusted-key BASE64 [--trusted-key BASE64 ...]

Exit status: 0 when everything verifies (or, in --vectors mode, when every check
behaves as expected), 1 otherwise, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import re
import sys

# --------------------------------------------------------------------------
# Ed25519 (RFC 8032, section 5.1), pure integer arithmetic.
# --------------------------------------------------------------------------

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493  # group order
D = (-121665 * pow(121666, P - 2, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)

# Points are in extended homogeneous coordinates (X, Y, Z, T), x = X/Z, y = Y/Z,
# x*y = T/Z (RFC 8032 section 5.1.4).
IDENTITY = (0, 1, 1, 0)


def _point_add(p1, p2):
    x1, y1, z1, t1 = p1
    x2, y2, z2, t2 = p2
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = 2 * t1 * t2 * D % P
    d = 2 * z1 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _point_double(p1):
    # Doubling is a special case of the (complete) addition law.
    return _point_add(p1, p1)


def _scalar_mult(s, pt):
    q = IDENTITY
    while s > 0:
        if s & 1:
            q = _point_add(q, pt)
        pt = _point_double(pt)
        s >>= 1
    return q


def _point_equal(p1, p2):
    x1, y1, z1, _ = p1
    x2, y2, z2, _ = p2
    return (x1 * z2 - x2 * z1) % P == 0 and (y1 * z2 - y2 * z1) % P == 0


def _recover_x(y, sign):
    """RFC 8032 section 5.1.3 steps 2-4. Returns None when decoding fails."""
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        if sign:
            return None
        return 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None
    if (x & 1) != sign:
        x = P - x
    return x


def _point_decompress(s: bytes):
    """RFC 8032 section 5.1.3. Rejects non-canonical y (y >= p) and x=0 with sign 1."""
    if len(s) != 32:
        return None
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % P)


def _point_compress(pt) -> bytes:
    x, y, z, _ = pt
    zinv = pow(z, P - 2, P)
    x = x * zinv % P
    y = y * zinv % P
    return int.to_bytes(y | ((x & 1) << 255), 32, "little")


_GY = 4 * pow(5, P - 2, P) % P
_GX = _recover_x(_GY, 0)
BASE = (_GX, _GY, 1, _GX * _GY % P)


def ed25519_public_key_from_seed(seed: bytes) -> bytes:
    """RFC 8032 section 5.1.5 (used only to cross-check the test vectors)."""
    if len(seed) != 32:
        raise ValueError("Ed25519 seed must be 32 bytes")
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    return _point_compress(_scalar_mult(a, BASE))


def _is_canonical(s: bytes) -> bool:
    """Section 3: y < p, and the sign bit is clear when x = 0 (y = 1 or y = p - 1)."""
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    return y < P and not (sign and y in (1, P - 1))


def _is_small_order(pt) -> bool:
    return _point_equal(_scalar_mult(8, pt), IDENTITY)


def ed25519_problem(public: bytes, msg: bytes, sig: bytes):
    """Section 3: RFC 8032 section 5.1.7 with strict encodings (the verify_strict rule).

    Returns None when the signature is valid, else what is wrong with it.
    """
    if len(public) != 32 or len(sig) != 64:
        return "wrong length"
    s = int.from_bytes(sig[32:], "little")
    if s >= L:
        return "S >= L"
    if not _is_canonical(public):
        return "non-canonical public key"
    a_pt = _point_decompress(public)
    if a_pt is None:
        return "public key does not decode"
    if _is_small_order(a_pt):
        return "small-order public key"
    r_bytes = sig[:32]
    if not _is_canonical(r_bytes):
        return "non-canonical R"
    r_pt = _point_decompress(r_bytes)
    if r_pt is None:
        return "R does not decode"
    if _is_small_order(r_pt):
        return "small-order R"
    k = int.from_bytes(hashlib.sha512(r_bytes + public + msg).digest(), "little") % L
    # The cofactorless equation [S]B = R + [k]A.
    lhs = _scalar_mult(s, BASE)
    rhs = _point_add(r_pt, _scalar_mult(k, a_pt))
    if not _point_equal(lhs, rhs):
        return "equation [S]B = R + [k]A does not hold"
    return None


def ed25519_verify(public: bytes, msg: bytes, sig: bytes) -> bool:
    return ed25519_problem(public, msg, sig) is None


# --------------------------------------------------------------------------
# Spec sections 2-5: envelope, PAE, key ids, hashes.
# --------------------------------------------------------------------------

PAYLOAD_TYPE = "application/vnd.authledger.event.v1+json"
DEFAULT_SUBJECT_PREFIX = "ledger"


def pae(payload_type: bytes, body: bytes) -> bytes:
    """Section 3: DSSEv1 pre-authentication encoding."""
    return b" ".join(
        [
            b"DSSEv1",
            str(len(payload_type)).encode("ascii"),
            payload_type,
            str(len(body)).encode("ascii"),
            body,
        ]
    )


def key_id_of(public: bytes) -> str:
    """Section 4."""
    return "ed25519:" + hashlib.sha256(public).hexdigest()[:16]


def event_hash(envelope: bytes) -> str:
    """Section 5."""
    return "sha256:" + hashlib.sha256(envelope).hexdigest()


def b64decode_strict(text, what: str) -> bytes:
    """Standard base64 with padding (RFC 4648 section 4); canonical encodings only."""
    if not isinstance(text, str):
        raise VerifyError(f"{what} is not a base64 string")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise VerifyError(f"{what} is not valid standard padded base64 ({exc})") from None
    if base64.b64encode(raw).decode("ascii") != text:
        # Non-zero padding bits or similar: decodes, but is not the canonical encoding.
        raise VerifyError(f"{what} is not canonical standard padded base64")
    return raw


class VerifyError(Exception):
    pass


def _no_duplicates(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise VerifyError(f"duplicate JSON key {key!r}")
        obj[key] = value
    return obj


def _reject_constant(name):
    raise VerifyError(f"non-standard JSON constant {name}")


def _reject_surrogates(value, what):
    """Section 2: a lone surrogate (an escape like \\ud800 unpaired) is not Unicode text."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if any(0xD800 <= ord(c) <= 0xDFFF for c in v):
                raise VerifyError(f"{what} holds a lone surrogate")
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)


def parse_json_strict(raw: bytes, what: str):
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise VerifyError(f"{what} is not UTF-8 ({exc})") from None
    try:
        value = json.loads(
            text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant
        )
        _reject_surrogates(value, what)
        return value
    except VerifyError as exc:
        raise VerifyError(f"{what}: {exc}") from None
    except ValueError as exc:
        raise VerifyError(f"{what} does not parse as JSON ({exc})") from None


# --------------------------------------------------------------------------
# Section 1: body fields.
# --------------------------------------------------------------------------

RE_UUIDV7 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
RE_WORKSPACE = re.compile(r"[A-Za-z0-9_-]{1,128}")
RE_AGG_TYPE = re.compile(r"[a-z_]{1,64}")
RE_AGG_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
RE_KIND = re.compile(r"[a-z_]+\.[a-z_]+")
RE_HASH = re.compile(r"sha256:[0-9a-f]{64}")
RE_KEY_ID = re.compile(r"ed25519:[0-9a-f]{16}")
RE_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})"
)
ACTOR_TYPES = {"system", "api_key", "user", "member", "agent", "anonymous"}
BODY_FIELDS = [
    "event_id", "workspace_id", "aggregate_type", "aggregate_id", "aggregate_version",
    "kind", "schema_version", "occurred_at", "actor", "payload", "prev_hash", "key_id",
]
# Present only on some events (section 1): the W3C trace id of the request that appended it.
OPTIONAL_BODY_FIELDS = ["trace_id"]
RE_TRACE_ID = re.compile(r"[0-9a-f]{32}")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_str(body, field, regex):
    v = body[field]
    if not isinstance(v, str) or not regex.fullmatch(v):
        raise VerifyError(f"body field {field} is malformed: {v!r}")


def check_body_shape(body) -> None:
    """Section 1 (and events/v1/body.json): fields, types and formats."""
    if not isinstance(body, dict):
        raise VerifyError("body is not a JSON object")
    missing = [f for f in BODY_FIELDS if f not in body]
    if missing:
        raise VerifyError(f"body lacks field(s) {', '.join(missing)}")
    extra = sorted(set(body) - set(BODY_FIELDS) - set(OPTIONAL_BODY_FIELDS))
    if extra:
        raise VerifyError(f"body has unknown field(s) {', '.join(extra)}")
    _check_str(body, "event_id", RE_UUIDV7)
    _check_str(body, "workspace_id", RE_WORKSPACE)
    _check_str(body, "aggregate_type", RE_AGG_TYPE)
    _check_str(body, "aggregate_id", RE_AGG_ID)
    _check_str(body, "kind", RE_KIND)
    _check_str(body, "occurred_at", RE_RFC3339)
    _check_str(body, "key_id", RE_KEY_ID)
    for field in ("aggregate_version", "schema_version"):
        v = body[field]
        if not _is_int(v) or v < 1:
            raise VerifyError(f"body field {field} is not an integer >= 1: {v!r}")
    actor = body["actor"]
    if (
        not isinstance(actor, dict)
        or set(actor) != {"type", "id"}
        or actor["type"] not in ACTOR_TYPES
        or not isinstance(actor["id"], str)
        or not actor["id"]
    ):
        raise VerifyError(f"body field actor is malformed: {actor!r}")
    if not isinstance(body["payload"], dict):
        raise VerifyError("body field payload is not a JSON object")
    ph = body["prev_hash"]
    if ph is not None and (not isinstance(ph, str) or not RE_HASH.fullmatch(ph)):
        raise VerifyError(f"body field prev_hash is malformed: {ph!r}")
    if "trace_id" in body:
        tid = body["trace_id"]
        if not isinstance(tid, str) or not RE_TRACE_ID.fullmatch(tid) or tid == "0" * 32:
            raise VerifyError(f"body field trace_id is malformed: {tid!r}")


# --------------------------------------------------------------------------
# Section 7: walking a log.
# --------------------------------------------------------------------------


class TrustStore:
    """Trusted public keys, indexed by key id (section 4)."""

    def __init__(self):
        self.by_id: dict[str, list[bytes]] = {}

    def add(self, public: bytes) -> str:
        kid = key_id_of(public)
        keys = self.by_id.setdefault(kid, [])
        if public not in keys:
            keys.append(public)
        return kid

    def candidates(self, kid: str) -> list[bytes]:
        return list(self.by_id.get(kid, []))


def merkle_tree_hash(leaf_data: list[bytes]) -> bytes:
    """Section 7a: RFC 9162 section 2.1.1 Merkle Tree Hash over the leaf data d_i.

    Built bottom-up; an unpaired last node is carried up a level unchanged, which gives
    the same tree as RFC 9162's split at the largest power of two below n.
    """
    if not leaf_data:
        return hashlib.sha256(b"").digest()
    level = [hashlib.sha256(b"\x00" + d).digest() for d in leaf_data]
    while len(level) > 1:
        nxt = [
            hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest()
            for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


CHECKPOINT_AGGREGATE = ("system", "checkpoint", "ledger")
CHECKPOINT_FIELDS = {
    "sequence", "from_position", "to_position", "count", "tree_size", "merkle_root",
    "previous_tree_size", "previous_root",
}
RE_HEX64 = re.compile(r"[0-9a-f]{64}")


def check_checkpoint(payload, position: int, leaves: list[bytes], last) -> dict:
    """Section 7a for one ledger.checkpoint. `last` is the previous checkpoint's payload
    (None for the first); `leaves` the leaf data d_i of positions 1..position-1."""
    # Section 7c: an optional `note`, the same commitment as a C2SP signed note.
    if not isinstance(payload, dict) or set(payload) - {"note"} != CHECKPOINT_FIELDS:
        raise VerifyError(f"checkpoint payload fields are {sorted(payload)}, expected "
                          f"{sorted(CHECKPOINT_FIELDS)} (and optionally note)")
    if "note" in payload and not isinstance(payload["note"], str):
        raise VerifyError("checkpoint note is not a string")
    for f in ("sequence", "from_position", "to_position", "count", "tree_size"):
        if not _is_int(payload[f]) or payload[f] < 1:
            raise VerifyError(f"checkpoint {f} is not an integer >= 1")
    if not isinstance(payload["merkle_root"], str) or not RE_HEX64.fullmatch(payload["merkle_root"]):
        raise VerifyError("checkpoint merkle_root is not 64 lowercase hex digits")
    seq = 1 if last is None else last["sequence"] + 1
    if payload["sequence"] != seq:
        raise VerifyError(f"checkpoint sequence {payload['sequence']}, expected {seq}")
    prev_size = 0 if last is None else last["tree_size"]
    size = payload["tree_size"]
    if not prev_size < size < position:
        raise VerifyError(f"checkpoint tree_size {size} must exceed {prev_size} and be "
                          f"below its own position {position}")
    expected = {
        "from_position": prev_size + 1,
        "to_position": size,
        "count": size - prev_size,
        "previous_tree_size": None if last is None else last["tree_size"],
        "previous_root": None if last is None else last["merkle_root"],
    }
    for f, want in expected.items():
        got = payload[f]
        if type(got) is not type(want) or got != want:
            raise VerifyError(f"checkpoint {f} is {got!r}, expected {want!r}")
    root = merkle_tree_hash(leaves[:size]).hex()
    if root != payload["merkle_root"]:
        raise VerifyError(f"checkpoint {seq} merkle_root {payload['merkle_root']} is not the "
                          f"root of positions 1..{size} ({root})")
    return payload


class LogVerifier:
    def __init__(self, trust: TrustStore, subject_prefix: str = DEFAULT_SUBJECT_PREFIX):
        self.trust = trust
        self.subject_prefix = subject_prefix
        self.last_position = 0
        self.aggregates: dict[tuple[str, str, str], tuple[int, str]] = {}
        self.seen_event_ids: set[str] = set()
        self.count = 0
        self.leaves: list[bytes] = []  # d_i = SHA-256(envelope) of positions 1..last
        self.first_event_id = None     # names the log: its origin (section 7c)
        self.last_checkpoint = None
        self.checkpoints = 0

    def uncovered(self) -> int:
        covered = self.last_checkpoint["tree_size"] if self.last_checkpoint else 0
        return self.last_position - covered

    def _parse_subject(self, subject):
        if not isinstance(subject, str):
            raise VerifyError(f"subject is not a string: {subject!r}")
        prefix = self.subject_prefix + "."
        if not subject.startswith(prefix):
            raise VerifyError(f"subject {subject!r} does not start with {prefix!r}")
        parts = subject[len(prefix):].split(".")
        if len(parts) != 3:
            raise VerifyError(
                f"subject {subject!r} is not {prefix}<workspace_id>.<aggregate_type>.<aggregate_id>"
            )
        return tuple(parts)

    def add(self, position, subject, envelope: bytes, indexed_version=None) -> str:
        """Verify one event and fold it into the state. Returns its hash.

        Raises VerifyError naming the first failed check; the state is then
        left unchanged.
        """
        # 1. position
        if not _is_int(position):
            raise VerifyError(f"position is not an integer: {position!r}")
        if position != self.last_position + 1:
            raise VerifyError(
                f"position gap: expected position {self.last_position + 1}, got {position}"
            )

        # 2. envelope parses, payloadType, signature is 64 bytes
        env = parse_json_strict(envelope, "envelope")
        if not isinstance(env, dict):
            raise VerifyError("envelope is not a JSON object")
        if set(env) != {"payloadType", "payload", "signatures"}:
            raise VerifyError(
                f"envelope fields are {sorted(env)}, expected payloadType, payload, signatures"
            )
        if env["payloadType"] != PAYLOAD_TYPE:
            raise VerifyError(f"payloadType is {env['payloadType']!r}, expected {PAYLOAD_TYPE!r}")
        body_bytes = b64decode_strict(env["payload"], "envelope payload")
        sigs = env["signatures"]
        if not isinstance(sigs, list) or len(sigs) != 1:
            raise VerifyError("envelope signatures must hold exactly one entry")
        sig_entry = sigs[0]
        if not isinstance(sig_entry, dict) or set(sig_entry) != {"keyid", "sig"}:
            raise VerifyError("envelope signature entry must be {keyid, sig}")
        keyid = sig_entry["keyid"]
        if not isinstance(keyid, str):
            raise VerifyError("signature keyid is not a string")
        sig = b64decode_strict(sig_entry["sig"], "signature")
        if len(sig) != 64:
            raise VerifyError(f"signature decodes to {len(sig)} bytes, expected 64")
        body = parse_json_strict(body_bytes, "body")
        check_body_shape(body)

        # 3. keyid == body key_id, and the key is trusted
        if keyid != body["key_id"]:
            raise VerifyError(
                f"signature keyid {keyid!r} differs from body key_id {body['key_id']!r}"
            )
        keys = self.trust.candidates(keyid)
        if not keys:
            raise VerifyError(f"unknown key {keyid}: not trusted (initial set or rotation)")

        # 4. Ed25519 signature over PAE(payloadType, body)
        message = pae(PAYLOAD_TYPE.encode("utf-8"), body_bytes)
        if not any(ed25519_verify(k, message, sig) for k in keys):
            raise VerifyError(f"signature verification failed under trusted key {keyid}")

        # 5. filed-under aggregate == body aggregate
        agg = (body["workspace_id"], body["aggregate_type"], body["aggregate_id"])
        filed = self._parse_subject(subject)
        if filed != agg:
            raise VerifyError(
                f"subject {subject!r} files the event under {'/'.join(filed)}, "
                f"but the body says {'/'.join(agg)}"
            )

        if indexed_version is not None and indexed_version != body["aggregate_version"]:
            raise VerifyError(
                f"indexed as version {indexed_version!r}, but the body says "
                f"{body['aggregate_version']}"
            )

        # 6. unique event id
        if body["event_id"] in self.seen_event_ids:
            raise VerifyError(f"duplicate event_id {body['event_id']}")

        # 7. version, 8. prev_hash chain
        last_version, last_hash = self.aggregates.get(agg, (0, None))
        version = body["aggregate_version"]
        if version != last_version + 1:
            raise VerifyError(
                f"chain broken: aggregate {'/'.join(agg)} version is {version}, "
                f"expected {last_version + 1}"
            )
        if body["prev_hash"] != last_hash:
            raise VerifyError(
                f"chain broken: prev_hash is {body['prev_hash']!r}, expected {last_hash!r} "
                f"(hash of {'/'.join(agg)} version {last_version})"
                if last_hash is not None
                else f"chain broken: prev_hash is {body['prev_hash']!r}, expected null for version 1"
            )

        # 9. key rotation
        new_key = None
        if body["kind"] == "signing_key.rotated":
            if agg != ("system", "signing_key", "ring"):
                raise VerifyError(
                    f"signing_key.rotated filed under {'/'.join(agg)}, "
                    "expected system/signing_key/ring"
                )
            pl = body["payload"]
            for field in ("previous_key_id", "new_key_id", "new_public_key"):
                if not isinstance(pl.get(field), str):
                    raise VerifyError(f"signing_key.rotated payload lacks string {field}")
            if pl["previous_key_id"] != body["key_id"]:
                raise VerifyError(
                    f"rotation previous_key_id {pl['previous_key_id']} is not the signing "
                    f"key {body['key_id']}"
                )
            new_key = b64decode_strict(pl["new_public_key"], "new_public_key")
            if len(new_key) != 32:
                raise VerifyError(f"new_public_key is {len(new_key)} bytes, expected 32")
            if key_id_of(new_key) != pl["new_key_id"]:
                raise VerifyError(
                    f"rotation new_key_id {pl['new_key_id']} is not the key id of "
                    f"new_public_key ({key_id_of(new_key)})"
                )

        # 7a. checkpoints: one chain, only ledger.checkpoint events in it.
        checkpoint = None
        if (agg == CHECKPOINT_AGGREGATE) != (body["kind"] == "ledger.checkpoint"):
            raise VerifyError(
                "system/checkpoint/ledger holds ledger.checkpoint events, and only it does"
            )
        if agg == CHECKPOINT_AGGREGATE:
            checkpoint = check_checkpoint(
                body["payload"], position, self.leaves, self.last_checkpoint
            )

        # All checks passed: commit.
        h = event_hash(envelope)
        self.leaves.append(hashlib.sha256(envelope).digest())
        if checkpoint is not None:
            self.last_checkpoint = checkpoint
            self.checkpoints += 1
        self.last_position = position
        if position == 1:
            self.first_event_id = body["event_id"]
        self.seen_event_ids.add(body["event_id"])
        self.aggregates[agg] = (version, h)
        if new_key is not None:
            self.trust.add(new_key)  # trusted for events after this one
        self.count += 1
        return h


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


def parse_checkpoint_note(text: str):
    """Section 7c: (origin, tree size, root bytes) of a C2SP checkpoint note."""
    if not text.endswith("\n") or "\n\n" not in text:
        raise VerifyError("the trusted checkpoint is not a signed note")
    lines = text[:text.rfind("\n\n")].split("\n")
    if len(lines) < 3 or not lines[0] or not re.fullmatch(r"0|[1-9][0-9]*", lines[1]):
        raise VerifyError("the trusted checkpoint's body is not origin, tree size, root")
    root = b64decode_strict(lines[2], "the trusted checkpoint's root")
    if len(root) != 32:
        raise VerifyError("the trusted checkpoint's root is not 32 bytes")
    return lines[0], int(lines[1]), root


def check_trusted_checkpoint(v, text: str) -> str:
    """Section 7c, item 2: the log extends the trusted checkpoint. Returns the anchor line."""
    origin, size, root = parse_checkpoint_note(text)
    if origin != "authledger/" + str(v.first_event_id):
        raise VerifyError(f"the trusted checkpoint is of another log (origin {origin})")
    if len(v.leaves) < size:
        raise VerifyError(f"the log holds {len(v.leaves)} events but the trusted checkpoint "
                          f"covers {size}: the log was truncated")
    if merkle_tree_hash(v.leaves[:size]) != root:
        raise VerifyError(f"the log's first {size} events do not hash to the trusted "
                          "checkpoint's root: history was rewritten (or forked) since")
    return f"anchor: the log extends the trusted checkpoint (tree size {size})"


def run_log(path: str, trusted_keys: list[str], subject_prefix: str,
            trust_checkpoint: str | None = None) -> int:
    trust = TrustStore()
    for i, k in enumerate(trusted_keys):
        try:
            pk = b64decode_strict(k, f"--trusted-key #{i + 1}")
        except VerifyError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if len(pk) != 32 or _point_decompress(pk) is None:
            print(f"error: --trusted-key #{i + 1} is not a 32-byte Ed25519 public key",
                  file=sys.stderr)
            return 2
        trust.add(pk)
    v = LogVerifier(trust, subject_prefix)
    try:
        fh = open(path, "rb")
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with fh:
        for lineno, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            where = f"line {lineno}"
            try:
                rec = parse_json_strict(raw, f"line {lineno}")
                if not isinstance(rec, dict):
                    raise VerifyError("record is not a JSON object")
                for field in ("position", "subject", "envelope"):
                    if field not in rec:
                        raise VerifyError(f"record lacks {field}")
                if _is_int(rec["position"]):
                    where = f"position {rec['position']} (line {lineno})"
                if not isinstance(rec["envelope"], str):
                    raise VerifyError("envelope is not a JSON string")
                indexed = rec.get("aggregate_version")
                if indexed is not None and not _is_int(indexed):
                    raise VerifyError("aggregate_version is neither null nor an integer")
                if "event_id" in rec and rec["event_id"] is not None:
                    if not isinstance(rec["event_id"], str):
                        raise VerifyError("event_id is neither null nor a string")
                v.add(rec["position"], rec["subject"], rec["envelope"].encode("utf-8"),
                      indexed)
            except VerifyError as exc:
                print(f"FAIL at {where}: {exc}")
                return 1
    if v.count == 0:
        print("FAIL: the log holds no events")
        return 1
    anchor = None
    if trust_checkpoint is not None:
        try:
            with open(trust_checkpoint, encoding="utf-8") as fh:
                text = fh.read()
        except (OSError, UnicodeDecodeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        try:
            anchor = check_trusted_checkpoint(v, text)
        except VerifyError as exc:
            print(f"FAIL trusted checkpoint: {exc}")
            return 1
    print(f"ok: {v.count} events, {len(v.aggregates)} aggregates, {v.checkpoints} "
          f"checkpoints verified; {v.uncovered()} positions not yet covered by a checkpoint")
    if anchor:
        print(anchor)
    return 0


def run_vectors(path: str) -> int:
    with open(path, "rb") as fh:
        vec = json.loads(fh.read().decode("utf-8"))
    results = []

    def check(ok: bool, text: str):
        results.append(ok)
        print(f"{'PASS' if ok else 'FAIL'}: {text}")

    # Keys: key ids derive from the public keys (section 4).
    trust = TrustStore()
    for kid, b64 in vec["trusted_keys"].items():
        try:
            pk = b64decode_strict(b64, f"trusted key {kid}")
        except VerifyError as exc:
            check(False, str(exc))
            continue
        check(len(pk) == 32 and _point_decompress(pk) is not None,
              f"trusted key {kid} is a valid 32-byte Ed25519 point")
        derived = key_id_of(pk)
        check(derived == kid, f"key id of trusted key is {derived}, vector says {kid}")
        trust.add(pk)

    # Optional: the seed derives one of the trusted keys (RFC 8032 5.1.5).
    if "test_seed_hex" in vec:
        pk = ed25519_public_key_from_seed(bytes.fromhex(vec["test_seed_hex"]))
        check(key_id_of(pk) in vec["trusted_keys"]
              and pk == base64.b64decode(vec["trusted_keys"][key_id_of(pk)]),
              f"test_seed_hex derives trusted key {key_id_of(pk)}")

    if "payload_type" in vec:
        check(vec["payload_type"] == PAYLOAD_TYPE, f"payload_type is {PAYLOAD_TYPE}")

    # PAE (section 3): the spec's own example, then the vector.
    ex = pae(b"http://example.com/HelloWorld", b"hello world")
    check(ex == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world",
          "PAE of the spec's HelloWorld example")
    pe = vec["pae_example"]
    got = pae(pe["payload_type"].encode("utf-8"), pe["body"].encode("utf-8")).hex()
    check(got == pe["pae_hex"], "PAE of pae_example equals pae_hex")

    # valid_log must verify clean and reproduce each hash.
    v = LogVerifier(trust)
    for ev in vec["valid_log"]:
        try:
            h = v.add(ev["position"], ev["subject"], ev["envelope"].encode("utf-8"))
        except VerifyError as exc:
            check(False, f"valid_log position {ev['position']} verifies: {exc}")
            continue
        check(True, f"valid_log position {ev['position']} verifies")
        check(h == ev["hash"],
              f"valid_log position {ev['position']} hash {h}"
              + ("" if h == ev["hash"] else f" (vector says {ev['hash']})"))

    # invalid_second_event: valid_log[0] then the bad envelope at position 2.
    first = vec["valid_log"][0]
    for bad in vec["invalid_second_event"]:
        t = TrustStore()
        for b64 in vec["trusted_keys"].values():
            t.add(base64.b64decode(b64))
        lv = LogVerifier(t)
        try:
            lv.add(first["position"], first["subject"], first["envelope"].encode("utf-8"))
            lv.add(2, first["subject"], bad["envelope"].encode("utf-8"))
        except VerifyError as exc:
            msg = str(exc)
            check(bad["problem"] in msg,
                  f"invalid case {bad['case']!r} rejected, expecting {bad['problem']!r}: {msg}")
        else:
            check(False, f"invalid case {bad['case']!r} was ACCEPTED")

    # signature_cases: the section 3 rule, case by case.
    for case in vec.get("signature_cases", []):
        problem = ed25519_problem(
            base64.b64decode(case["public_key"]),
            bytes.fromhex(case["message_hex"]),
            base64.b64decode(case["signature"]),
        )
        check((problem is None) == case["valid"],
              f"signature case {case['case']!r}: "
              + ("valid" if problem is None else f"invalid ({problem})"))

    n_ok = sum(results)
    print(f"{n_ok}/{len(results)} checks passed")
    return 0 if results and all(results) else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Independent verifier for authledger v1 logs.")
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--vectors", metavar="FILE", help="self-test against a vectors.json")
    mode.add_argument("--log", metavar="FILE",
                      help="verify a JSONL dump of {position, subject, envelope}")
    ap.add_argument("--trusted-key", metavar="BASE64", action="append", default=[],
                    help="trusted Ed25519 public key (standard base64); repeatable")
    ap.add_argument("--subject-prefix", default=DEFAULT_SUBJECT_PREFIX,
                    help="subject prefix (default: ledger)")
    ap.add_argument("--trust-checkpoint", metavar="FILE",
                    help="a checkpoint note kept earlier (section 7c): the log must extend it")
    args = ap.parse_args(argv)
    if args.vectors:
        return run_vectors(args.vectors)
    if not args.trusted_key:
        ap.error("--log needs at least one --trusted-key")
    return run_log(args.log, args.trusted_key, args.subject_prefix, args.trust_checkpoint)


if __name__ == "__main__":
    sys.exit(main())
