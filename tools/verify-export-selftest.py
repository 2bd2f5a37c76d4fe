#!/usr/bin/env python3
"""Self-test for tools/verify-export.

Builds a synthetic but spec-exact `authledger-export/1` export (schemas/README.md
sections 1-5, 7a, 7b) with a fresh Ed25519 key, checks that the verifier accepts it,
then feeds it tampered copies and checks that each one is rejected with exit 1 and
the expected line number and reason. Forged bodies are re-signed with the right key
and the whole log rebuilt around them, so only the check aimed at can catch them. The
Merkle code here (RFC 6962 MTH and PATH, recursive, as the RFC defines them) is written
separately from the verifier's (RFC 9162 iterative proof check) so that one checks the
other; it is pinned to the RFC 6962 test vector root. Random byte edits (fuzz) must be
refused without a traceback, and usage errors must exit 2.

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
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

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
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(public):
    return "ed25519:" + hashlib.sha256(public).hexdigest()[:16]


def pae(payload_type, body):
    return b"DSSEv1 " + str(len(payload_type)).encode() + b" " + payload_type + b" " + \
        str(len(body)).encode() + b" " + body


def seal(body_bytes):
    """DSSE envelope bytes exactly as authledger writes them (section 2), signed by KEY."""
    sig = KEY.sign(pae(PT.encode(), body_bytes))
    return compact({"payloadType": PT, "payload": b64(body_bytes),
                    "signatures": [{"keyid": key_id(raw_public(KEY)), "sig": b64(sig)}]}).encode()


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


def build(forge=None):
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
              "public_keys": [{"key_id": kid, "public_key": b64(raw_public(KEY))}]}]
    lines += [{"type": "event", "position": p, "envelope": envelopes[p].decode()} for p in exported]
    lines += [{"type": "checkpoint", "position": p, "envelope": envelopes[p].decode()}
              for p, _, _ in checkpoints]
    proofs = [{"type": "inclusion", "position": p, "checkpoint_sequence": len(checkpoints),
               "tree_size": size, "leaf_index": p - 1,
               "proof": [h.hex() for h in audit_path(p - 1, leaves)]}
              for p in exported if p <= size]
    lines += proofs
    lines.append({"type": "footer", "events": len(exported), "checkpoints": len(checkpoints),
                  "cosignatures": 0, "inclusion_proofs": len(proofs)})
    return [compact(x) for x in lines], envelopes


def run(lines, stdin=False, trust=("--self-certified",)):
    """Most cases check the export's own consistency, so they trust its header's keys."""
    text = "".join(line + "\n" for line in lines)
    if stdin:
        p = subprocess.run([VERIFIER, *trust, "-"], input=text, capture_output=True, text=True)
    else:
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as fh:
            fh.write(text)
        try:
            p = subprocess.run([VERIFIER, *trust, fh.name], capture_output=True, text=True)
        finally:
            os.unlink(fh.name)
    return p.returncode, p.stdout.strip()


def expect_ok(name, lines, summary=None, stdin=False, trust=("--self-certified",),
              trusted="SELF-CERTIFIED"):
    code, out = run(lines, stdin, trust)
    check(code == 0 and (summary is None or out.split("; trust: ")[0] == summary)
          and f"; trust: {trusted}" in out,
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


def load_verifier():
    # The verifier has no .py extension, so load it by path (its main() is guarded).
    loader = importlib.machinery.SourceFileLoader("verify_export", VERIFIER)
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


def test_merkle(ve):
    """RFC 6962 test vector, then the verifier's RFC 9162 check against our PATH."""
    vector = [b"", b"\x00", b"\x10", b"\x20\x21", b"\x30\x31", b"\x40\x41\x42\x43",
              bytes(range(0x50, 0x58)), bytes(range(0x60, 0x70))]
    root8 = mth(vector).hex()
    check(root8 == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
          f"RFC 6962 test vector: root of the 8 leaves is {root8}")
    good = bad = 0
    for n in range(1, len(vector) + 1):
        root = mth(vector[:n])
        for m in range(n):
            leaf, proof = sha(b"\x00" + vector[m]), audit_path(m, vector[:n])
            good += ve.verify_inclusion(m, n, leaf, proof, root)
            wrong = [proof[:-1], proof + [root]] if proof else [[root]]  # too short / long
            wrong += [proof[:i] + [bytes([proof[i][0] ^ 1]) + proof[i][1:]] + proof[i + 1:]
                      for i in range(len(proof))]                          # one bit flipped
            bad += any(ve.verify_inclusion(m, n, leaf, w, root) for w in wrong)
            bad += n > 1 and ve.verify_inclusion((m + 1) % n, n, leaf, proof, root)
            bad += ve.verify_inclusion(m, n, sha(b"\x01" + vector[m]), proof, root)
    # Interior nodes posing as leaves, with a size that does not fit the path length:
    # the hashes do chain up to the root, only RFC 9162's "sn == 0" checks refuse them.
    h = [sha(b"\x00" + d) for d in vector]
    n01, n45 = sha(b"\x01" + h[0] + h[1]), sha(b"\x01" + h[4] + h[5])
    bad += ve.verify_inclusion(0, 3, n01, [h[2]], mth(vector[:3]))
    bad += ve.verify_inclusion(0, 1, h[6], [n45, mth(vector[:4])], mth(vector[:7]))
    check(good == 36 and bad == 0, f"verify_inclusion vs RFC 6962 PATH, every leaf of trees "
          f"1..8: {good}/36 accepted, {bad} wrong proofs/indices/leaves accepted")
    check(ve.pae(b"http://example.com/HelloWorld", b"hello world")
          == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world", "PAE spec example")


def tampered_cases(lines, envelopes, extra_key):
    """(name, tampered lines, line the verifier must name, words in its message).
    resigned(...) rebuilds the whole log with one body forged and properly signed, so
    only the check aimed at is left to catch it."""
    def resigned(forge):
        return build(forge)[0]

    def swap_signatures(env_a, env_b):
        a, b = json.loads(env_a), json.loads(env_b)
        a["signatures"], b["signatures"] = b["signatures"], a["signatures"]
        return compact(a), compact(b)

    sig_a, sig_b = swap_signatures(json.loads(lines[1])["envelope"], json.loads(lines[2])["envelope"])
    swapped = edit(edit(lines, 2, lambda r: r.update(envelope=sig_a)), 3,
                   lambda r: r.update(envelope=sig_b))

    def high_s(env):  # S + L: the same signature in a second, non-canonical spelling
        sig = base64.b64decode(env["signatures"][0]["sig"])
        s = int.from_bytes(sig[32:], "little") + L
        env["signatures"][0]["sig"] = b64(sig[:32] + s.to_bytes(32, "little"))

    def padding_bits(env):  # 64-byte sig ends "X==": X carries 4 bits that must be 0
        sig = env["signatures"][0]["sig"]
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        env["signatures"][0]["sig"] = sig[:-3] + alphabet[alphabet.index(sig[-3]) ^ 1] + "=="

    def dup_key_in_envelope(rec):
        rec["envelope"] = '{"payloadType":"x",' + rec["envelope"][1:]

    def flip_proof_hash(rec):
        rec["proof"][1] = ("0" if rec["proof"][1][0] != "0" else "1") + rec["proof"][1][1:]

    def same_id(body):
        body["event_id"] = "0190a1b2-c3d4-7fff-8fff-000000000fff"

    # A body with a repeated key, signed with the right key: must still be refused.
    body = base64.b64decode(json.loads(json.loads(lines[1])["envelope"])["payload"])
    dup_body = seal(body[:-1] + b',"workspace_id":"ws2"}').decode()
    other_ws = compact({"type": "event", "position": 2, "envelope": envelopes[2].decode()})
    wrong_root = lambda b: b["payload"].update(merkle_root="00" * 32)  # noqa: E731

    # Section 2: padding required; no byte-order mark; no lone surrogate.
    padded = next(n for n in range(2, 9)
                  if json.loads(json.loads(lines[n - 1])["envelope"])["payload"].endswith("="))
    unpadded = edit_envelope(lines, padded, lambda e: e.update(payload=e["payload"].rstrip("=")))
    bom = list(lines)
    bom[1] = "\ufeff" + bom[1]

    return [
        ("unpadded base64 payload", unpadded, padded, "base64"),
        ("byte-order mark before a line", bom, 2, "not valid JSON"),
        ("lone surrogate in a signed body",
         resigned({3: lambda b: b.update(payload=dict(b["payload"], name="\ud800"))}), 3,
         "lone surrogate"),
        # envelopes, signatures, keys (sections 2-4)
        ("altered body byte in base64 payload",
         edit_body_unsigned(lines, 3, b"ci-key", b"cj-key"), 3, "signature does not verify"),
        ("signatures swapped between two events", swapped, 2, "signature does not verify"),
        ("header lists another key (its own id)",
         edit(lines, 1, lambda r: r.update(public_keys=[extra_key])), 2, "no trusted public key"),
        ("header key_id not derived from its key",
         edit(lines, 1, lambda r: r["public_keys"][0].update(public_key=extra_key["public_key"])),
         1, "does not match its public key"),
        ("signature keyid differs from body key_id",
         edit_envelope(lines, 2, lambda e: e["signatures"][0].update(keyid=extra_key["key_id"])),
         2, "differs"),
        ("non-canonical signature S+L", edit_envelope(lines, 4, high_s), 4, "S >= L"),
        ("non-canonical base64 (padding bits)", edit_envelope(lines, 2, padding_bits),
         2, "canonical"),
        ("wrong payloadType", edit_envelope(lines, 2, lambda e: e.update(payloadType="x")),
         2, "payloadType"),
        ("unknown envelope field", edit_envelope(lines, 2, lambda e: e.update(extra=1)),
         2, "exactly the fields"),
        ("unknown field in signature entry",
         edit_envelope(lines, 2, lambda e: e["signatures"][0].update(extra=1)),
         2, "exactly the fields"),
        ("duplicate key in envelope JSON", edit(lines, 2, dup_key_in_envelope),
         2, "duplicate JSON key"),
        ("duplicate key in a signed body", edit(lines, 2, lambda r: r.update(envelope=dup_body)),
         2, "duplicate JSON key 'workspace_id'"),
        ("actor type is a list (re-signed)",
         resigned({1: lambda b: b["actor"].update(type=["system"])}), 2, "actor is malformed"),
        ("signing_key.rotated in ws1 (re-signed)",
         resigned({4: lambda b: b.update(kind="signing_key.rotated")}),
         4, "outside system/signing_key/ring"),
        # events: workspace, order, ids, chains (7b)
        ("event of another workspace inserted", lines[:2] + [other_ws] + lines[2:],
         3, "workspace 'ws2'"),
        ("events out of order", [lines[0], lines[2], lines[1]] + lines[3:], 3, "ascend"),
        ("two events with one event_id (re-signed)", resigned({3: same_id, 4: same_id}),
         4, "duplicate event_id"),
        ("k1 v2 re-signed with a wrong prev_hash",
         resigned({4: lambda b: b.update(prev_hash="sha256:" + "ab" * 32)}), 4, "chain broken"),
        ("event removed from the middle (pos 4)", drop(lines, 4),
         12, "no exported event at position 4"),
        ("event and its proof removed (pos 4)", drop(lines, 4, 13), 15, "footer says events"),
        ("uncovered event removed (pos 12)", drop(lines, 8), 16, "footer says events"),
        # checkpoints (7a)
        ("checkpoint merkle_root edited, not re-signed",
         edit_body_unsigned(lines, 10, b'"merkle_root":"', b'"merkle_root":"0'),
         10, "signature does not verify"),
        ("last checkpoint re-signed with a wrong root", resigned({11: wrong_root}),
         11, "does not verify against"),
        ("first checkpoint re-signed with a wrong root", resigned({6: wrong_root}),
         10, "previous_root"),
        ("last checkpoint re-signed with a wrong prev_hash",
         resigned({11: lambda b: b.update(prev_hash="sha256:" + "cd" * 32)}),
         10, "checkpoint chain broken"),
        ("last checkpoint re-signed with version 3",
         resigned({11: lambda b: b.update(aggregate_version=3)}), 10, "checkpoint chain broken"),
        ("checkpoint tree_size not below its position (re-signed)",
         resigned({11: lambda b: b["payload"].update(tree_size=11, to_position=11, count=6)}),
         10, "below its own position"),
        ("checkpoint placed at an exported event's position",
         edit(lines, 9, lambda r: r.update(position=7)), 9, "already holds another envelope"),
        ("first checkpoint removed from the chain",
         edit(drop(lines, 9), 16, lambda r: r.update(checkpoints=1)), 9, "sequence 2, expected 1"),
        ("last checkpoint removed", drop(lines, 10), 10, "checkpoint_sequence"),
        # inclusion proofs
        ("altered proof hash", edit(lines, 13, flip_proof_hash), 13, "does not verify against"),
        ("proof for another leaf_index", edit(lines, 11, lambda r: r.update(leaf_index=1)),
         11, "leaf_index"),
        ("proof duplicated", lines[:12] + [lines[11]] + lines[12:], 13, "second inclusion proof"),
        ("proof removed (footer fixed)",
         edit(drop(lines, 12), 16, lambda r: r.update(inclusion_proofs=5)),
         16, "position 3 (line 3) has no inclusion proof"),
        # footer and line order
        ("missing footer", lines[:-1], 17, "no footer"),
        ("footer count wrong", edit(lines, 17, lambda r: r.update(checkpoints=3)),
         17, "footer says"),
        ("footer count as JSON true", edit(drop(lines, *range(3, 17)), 3, lambda r: r.update(
            events=True, checkpoints=0, cosignatures=0, inclusion_proofs=0)), 3, "footer says"),
        ("line after the footer", lines + [lines[1]], 18, "after the footer"),
        ("header not first", lines[1:], 1, "header"),
        ("empty file", [], 1, "empty"),
    ]


def fuzz(ve, lines):
    """Random edits must be refused cleanly (status 1, never a traceback)."""
    def meaning(data):
        # An accepted edit is fine only if it changes nothing the lines mean (JSON
        # spacing, "\/" for "/") or only the unsigned header field generated_at.
        recs = [json.loads(x) for x in data.split(b"\n") if x.strip()]
        recs[0].pop("generated_at")
        return recs

    def mutate(data, alphabet):
        at, op = rng.randrange(len(data)), rng.choice("rid")  # replace, insert, delete
        byte = bytes([rng.choice(alphabet)])
        return data[:at] + (b"" if op == "d" else byte) + data[at + (op != "i"):]

    rng, text = random.Random(6962), "".join(x + "\n" for x in lines).encode()
    crashes, accepted = [], []
    for _ in range(3000):
        fuzzed = mutate(text, b'"\\{}[],:0123456789abcdefAZ+/= \n\x00\xff')
        try:
            if ve.verify(fuzzed)[0] == 0 and meaning(fuzzed) != meaning(text):
                accepted.append(fuzzed)
        except Exception as exc:  # noqa: BLE001 - any exception is what we look for
            crashes.append(repr(exc))
    check(not crashes and not accepted, f"fuzz: 3000 byte edits of the export, "
          f"{len(crashes)} crashes {crashes[:3]}, {len(accepted)} meaningful edits accepted")

    # Edits inside a body that is then properly signed reach the field checks.
    body = base64.b64decode(json.loads(json.loads(lines[1])["envelope"])["payload"])
    crashes = []
    for _ in range(500):
        envelope = seal(mutate(body, b'"\\{}[],:0123456789aeflnrstu- ')).decode()
        export = edit(lines, 2, lambda r: r.update(envelope=envelope))
        try:
            ve.verify("".join(x + "\n" for x in export).encode())
        except Exception as exc:  # noqa: BLE001
            crashes.append(repr(exc))
    check(not crashes, f"fuzz: 500 re-signed body edits, {len(crashes)} crashes {crashes[:2]}")


def main():
    ve = load_verifier()
    test_merkle(ve)

    lines, envelopes = build()
    check(len(lines) == 17, f"synthetic export has {len(lines)} lines (17 expected)")
    summary = "ok: 7 events, 2 checkpoints, 6 inclusion proofs verified"
    expect_ok("honest export", lines, summary)
    expect_ok("honest export on stdin", lines, summary, stdin=True)
    other = raw_public(Ed25519PrivateKey.generate())
    extra_key = {"key_id": key_id(other), "public_key": b64(other)}
    expect_ok("extra unrelated key in header",
              edit(lines, 1, lambda r: r["public_keys"].insert(0, extra_key)), summary)
    # A filtered view may leave versions out (7b): drop c1 v2 (pos 10) and its proof.
    gap = edit(drop(lines, 7, 16), 15, lambda r: r.update(events=6, inclusion_proofs=5))
    expect_ok("version gap c1 v1, v3 in a filtered export",
              edit(gap, 1, lambda r: r["filters"].update(**{"from": "2025-06-01T12:00:00Z"})),
              "ok: 6 events, 2 checkpoints, 5 inclusion proofs verified")
    expect_fail("version gap c1 v1, v3 in an unfiltered export", gap, 7, "events are missing")
    expect_fail("an event the header's kind filter excludes",
                edit(lines, 1, lambda r: r["filters"].update(kind="connection.")), 2,
                "does not match filter kind")
    expect_fail("an event before the header's from filter",
                edit(lines, 1, lambda r: r["filters"].update(**{"from": "2025-06-01T12:00:02Z"})),
                2, "before filter from")
    expect_fail("an unknown filter in the header",
                edit(lines, 1, lambda r: r["filters"].update(page="2")), 1, "unknown filter")
    # Trust (keys pinned from outside the export).
    own = ("--trusted-key", b64(raw_public(KEY)))
    expect_ok("honest export, key pinned", lines, summary, trust=own,
              trusted="pinned keys (--trusted-key)")
    code, out = run(lines, trust=("--trusted-key", extra_key["public_key"]))
    check(code == 1 and "no trusted public key" in out,
          f"honest export, another key pinned: exit {code}, {out!r}")
    code, out = run(lines, trust=())
    check(code == 2, f"no trust given: exit {code} (want 2, a refusal)")

    for name, tampered, line_no, words in tampered_cases(lines, envelopes, extra_key):
        expect_fail(name, tampered, line_no, words)
    fuzz(ve, lines)

    for args, what in (([], "no argument"), (["--self-certified", "a", "b"], "two arguments"),
                       (["--self-certified", "/nonexistent/export.jsonl"], "unreadable file")):
        code = subprocess.run([VERIFIER] + args, capture_output=True).returncode
        check(code == 2, f"usage error, {what}: exit {code} (want 2)")

    print(f"{len(FAILURES)} failure(s)" if FAILURES else "all checks passed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
