//! Checkpoints as C2SP signed notes (`schemas/README.md` §7c), so transparency-log tooling
//! (witnesses, `sigsum`/`litetlog` style verifiers) can read them:
//!
//! ```text
//! authledger/<event id at position 1>      origin
//! 1234                                     tree size
//! <base64 of the 32-byte RFC 6962 root>
//!
//! — authledger/<…> <base64(key id (4) || ed25519 signature (64))>
//! — <witness name> <base64(key id (4) || timestamp (8, big-endian) || signature (64))>
//! ```
//!
//! Pure: parsing, formatting, key ids and strict (`verify_strict`) signature checks. The
//! log's note signature uses signature type 0x01 (signed-note Ed25519); a witness's
//! cosignature type 0x04 (tlog-cosignature `cosignature/v1`).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// The prefix of every origin line authledger writes: `authledger/` + the event id of the
/// log's first event (a UUIDv7, unique per log and stable across key rotations).
pub const ORIGIN_PREFIX: &str = "authledger/";
/// Signed-note signature type of an Ed25519 note signature.
pub const TYPE_ED25519: u8 = 0x01;
/// tlog-cosignature type of an Ed25519 `cosignature/v1`.
pub const TYPE_COSIGNATURE_V1: u8 = 0x04;
const DASH: &str = "\u{2014} ";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("not a signed note: {0}")]
    Malformed(String),
    #[error("not a checkpoint: {0}")]
    Checkpoint(String),
    #[error("not a verifier key: {0}")]
    Key(String),
    #[error("no valid signature by {0}")]
    Unsigned(String),
}

fn malformed(reason: impl Into<String>) -> NoteError {
    NoteError::Malformed(reason.into())
}

/// The origin of a log whose first event has this id.
pub fn origin_of(first_event_id: &str) -> String {
    format!("{ORIGIN_PREFIX}{first_event_id}")
}

/// A checkpoint body (tlog-checkpoint): origin, tree size, root hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub tree_size: u64,
    pub root: [u8; 32],
}

impl Checkpoint {
    /// The note body: three newline-terminated lines, no extension lines.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.tree_size,
            B64.encode(self.root)
        )
    }

    /// Parses a note body. Extension lines after the root are allowed (and ignored);
    /// authledger writes none.
    pub fn parse_body(body: &str) -> Result<Checkpoint, NoteError> {
        let bad = |r: &str| NoteError::Checkpoint(r.to_string());
        let text = body
            .strip_suffix('\n')
            .ok_or_else(|| bad("the body does not end with a newline"))?;
        let mut lines = text.split('\n');
        let origin = lines.next().unwrap_or_default();
        if origin.is_empty() {
            return Err(bad("empty origin line"));
        }
        let size = lines.next().ok_or_else(|| bad("no tree size line"))?;
        if size.is_empty()
            || !size.bytes().all(|b| b.is_ascii_digit())
            || (size.len() > 1 && size.starts_with('0'))
        {
            return Err(bad("the tree size is not a decimal without leading zeros"));
        }
        let tree_size = size
            .parse()
            .map_err(|_| bad("the tree size is too large"))?;
        let root = lines.next().ok_or_else(|| bad("no root hash line"))?;
        let root: [u8; 32] = B64
            .decode(root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or_else(|| bad("the root hash is not base64 of 32 bytes"))?;
        if lines.any(str::is_empty) {
            return Err(bad("empty extension line"));
        }
        Ok(Checkpoint {
            origin: origin.to_string(),
            tree_size,
            root,
        })
    }
}

/// One signature line: `— <name> base64(key id || signature bytes)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub key_id: [u8; 4],
    /// What follows the key id: a signature, or a cosignature's timestamp and signature.
    pub bytes: Vec<u8>,
}

impl NoteSignature {
    pub fn line(&self) -> String {
        let mut raw = self.key_id.to_vec();
        raw.extend_from_slice(&self.bytes);
        format!("{DASH}{} {}\n", self.name, B64.encode(raw))
    }
}

/// A signed note: its body (ending in a newline) and its signature lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub body: String,
    pub signatures: Vec<NoteSignature>,
}

fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
        return Err(malformed("a key name is non-empty, without spaces or '+'"));
    }
    Ok(())
}

impl Note {
    /// Parses a note as signed-note specifies: UTF-8 text ending in a newline, no control
    /// characters but newlines, the body and the signatures separated by the last blank
    /// line, at least one signature line.
    pub fn parse(text: &str) -> Result<Note, NoteError> {
        if text
            .chars()
            .any(|c| c != '\n' && (c.is_control() || c == '\u{feff}'))
        {
            return Err(malformed("control character or byte-order mark"));
        }
        let split = text
            .rfind("\n\n")
            .ok_or_else(|| malformed("no blank line before the signatures"))?;
        let body = &text[..=split];
        let block = &text[split + 2..];
        let block = block
            .strip_suffix('\n')
            .ok_or_else(|| malformed("the note does not end with a newline"))?;
        let mut signatures = Vec::new();
        for line in block.split('\n') {
            let rest = line
                .strip_prefix(DASH)
                .ok_or_else(|| malformed("a signature line starts with an em dash and a space"))?;
            let (name, sig) = rest
                .split_once(' ')
                .ok_or_else(|| malformed("a signature line is `— <name> <base64>`"))?;
            check_name(name)?;
            let raw = B64
                .decode(sig)
                .map_err(|_| malformed("a signature is not standard base64"))?;
            if raw.len() < 5 {
                return Err(malformed("a signature is shorter than its key id"));
            }
            let mut key_id = [0u8; 4];
            key_id.copy_from_slice(&raw[..4]);
            signatures.push(NoteSignature {
                name: name.to_string(),
                key_id,
                bytes: raw[4..].to_vec(),
            });
        }
        Ok(Note {
            body: body.to_string(),
            signatures,
        })
    }

    pub fn text(&self) -> String {
        let mut out = self.body.clone();
        out.push('\n');
        for s in &self.signatures {
            out.push_str(&s.line());
        }
        out
    }

    pub fn checkpoint(&self) -> Result<Checkpoint, NoteError> {
        Checkpoint::parse_body(&self.body)
    }

    /// The key that made a valid log signature (name = `origin`, type 0x01) among `keys`.
    pub fn verify_log_signature<'k>(
        &self,
        origin: &str,
        keys: impl IntoIterator<Item = &'k VerifyingKey>,
    ) -> Result<&'k VerifyingKey, NoteError> {
        let keys: Vec<&VerifyingKey> = keys.into_iter().collect();
        for s in self.signatures.iter().filter(|s| s.name == origin) {
            let Ok(sig) = <[u8; 64]>::try_from(s.bytes.as_slice()) else {
                continue;
            };
            let sig = Signature::from_bytes(&sig);
            for k in &keys {
                if note_key_id(origin, k) == s.key_id
                    && k.verify_strict(self.body.as_bytes(), &sig).is_ok()
                {
                    return Ok(k);
                }
            }
        }
        Err(NoteError::Unsigned(origin.to_string()))
    }

    /// The timestamp of a valid cosignature by `witness`.
    pub fn verify_cosignature(&self, witness: &WitnessKey) -> Result<u64, NoteError> {
        let id = witness.key_id();
        for s in self
            .signatures
            .iter()
            .filter(|s| s.name == witness.name && s.key_id == id)
        {
            if let Some(ts) = check_cosignature(&self.body, &witness.public, &s.bytes) {
                return Ok(ts);
            }
        }
        Err(NoteError::Unsigned(witness.name.clone()))
    }
}

fn key_hash(name: &str, kind: u8, public: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', kind]);
    h.update(public.as_bytes());
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// Signed-note key id of an Ed25519 note key: `SHA-256(name || 0x0A || 0x01 || key)[:4]`.
pub fn note_key_id(name: &str, public: &VerifyingKey) -> [u8; 4] {
    key_hash(name, TYPE_ED25519, public)
}

/// The note of a checkpoint signed by the log: `sig` is Ed25519 over `checkpoint.body()`
/// by the key `public`.
pub fn signed_checkpoint(checkpoint: &Checkpoint, public: &VerifyingKey, sig: [u8; 64]) -> Note {
    Note {
        body: checkpoint.body(),
        signatures: vec![NoteSignature {
            name: checkpoint.origin.clone(),
            key_id: note_key_id(&checkpoint.origin, public),
            bytes: sig.to_vec(),
        }],
    }
}

/// The message a `cosignature/v1` signs.
pub fn cosignature_message(body: &str, timestamp: u64) -> Vec<u8> {
    format!("cosignature/v1\ntime {timestamp}\n{body}").into_bytes()
}

fn check_cosignature(body: &str, public: &VerifyingKey, bytes: &[u8]) -> Option<u64> {
    if bytes.len() != 72 {
        return None;
    }
    let ts = u64::from_be_bytes(bytes[..8].try_into().ok()?);
    if ts > i64::MAX as u64 {
        return None;
    }
    let sig = Signature::from_bytes(&bytes[8..].try_into().ok()?);
    public
        .verify_strict(&cosignature_message(body, ts), &sig)
        .ok()
        .map(|_| ts)
}

/// A cosigner's verifier key (`<name>+<hex key id>+<base64(0x04 || key)>`, signed-note
/// "vkey" form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessKey {
    pub name: String,
    pub public: VerifyingKey,
}

impl WitnessKey {
    pub fn key_id(&self) -> [u8; 4] {
        key_hash(&self.name, TYPE_COSIGNATURE_V1, &self.public)
    }

    pub fn vkey(&self) -> String {
        let mut raw = vec![TYPE_COSIGNATURE_V1];
        raw.extend_from_slice(self.public.as_bytes());
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(self.key_id()),
            B64.encode(raw)
        )
    }

    pub fn parse(vkey: &str) -> Result<WitnessKey, NoteError> {
        let bad = |r: &str| NoteError::Key(r.to_string());
        let mut parts = vkey.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected <name>+<hex key id>+<base64 key>"));
        };
        check_name(name).map_err(|_| bad("bad name"))?;
        let raw = B64.decode(key).map_err(|_| bad("the key is not base64"))?;
        let (kind, public) = raw.split_first().ok_or_else(|| bad("empty key"))?;
        if *kind != TYPE_COSIGNATURE_V1 {
            return Err(bad("not an Ed25519 cosignature/v1 key (type 0x04)"));
        }
        let public: [u8; 32] = public
            .try_into()
            .map_err(|_| bad("not a 32-byte Ed25519 key"))?;
        let public = VerifyingKey::from_bytes(&public).map_err(|_| bad("not an Ed25519 point"))?;
        if public.is_weak() {
            return Err(bad("a small-order key"));
        }
        let key = WitnessKey {
            name: name.to_string(),
            public,
        };
        if hex::encode(key.key_id()) != id {
            return Err(bad("the key id does not match the name and key"));
        }
        Ok(key)
    }

    /// A short id for storage names: the first 32 hex digits of SHA-256 of the vkey.
    pub fn storage_id(&self) -> String {
        hex::encode(&Sha256::digest(self.vkey().as_bytes())[..16])
    }
}

/// Cosigns a checkpoint body at `timestamp` (POSIX seconds): the signature line's bytes.
pub fn cosign(body: &str, name: &str, key: &SigningKey, timestamp: u64) -> NoteSignature {
    let sig = key.sign(&cosignature_message(body, timestamp));
    let mut bytes = timestamp.to_be_bytes().to_vec();
    bytes.extend_from_slice(&sig.to_bytes());
    NoteSignature {
        name: name.to_string(),
        key_id: key_hash(name, TYPE_COSIGNATURE_V1, &key.verifying_key()),
        bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            origin: origin_of("01900000-0000-7000-8000-000000000001"),
            tree_size: 42,
            root: [7; 32],
        }
    }

    #[test]
    fn a_signed_checkpoint_round_trips_and_verifies_strictly() {
        let k = key(1);
        let cp = checkpoint();
        let sig = k.sign(cp.body().as_bytes()).to_bytes();
        let note = signed_checkpoint(&cp, &k.verifying_key(), sig);
        let text = note.text();
        assert!(text.starts_with("authledger/01900000-0000-7000-8000-000000000001\n42\n"));
        let parsed = Note::parse(&text).unwrap();
        assert_eq!(parsed, note);
        assert_eq!(parsed.checkpoint().unwrap(), cp);
        let pk = k.verifying_key();
        assert!(parsed.verify_log_signature(&cp.origin, [&pk]).is_ok());
        // Another key, another name, or another body: no valid signature.
        let other = key(2).verifying_key();
        assert!(parsed.verify_log_signature(&cp.origin, [&other]).is_err());
        assert!(parsed.verify_log_signature("authledger/x", [&pk]).is_err());
        let altered = text.replace("\n42\n", "\n43\n");
        assert!(Note::parse(&altered)
            .unwrap()
            .verify_log_signature(&cp.origin, [&pk])
            .is_err());
    }

    #[test]
    fn cosignatures_verify_only_for_their_witness_and_body() {
        let log = key(1);
        let cp = checkpoint();
        let mut note = signed_checkpoint(
            &cp,
            &log.verifying_key(),
            log.sign(cp.body().as_bytes()).to_bytes(),
        );
        let w = key(3);
        let wk = WitnessKey {
            name: "witness.example/w1".into(),
            public: w.verifying_key(),
        };
        assert_eq!(WitnessKey::parse(&wk.vkey()).unwrap(), wk);
        note.signatures
            .push(cosign(&note.body, &wk.name, &w, 1_700_000_000));
        let parsed = Note::parse(&note.text()).unwrap();
        assert_eq!(parsed.verify_cosignature(&wk).unwrap(), 1_700_000_000);
        let stranger = WitnessKey {
            name: wk.name.clone(),
            public: key(4).verifying_key(),
        };
        assert!(parsed.verify_cosignature(&stranger).is_err());
        // The timestamp is signed.
        let mut forged = parsed.clone();
        forged.signatures[1].bytes[7] ^= 1;
        assert!(forged.verify_cosignature(&wk).is_err());
    }

    #[test]
    fn malformed_notes_and_keys_are_refused() {
        for text in [
            "",
            "a\n1\nAAAA\n",
            "a\n1\nAAAA\n\n— a AAAA\n",
            "a\n1\nAAAA\n\n- a AAAAAAA=\n",
            "a\n1\nAAAA\n\n— a AAAAAAA=",
            "\u{feff}a\n1\nAAAA\n\n— a AAAAAAA=\n",
            "a\r\n1\nAAAA\n\n— a AAAAAAA=\n",
        ] {
            assert!(Note::parse(text).is_err(), "{text:?}");
        }
        let root = B64.encode([0u8; 32]);
        for body in [
            format!("o\n01\n{root}\n"),
            format!("\n1\n{root}\n"),
            format!("o\n1\n{}\n", B64.encode([0u8; 31])),
            format!("o\n1\n{root}"),
            format!("o\n-1\n{root}\n"),
        ] {
            assert!(Checkpoint::parse_body(&body).is_err(), "{body:?}");
        }
        assert!(Checkpoint::parse_body(&format!("o\n0\n{root}\n")).is_ok());
        let wk = WitnessKey {
            name: "w".into(),
            public: key(3).verifying_key(),
        };
        let good = wk.vkey();
        assert!(WitnessKey::parse(&good.replacen("w+", "v+", 1)).is_err());
        assert!(WitnessKey::parse("w+00000000+AQ==").is_err());
    }
}
