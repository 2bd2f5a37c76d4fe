// authledger console: checks one audit event in the browser, from the bytes on its page
// (schemas/README.md §2-§5, §7a): the Ed25519 signature over the DSSE PAE of the body
// (WebCrypto, with §3's strict rule), SHA-256 of the envelope as the event's hash and Merkle leaf, the latest
// checkpoint's own signature, and the RFC 9162 inclusion proof up to the root it signs.
// Served as a file (the Content-Security-Policy allows no inline script); no library.
"use strict";
(() => {
  const PAYLOAD_TYPE = "application/vnd.authledger.event.v1+json";
  const section = document.getElementById("verify");
  if (!section || !window.crypto || !crypto.subtle) return;
  const enc = new TextEncoder();

  /** A check that did not pass, with the reason shown to the reader. */
  class Refusal extends Error {}

  const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  const fromHex = (text) => {
    if (!/^(?:[0-9a-f]{2}){32}$/.test(text)) throw new Refusal(`"${text.slice(0, 20)}" is not a SHA-256 in lowercase hex`);
    return Uint8Array.from(text.match(/../g), (h) => parseInt(h, 16));
  };
  const binary = (bytes) => {
    let s = "";
    for (const b of bytes) s += String.fromCharCode(b);
    return s;
  };
  // Standard base64 with padding, canonical spelling only (§2).
  const fromBase64 = (text, what) => {
    const shape = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
    if (typeof text !== "string" || !shape.test(text)) throw new Refusal(`${what} is not base64`);
    const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
    if (btoa(binary(bytes)) !== text) throw new Refusal(`${what} is not canonical base64`);
    return bytes;
  };
  const concat = (...parts) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  };
  const sha256 = async (...parts) => new Uint8Array(await crypto.subtle.digest("SHA-256", concat(...parts)));

  // PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body (§3).
  const pae = (type, body) => {
    const t = enc.encode(type);
    return concat(enc.encode(`DSSEv1 ${t.length} `), t, enc.encode(` ${body.length} `), body);
  };

  // §3's strict rule (ed25519-dalek's verify_strict) beyond what WebCrypto checks itself:
  // S < L, A and R canonical encodings, neither of small order. WebCrypto's Ed25519 then
  // checks the equation without the cofactor.
  const le = (h) => Uint8Array.from(h.match(/../g), (x) => parseInt(x, 16));
  const P = le("ed" + "ff".repeat(30) + "7f");
  const L = le("edd3f55c1a631258d69cf7a2def9de14" + "00".repeat(15) + "10");
  const ONE = "01" + "00".repeat(31);
  const P_MINUS_1 = "ec" + "ff".repeat(30) + "7f";
  const SMALL_ORDER = new Set([
    ONE,
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "00".repeat(31) + "80",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    P_MINUS_1,
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    "00".repeat(32),
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
  ]);
  // Little-endian a < b, 32 bytes each.
  const below = (a, b) => {
    for (let i = 31; i >= 0; i--) if (a[i] !== b[i]) return a[i] < b[i];
    return false;
  };
  const pointProblem = (encoding, what) => {
    const y = encoding.slice(0, 32);
    y[31] &= 0x7f;
    const sign = encoding[31] & 0x80;
    if (!below(y, P) || (sign && (hex(y) === ONE || hex(y) === P_MINUS_1))) return `non-canonical ${what}`;
    if (SMALL_ORDER.has(hex(encoding))) return `small-order ${what}`;
    return null;
  };
  const verifyStrict = async (raw, message, signature) => {
    if (raw.length !== 32) throw new Refusal("the public key is not 32 bytes");
    if (signature.length !== 64) throw new Refusal("the signature is not 64 bytes");
    const problem =
      pointProblem(raw, "public key") ||
      pointProblem(signature.slice(0, 32), "R") ||
      (below(signature.slice(32), L) ? null : "S >= L");
    if (problem) throw new Refusal(`refused by the strict rule: ${problem}`);
    let key;
    try {
      key = await crypto.subtle.importKey("raw", raw, { name: "Ed25519" }, false, ["verify"]);
    } catch (e) {
      throw new Refusal(`this browser cannot use this Ed25519 key (${e.name})`);
    }
    return crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
  };

  // A key from the page's trusted keys, whose id must be the one its bytes give (§4).
  const trustedKey = async (keyId) => {
    const item = [...document.querySelectorAll("#trusted-keys [data-key-id]")].find((li) => li.dataset.keyId === keyId);
    if (!item) throw new Refusal(`key ${keyId} is not among the trusted keys`);
    const raw = fromBase64(item.dataset.publicKey, "the public key");
    const id = "ed25519:" + hex(await sha256(raw)).slice(0, 16);
    if (raw.length !== 32 || id !== keyId) throw new Refusal(`the key listed as ${keyId} is ${id}`);
    return raw;
  };

  // Opens a DSSE envelope as stored and verifies its one signature (§2, §3).
  const open = async (text) => {
    let envelope;
    try {
      envelope = JSON.parse(text);
    } catch (_) {
      throw new Refusal("the envelope is not JSON");
    }
    if (envelope.payloadType !== PAYLOAD_TYPE) throw new Refusal("wrong payloadType");
    if (!Array.isArray(envelope.signatures) || envelope.signatures.length !== 1) throw new Refusal("not exactly one signature");
    const { keyid, sig } = envelope.signatures[0];
    const body = fromBase64(envelope.payload, "the payload");
    const signature = fromBase64(sig, "the signature");
    if (signature.length !== 64) throw new Refusal("the signature is not 64 bytes");
    let decoded;
    try {
      decoded = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
    } catch (_) {
      throw new Refusal("the body is not UTF-8 JSON");
    }
    if (decoded.key_id !== keyid) throw new Refusal("the signature's keyid is not the body's key_id");
    const ok = await verifyStrict(await trustedKey(keyid), pae(PAYLOAD_TYPE, body), signature);
    return { ok, keyid, body: decoded };
  };

  // RFC 9162 §2.1.3.2: the root an inclusion proof leads to (leaf hash 0x00, node 0x01).
  const rootOf = async (entry, index, size, proof) => {
    if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) {
      throw new Refusal(`leaf index ${index} is not in a tree of ${size}`);
    }
    let fn = index;
    let sn = size - 1;
    let r = await sha256(Uint8Array.of(0), entry);
    for (const p of proof) {
      if (sn === 0) throw new Refusal("the proof is longer than the tree is deep");
      if (fn % 2 === 1 || fn === sn) {
        r = await sha256(Uint8Array.of(1), p, r);
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      } else {
        r = await sha256(Uint8Array.of(1), r, p);
      }
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
    if (sn !== 0) throw new Refusal("the proof is shorter than the tree is deep");
    return r;
  };

  // The two rules on their own, for checking them against the service's (the golden
  // signature cases, the service's own Merkle proofs).
  window.authledgerVerifier = Object.freeze({ verifyStrict, inclusionRoot: rootOf });

  const list = document.getElementById("checks");
  const verdict = document.getElementById("browser-verdict");
  const again = document.getElementById("verify-again");
  const reason = (e) => (e instanceof Refusal ? e.message : `could not check (${e && e.name ? e.name : e})`);

  // The checks, in order; each shown as "name: verified" or "name: not verified — why".
  const checks = async (report) => {
    const text = document.getElementById("envelope").textContent;
    const leaf = await sha256(enc.encode(text));
    const shown = document.getElementById("event-hash").textContent.trim();
    report("event hash", shown === `sha256:${hex(leaf)}`, `SHA-256 of the envelope is sha256:${hex(leaf)}`);
    try {
      const event = await open(text);
      report("signature", event.ok, event.ok ? `by key ${event.keyid}` : `key ${event.keyid} does not verify it`);
    } catch (e) {
      report("signature", false, reason(e));
    }
    const inclusion = document.getElementById("inclusion");
    if (!inclusion) return "no checkpoint covers this event yet";
    const n = inclusion.dataset.sequence;
    let payload;
    try {
      const cp = await open(document.getElementById("checkpoint-envelope").textContent);
      payload = cp.body.payload || {};
      const ours = cp.body.kind === "ledger.checkpoint" && cp.body.workspace_id === "system" && String(payload.sequence) === n;
      if (!ours) throw new Refusal(`the envelope shown is not checkpoint ${n}`);
      report(`checkpoint ${n}'s signature`, cp.ok, cp.ok ? `by key ${cp.keyid}; it signs tree size ${payload.tree_size}, root ${payload.merkle_root}` : `key ${cp.keyid} does not verify it`);
      if (!cp.ok) payload = null;
    } catch (e) {
      report(`checkpoint ${n}'s signature`, false, reason(e));
      payload = null;
    }
    try {
      if (!payload) throw new Refusal("no signed checkpoint root to compare with");
      const proof = [...document.querySelectorAll("#proof code")].map((c) => fromHex(c.textContent.trim()));
      const root = hex(await rootOf(leaf, Number(inclusion.dataset.leafIndex), payload.tree_size, proof));
      const ok = root === payload.merkle_root;
      report(`included in checkpoint ${n}`, ok, ok ? `the proof's ${proof.length} hashes lead to its signed root` : `the proof leads to ${root}, not to the signed root`);
    } catch (e) {
      report(`included in checkpoint ${n}`, false, reason(e));
    }
    return null;
  };

  const run = async () => {
    section.dataset.state = "running";
    again.disabled = true;
    list.replaceChildren();
    let all = true;
    const report = (name, ok, detail) => {
      all = all && ok;
      const item = document.createElement("li");
      item.className = ok ? "ok" : "bad";
      const head = document.createElement("strong");
      head.textContent = `${name}: ${ok ? "verified" : "not verified"}`;
      item.append(head, ` — ${detail}`);
      list.append(item);
    };
    let missing = null;
    try {
      missing = await checks(report);
    } catch (e) {
      report("verification", false, reason(e));
    }
    verdict.className = `verdict ${all ? "ok" : "bad"}`;
    verdict.textContent = !all
      ? "Not verified: at least one check failed (below)."
      : missing
        ? `Signature verified in this browser; ${missing}.`
        : "Verified in this browser: signed by a trusted key and included in the latest checkpoint.";
    again.disabled = false;
    section.dataset.state = "done";
  };

  again.hidden = false;
  again.addEventListener("click", run);
  run();
})();
