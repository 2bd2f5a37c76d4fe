#!/usr/bin/env python3
"""Self-test for tools/verify-export.

Builds a synthetic but spec-exact `authledger-export/1` export (schemas/README.md
sections 1-5, 7a, 7b) with a fresh Ed25519 key, checks that the verifier accepts it,
then feeds it tampered copies and checks that each one is rejected with exit 1 and
the expected line number. The Merkle code here (RFC 6962 MTH and PATH, recursive, as
the RFC defines them) is written separately from the verifier's (RFC 9162 iterative
proof check) so that one cross-checks the other; it is pinned to the RFC 6962 test
vector root.

Run: python3 tools/verify-export-selftest.py      (exit 0 when every check passes)
"""

import base64
import hashlib
import importlib.machinery
import importlib.util
import json
import os
import random
import subprocess
import sys
import tempfile

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

HERE = os.path.dirname(os.path.abspath(__file__))
VERIFIER = os.path.join(HERE, "verify-export")
PT = "application/vnd.authledger.event.v1+json"
L = 2**252 + 27742317777372353535851937790883648493
FAILURES = []


def check(ok, text):
    print(f"{'PASS' if ok else 'FAIL'}: {text}")
    if not ok:
        FAILURES.append(text)


def sha(data):
    return hashlib.sha256(data).digest()


def b64(raw):
    return base64.b64encode(raw).decode("ascii")


def compact(obj):
    return json.dumps(obj, separators=(",", ":"))


# ---- RFC 6962 §2.1 Merkle Tree Hash and §2.1.1 audit path, straight from the RFC ----

def split_point(n):
    k = 1
    while k * 2 < n:
        k *= 2
    return k  # largest power of two smaller than n


def mth(data):
    if not data:
        return sha(b"")
    if len(data) == 1:
        return sha(b"\x00" + data[0])
    k = split_point(len(data))
    return sha(b"\x01" + mth(data[:k]) + mth(data[k:]))


def audit_path(m, data):
    if len(data) == 1:
        return []
    k = split_point(len(data))
    if m < k:
        return audit_path(m, data[:k]) + [mth(data[k:])]
    return audit_path(m - k, data[k:]) + [mth(data[:k])]


# ---- signing (sections 1-5) ----

KEY = Ed25519PrivateKey.generate()


def raw_public(private):
    return private.public_key().public_bytes_raw()


def key_id(public):
    return "ed25519:" + hashlib.sha256(public).hexdigest()[:16]


def pae(payload_type, body):
    return b"DSSEv1 " + str(len(payload_type)).encode() + b" " + payload_type + b" " + \
        str(len(body)).encode() + b" " + body


def seal(body_bytes, private=KEY, kid=None):
    """DSSE envelope bytes exactly as authledger writes them (section 2)."""
    sig = private.sign(pae(PT.encode(), body_bytes))
    kid = kid or key_id(raw_public(private))
    return compact({"payloadType": PT, "payload": b64(body_bytes),
                    "signatures": [{"keyid": kid, "sig": b64(sig)}]}).encode()


_uuid_counter = [0]


def uuid7():
    # Fixed timestamp + counter: deterministic, and of UUIDv7 form (version 7, variant 10).
    _uuid_counter[0] += 1
    n = _uuid_counter[0]
    return f"0190a1b2-c3d4-7{n:03x}-8{n:03x}-{n:012x}"


# The whole log; "checkpoint" marks a ledger.checkpoint over every position before it.
PLAN = [
    ("ws1", "workspace", "ws1", "workspace.created", {"name": "one"}),         # 1
    ("ws2", "workspace", "ws2", "workspace.created", {"name": "two"}),         # 2 (ws2)
    ("ws1", "api_key", "k1", "api_key.created", {"name": "ci-key", "role": "admin"}),  # 3
    ("ws1", "api_key", "k1", "api_key.revoked", {"reason": "rotated"}),        # 4
    ("ws2", "api_key", "k9", "api_key.created", {"name": "other", "role": "admin"}),  # 5
    "checkpoint",                                                              # 6: 1..5
    ("ws1", "connection", "c1", "connection.initiated", {"state_hash": "x"}),  # 7
    ("ws1", "workspace", "ws1", "workspace.identity_provider_configured",
     {"issuer": "https://idp", "audience": "a", "jwks_url": "https://idp/jwks"}),  # 8
    ("ws2", "api_key", "k9", "api_key.revoked", {"reason": "leak"}),           # 9
    ("ws1", "connection", "c1", "connection.created", {}),                     # 10
    "checkpoint",                                                              # 11: 1..10
    ("ws1", "connection", "c1", "connection.authorized", {}),                  # 12 uncovered
    ("ws2", "workspace", "ws2", "workspace.created", {"name": "again"}),       # 13 (ws2)
]
# Export of ws1: header, events at 1 3 4 7 8 10 12 (lines 2-8), checkpoints (9-10),
# proofs for 1 3 4 7 8 10 (lines 11-16), footer (17).


def build(forge=None, header_keys=None):
    """Return (export lines as str, envelopes by position). `forge` maps a position to
    a function that edits that body before it is signed with the right key."""
    forge, kid = forge or {}, key_id(raw_public(KEY))
    envelopes, last, checkpoints = {}, {}, []   # checkpoints: (position, size, root)
    for pos, item in enumerate(PLAN, 1):
        if item == "checkpoint":
            size = pos - 1
            root = mth([sha(envelopes[p]) for p in range(1, size + 1)]).hex()
            prev = checkpoints[-1] if checkpoints else None
            item = ("system", "checkpoint", "ledger", "ledger.checkpoint", {
                "sequence": len(checkpoints) + 1, "from_position": (prev[1] if prev else 0) + 1,
                "to_position": size, "count": size - (prev[1] if prev else 0),
                "tree_size": size, "merkle_root": root,
                "previous_tree_size": prev[1] if prev else None,
                "previous_root": prev[2] if prev else None})
            checkpoints.append((pos, size, root))
        ws, agg_type, agg_id, kind, payload = item
        version, prev_hash = last.get((ws, agg_type, agg_id), (0, None))
        body = {"event_id": uuid7(), "workspace_id": ws, "aggregate_type": agg_type,
                "aggregate_id": agg_id, "aggregate_version": version + 1, "kind": kind,
                "schema_version": 1, "occurred_at": f"2025-06-01T12:00:{pos:02d}Z",
                "actor": {"type": "system", "id": "selftest"}, "payload": payload,
                "prev_hash": prev_hash, "key_id": kid}
        if pos in forge:
            forge[pos](body)
        envelopes[pos] = seal(compact(body).encode())
        last[(ws, agg_type, agg_id)] = (version + 1, "sha256:" + sha(envelopes[pos]).hex())

    exported = [p for p, item in enumerate(PLAN, 1) if item != "checkpoint" and item[0] == "ws1"]
    _, size, _ = checkpoints[-1]
    leaves = [sha(envelopes[p]) for p in range(1, size + 1)]
    lines = [{"type": "header", "format": "authledger-export/1", "workspace_id": "ws1",
              "filters": {}, "generated_at": "2025-06-01T12:01:00Z", "payload_type": PT,
              "public_keys": header_keys or [{"key_id": kid, "public_key": b64(raw_public(KEY))}]}]
    lines += [{"type": "event", "position": p, "envelope": envelopes[p].decode()} for p in exported]
    lines += [{"type": "checkpoint", "position": p, "envelope": envelopes[p].decode()}
              for p, _, _ in checkpoints]
    proofs = [{"type": "inclusion", "position": p, "checkpoint_sequence": len(checkpoints),
               "tree_size": size, "leaf_index": p - 1,
               "proof": [h.hex() for h in audit_path(p - 1, leaves)]}
              for p in exported if p <= size]
    lines += proofs
    lines.append({"type": "footer", "events": len(exported), "checkpoints": len(checkpoints),
                  "inclusion_proofs": len(proofs)})
    return [compact(x) for x in lines], envelopes


def run(lines, stdin=False):
    text = "".join(line + "\n" for line in lines)
    if stdin:
        p = subprocess.run([VERIFIER, "-"], input=text, capture_output=True, text=True)
    else:
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as fh:
            fh.write(text)
        try:
            p = subprocess.run([VERIFIER, fh.name], capture_output=True, text=True)
        finally:
            os.unlink(fh.name)
    return p.returncode, p.stdout.strip()


def expect_ok(name, lines, summary=None, stdin=False):
    code, out = run(lines, stdin)
    check(code == 0 and (summary is None or out == summary),
          f"{name}: exit {code}, {out!r}")


def expect_fail(name, lines, line_no, words):
    code, out = run(lines)
    check(code == 1 and out.startswith(f"line {line_no}: ") and words in out,
          f"{name}: exit {code}, {out!r} (want exit 1, line {line_no}, {words!r})")


# ---- small editors for tampered copies (lines are 1-based like the verifier's) ----

def edit(lines, n, fn):
    out = list(lines)
    rec = json.loads(out[n - 1])
    fn(rec)
    out[n - 1] = compact(rec)
    return out


def edit_envelope(lines, n, fn):
    def go(rec):
        env = json.loads(rec["envelope"])
        fn(env)
        rec["envelope"] = compact(env)
    return edit(lines, n, go)


def edit_body_unsigned(lines, n, old, new):
    """Change bytes inside the base64 payload without re-signing."""
    def go(env):
        body = base64.b64decode(env["payload"])
        assert old in body, (old, body)
        env["payload"] = b64(body.replace(old, new, 1))
    return edit_envelope(lines, n, go)


def drop(lines, *numbers):
    return [x for i, x in enumerate(lines, 1) if i not in numbers]


def main():
    spec = importlib.util.spec_from_loader(
        "verify_export", importlib.machinery.SourceFileLoader("verify_export", VERIFIER))
    ve = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ve)

    # -- Merkle: RFC 6962 test vector, then the verifier against our independent PATH.
    vector = [b"", b"\x00", b"\x10", b"\x20\x21", b"\x30\x31", b"\x40\x41\x42\x43",
              bytes(range(0x50, 0x58)), bytes(range(0x60, 0x70))]
    root8 = mth(vector).hex()
    check(root8 == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
          f"RFC 6962 test vector: root of 8 leaves is {root8}")
    good = bad = 0
    for n in range(1, len(vector) + 1):
        root = mth(vector[:n])
        for m in range(n):
            leaf, proof = sha(b"\x00" + vector[m]), audit_path(m, vector[:n])
            good += ve.verify_inclusion(m, n, leaf, proof, root)
            wrong = [proof[:-1], proof + [root]] if proof else [[root]]
            wrong += [proof[:i] + [bytes([proof[i][0] ^ 1]) + proof[i][1:]] + proof[i + 1:]
                      for i in range(len(proof))]
            bad += any(ve.verify_inclusion(m, n, leaf, w, root) for w in wrong)
            bad += ve.verify_inclusion((m + 1) % n, n, leaf, proof, root) and n > 1 \
                and vector[m] != vector[(m + 1) % n]
            bad += ve.verify_inclusion(m, n, sha(b"\x01" + vector[m]), proof, root)
    # Interior nodes posing as leaves, with the size lying about the path length: only
    # the RFC's "sn == 0" checks refuse these (hashes alone would match).
    h = [sha(b"\x00" + d) for d in vector]
    n01, n45 = sha(b"\x01" + h[0] + h[1]), sha(b"\x01" + h[4] + h[5])
    bad += ve.verify_inclusion(0, 3, n01, [h[2]], mth(vector[:3]))             # path too short
    bad += ve.verify_inclusion(0, 1, h[6], [n45, mth(vector[:4])], mth(vector[:7]))  # too long
    check(good == 36 and bad == 0, f"verify_inclusion vs RFC 6962 PATH for every leaf of trees "
          f"1..8: {good}/36 accepted, {bad} wrong proofs/indices/leaves accepted")
    check(ve.pae(b"http://example.com/HelloWorld", b"hello world")
          == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world", "PAE spec example")

    # -- The honest export.
    lines, envelopes = build()
    check(len(lines) == 17, f"synthetic export has {len(lines)} lines (17 expected)")
    summary = "ok: 7 events, 2 checkpoints, 6 inclusion proofs verified"
    expect_ok("honest export", lines, summary)
    expect_ok("honest export on stdin", lines, summary, stdin=True)
    other = Ed25519PrivateKey.generate()
    extra_key = {"key_id": key_id(raw_public(other)), "public_key": b64(raw_public(other))}
    expect_ok("extra unrelated key in header", edit(lines, 1, lambda r: r["public_keys"].insert(0, extra_key)))
    # A filtered view may leave out versions: drop c1 v2 (pos 10) with its proof, fix footer.
    def fewer(r):
        r["events"], r["inclusion_proofs"] = 6, 5
    expect_ok("version gap c1 v1, v3 (legitimately filtered)",
              edit(drop(lines, 7, 16), 15, fewer),
              "ok: 6 events, 2 checkpoints, 5 inclusion proofs verified")

    # -- Tampered copies: (name, lines, expected line, word in the message).
    swap = list(lines)
    def swap_sigs(a, b):
        ea, eb = json.loads(json.loads(a)["envelope"]), json.loads(json.loads(b)["envelope"])
        ea["signatures"], eb["signatures"] = eb["signatures"], ea["signatures"]
        return ea, eb
    ea, eb = swap_sigs(swap[1], swap[2])
    swap = edit(edit(swap, 2, lambda r: r.update(envelope=compact(ea))), 3,
                lambda r: r.update(envelope=compact(eb)))

    def high_s(env):
        sig = base64.b64decode(env["signatures"][0]["sig"])
        s = int.from_bytes(sig[32:], "little") + L
        env["signatures"][0]["sig"] = b64(sig[:32] + s.to_bytes(32, "little"))

    def dup_key_in_envelope(rec):
        rec["envelope"] = '{"payloadType":"x",' + rec["envelope"][1:]

    other_ws = compact({"type": "event", "position": 2, "envelope": envelopes[2].decode()})
    wrong_prev = lambda b: b.update(prev_hash="sha256:" + "ab" * 32)
    wrong_root = lambda b: b["payload"].update(merkle_root="00" * 32)
    # A body with a repeated key, signed with the right key: must still be refused.
    body = base64.b64decode(json.loads(json.loads(lines[1])["envelope"])["payload"])
    dup_body_env = seal(body[:-1] + b',"workspace_id":"ws2"}').decode()

    def padding_bits(env):  # 64-byte sig: "...X==", X carries 4 unused bits
        sig = env["signatures"][0]["sig"]
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        env["signatures"][0]["sig"] = sig[:-3] + alphabet[alphabet.index(sig[-3]) ^ 1] + "=="

    def same_id(b):
        b["event_id"] = "0190a1b2-c3d4-7fff-8fff-000000000fff"

    cases = [
        ("altered body byte in base64 payload", edit_body_unsigned(lines, 3, b"ci-key", b"cj-key"),
         3, "signature does not verify"),
        ("signatures swapped between two events", swap, 2, "signature does not verify"),
        ("header lists another key (its own id)", edit(lines, 1, lambda r: r.update(public_keys=[extra_key])),
         2, "no public key"),
        ("header key_id not derived from its key", edit(lines, 1, lambda r: r["public_keys"][0]
                                                        .update(public_key=extra_key["public_key"])),
         1, "does not match its public key"),
        ("signature keyid differs from body key_id", edit_envelope(
            lines, 2, lambda e: e["signatures"][0].update(keyid=extra_key["key_id"])), 2, "differs"),
        ("non-canonical signature S+L", edit_envelope(lines, 4, high_s), 4, "S >= L"),
        ("wrong payloadType", edit_envelope(lines, 2, lambda e: e.update(payloadType="x")), 2, "payloadType"),
        ("unknown field in signature entry", edit_envelope(
            lines, 2, lambda e: e["signatures"][0].update(extra=1)), 2, "exactly the fields"),
        ("non-canonical base64 (padding bits)", edit_envelope(lines, 2, padding_bits), 2, "canonical"),
        ("two events with one event_id (re-signed)", build({3: same_id, 4: same_id})[0], 4,
         "duplicate event_id"),
        ("signing_key.rotated in ws1 (re-signed)", build(
            {4: lambda b: b.update(kind="signing_key.rotated")})[0], 4, "outside system/signing_key/ring"),
        ("actor type is a list (re-signed)", build({1: lambda b: b["actor"].update(type=["system"])})[0],
         2, "actor is malformed"),
        ("unknown envelope field", edit_envelope(lines, 2, lambda e: e.update(extra=1)), 2, "exactly the fields"),
        ("re-signed k1 v2 with a wrong prev_hash", build({4: wrong_prev})[0], 4, "chain broken"),
        ("event removed from the middle (pos 4)", drop(lines, 4), 12, "no exported event at position 4"),
        ("event and its proof removed (pos 4)", drop(lines, 4, 13), 15, "footer says events"),
        ("uncovered event removed (pos 12)", drop(lines, 8), 16, "footer says events"),
        ("events out of order", [lines[0], lines[2], lines[1]] + lines[3:], 3, "ascend"),
        ("altered proof hash", edit(lines, 13, lambda r: r["proof"].__setitem__(
            1, ("0" if r["proof"][1][0] != "0" else "1") + r["proof"][1][1:])), 13, "does not verify against"),
        ("proof for another leaf_index", edit(lines, 11, lambda r: r.update(leaf_index=1)), 11, "leaf_index"),
        ("proof removed (footer fixed)", edit(drop(lines, 12), 16, lambda r: r.update(inclusion_proofs=5)),
         16, "position 3 (line 3) has no inclusion proof"),
        ("proof duplicated", lines[:12] + [lines[11]] + lines[12:], 13, "second inclusion proof"),
        ("checkpoint merkle_root edited, not re-signed", edit_body_unsigned(
            lines, 10, b'"merkle_root":"', b'"merkle_root":"0'), 10, "signature does not verify"),
        ("last checkpoint re-signed with a wrong root", build({11: wrong_root})[0], 11, "does not verify against"),
        ("first checkpoint re-signed with a wrong root", build({6: wrong_root})[0], 10, "previous_root"),
        ("last checkpoint re-signed with a wrong prev_hash", build(
            {11: lambda b: b.update(prev_hash="sha256:" + "cd" * 32)})[0], 10, "checkpoint chain broken"),
        ("last checkpoint re-signed with version 3", build(
            {11: lambda b: b.update(aggregate_version=3)})[0], 10, "checkpoint chain broken"),
        ("checkpoint tree_size not below its position (re-signed)", build(
            {11: lambda b: b["payload"].update(tree_size=11, to_position=11, count=6)})[0],
         10, "below its own position"),
        ("checkpoint placed at an exported event's position", edit(lines, 9, lambda r: r.update(position=7)),
         9, "already holds another envelope"),
        ("first checkpoint removed from the chain", edit(drop(lines, 9), 16, lambda r: r.update(checkpoints=1)),
         9, "sequence 2, expected 1"),
        ("last checkpoint removed", drop(lines, 10), 10, "checkpoint_sequence"),
        ("duplicate key in envelope JSON", edit(lines, 2, dup_key_in_envelope), 2, "duplicate JSON key"),
        ("duplicate key in a signed body", edit(lines, 2, lambda r: r.update(envelope=dup_body_env)),
         2, "duplicate JSON key 'workspace_id'"),
        ("event of another workspace inserted", lines[:2] + [other_ws] + lines[2:], 3, "workspace 'ws2'"),
        ("missing footer", lines[:-1], 17, "no footer"),
        ("footer count wrong", edit(lines, 17, lambda r: r.update(checkpoints=3)), 17, "footer says"),
        ("footer count as JSON true", edit(drop(lines, *range(3, 17)), 3,
                                           lambda r: r.update(events=True, checkpoints=0, inclusion_proofs=0)),
         3, "footer says"),
        ("line after the footer", lines + [lines[1]], 18, "after the footer"),
        ("header not first", lines[1:], 1, "header"),
        ("empty file", [], 1, "empty"),
    ]
    for name, tampered, line_no, words in cases:
        expect_fail(name, tampered, line_no, words)

    # -- Fuzz in-process: random single-byte edits must be refused cleanly (exit status 1,
    # never a traceback). Accepting one is fine only if it changes nothing the lines mean
    # (JSON spacing, "\/" for "/") or only the unsigned header's generated_at.
    def meaning(data):
        recs = [json.loads(x) for x in data.split(b"\n") if x.strip()]
        recs[0].pop("generated_at")
        return recs

    rng, text, crashes, accepted = random.Random(6962), "".join(x + "\n" for x in lines).encode(), [], []
    for _ in range(3000):
        at, op = rng.randrange(len(text)), rng.choice("rid")
        byte = bytes([rng.choice(b'"\\{}[],:0123456789abcdefAZ+/= \n\x00\xff')])
        fuzzed = text[:at] + (b"" if op == "d" else byte) + text[at + (op != "i"):]
        try:
            status, out = ve.verify(fuzzed)
        except Exception as exc:  # noqa: BLE001 - any exception is the failure we look for
            crashes.append(f"{op}@{at}: {exc!r}")
            continue
        if status == 0 and meaning(fuzzed) != meaning(text):
            accepted.append(f"{op}@{at} {byte!r}")
    check(not crashes and not accepted, f"fuzz: 3000 byte edits, {len(crashes)} crashes "
          f"{crashes[:3]}, {len(accepted)} meaningful edits accepted {accepted[:3]}")

    # Same for edits inside a body that is then properly re-signed: the field checks
    # must refuse odd types and values cleanly (an unhashable actor type, say).
    body = base64.b64decode(json.loads(json.loads(lines[1])["envelope"])["payload"])
    crashes = []
    for _ in range(500):
        at, op = rng.randrange(len(body)), rng.choice("rid")
        byte = bytes([rng.choice(b'"\\{}[],:0123456789aeflnrstu- ')])
        fuzzed = body[:at] + (b"" if op == "d" else byte) + body[at + (op != "i"):]
        envelope = seal(fuzzed).decode()
        try:
            ve.verify("".join(x + "\n" for x in edit(lines, 2, lambda r: r.update(envelope=envelope))).encode())
        except Exception as exc:  # noqa: BLE001
            crashes.append(f"{fuzzed!r}: {exc!r}")
    check(not crashes, f"fuzz: 500 re-signed body edits, {len(crashes)} crashes {crashes[:2]}")

    # -- Usage errors and unreadable files exit 2.
    for args, what in (([], "no argument"), (["a", "b"], "two arguments"),
                       (["/nonexistent/export.jsonl"], "unreadable file")):
        code = subprocess.run([VERIFIER] + args, capture_output=True).returncode
        check(code == 2, f"{what}: exit {code} (want 2)")

    print(f"{len(FAILURES)} failure(s)" if FAILURES else "all checks passed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
