//! The signed form of an event (see `schemas/README.md`, which is normative).
//!
//! An event is a JSON *body* (bytes kept verbatim, never re-serialised) wrapped in a DSSE
//! envelope: `sig = ed25519(PAE(payloadType, body))`. The envelope bytes are what the event
//! log stores; `hash = sha256(envelope bytes)` chains each event to its aggregate's
//! previous one.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The versioned DSSE payload type of every ledger event.
pub const PAYLOAD_TYPE: &str = "application/vnd.authledger.event.v1+json";

/// Largest envelope the ledger writes or accepts (well under NATS' default 1 MiB payload).
pub const MAX_ENVELOPE_BYTES: usize = 512 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("envelope is not valid DSSE JSON: {0}")]
    Malformed(String),
    #[error("unexpected payloadType {0:?}")]
    PayloadType(String),
    #[error("payload is not valid base64")]
    PayloadEncoding,
    #[error("envelope has no signature")]
    NoSignature,
    #[error("envelope has {0} signatures; v1 events carry exactly one")]
    ManySignatures(usize),
    #[error("signature is not 64 bytes of base64")]
    SignatureEncoding,
    #[error("body is not a valid event body: {0}")]
    Body(String),
    #[error("invalid {field}: {reason}")]
    InvalidField { field: &'static str, reason: String },
    #[error("envelope is {0} bytes, over the {MAX_ENVELOPE_BYTES} byte limit")]
    TooLarge(usize),
}

/// DSSE v1 pre-authentication encoding: the exact bytes that are signed.
pub fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(body);
    out
}

/// `sha256:<hex>` of the stored envelope bytes.
pub fn event_hash(envelope: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(envelope)))
}

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    #[serde(rename = "type")]
    pub actor_type: ActorType,
    pub id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorType {
    /// The service itself or an operator using the CLI on the host.
    System,
    ApiKey,
    User,
    /// A team member signed in to the console.
    Member,
    Agent,
    /// A caller that presented no valid credentials (recorded on refusals only).
    Anonymous,
}

impl Actor {
    pub fn system(id: impl Into<String>) -> Self {
        Actor {
            actor_type: ActorType::System,
            id: id.into(),
        }
    }
}

/// Identifies one aggregate: `ledger.<workspace>.<aggregate_type>.<aggregate_id>` on JetStream.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AggregateKey {
    pub workspace_id: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
}

impl AggregateKey {
    /// Validates every part so that it is a single, safe NATS subject token.
    pub fn new(
        workspace_id: impl Into<String>,
        aggregate_type: impl Into<String>,
        aggregate_id: impl Into<String>,
    ) -> Result<Self, EnvelopeError> {
        let key = AggregateKey {
            workspace_id: workspace_id.into(),
            aggregate_type: aggregate_type.into(),
            aggregate_id: aggregate_id.into(),
        };
        check_token("workspace_id", &key.workspace_id)?;
        check_token("aggregate_id", &key.aggregate_id)?;
        if key.aggregate_type.is_empty()
            || key.aggregate_type.len() > 64
            || !key
                .aggregate_type
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_')
        {
            return Err(EnvelopeError::InvalidField {
                field: "aggregate_type",
                reason: "must be 1-64 characters of a-z and _".into(),
            });
        }
        Ok(key)
    }

    /// The aggregate as a log's index filed it, without validation: the signed body is the
    /// truth, and the verifier reports where an index disagrees with it.
    pub fn from_index(
        workspace_id: impl Into<String>,
        aggregate_type: impl Into<String>,
        aggregate_id: impl Into<String>,
    ) -> Self {
        AggregateKey {
            workspace_id: workspace_id.into(),
            aggregate_type: aggregate_type.into(),
            aggregate_id: aggregate_id.into(),
        }
    }

    pub fn subject(&self, prefix: &str) -> String {
        format!(
            "{prefix}.{}.{}.{}",
            self.workspace_id, self.aggregate_type, self.aggregate_id
        )
    }
}

impl std::fmt::Display for AggregateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.workspace_id, self.aggregate_type, self.aggregate_id
        )
    }
}

fn check_token(field: &'static str, v: &str) -> Result<(), EnvelopeError> {
    let ok = !v.is_empty()
        && v.len() <= 128
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(EnvelopeError::InvalidField {
            field,
            reason: "must be 1-128 characters of A-Z a-z 0-9 - _".into(),
        })
    }
}

/// The signed body of an event. Field order here is the order written; verifiers never
/// depend on it because they check the stored bytes.
///
/// Reading one is as strict as `schemas/events/v1/body.json` (§1): no other fields (here
/// or in `actor`), and `EventBody::check` holds (see `open_envelope`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventBody {
    /// A UUIDv7 in its lowercase hyphenated form.
    #[serde(deserialize_with = "uuid_v7_text")]
    pub event_id: Uuid,
    pub workspace_id: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub aggregate_version: u64,
    pub kind: String,
    pub schema_version: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: time::OffsetDateTime,
    pub actor: Actor,
    pub payload: serde_json::Value,
    /// `sha256:<hex>` of the previous event's envelope in this aggregate; null for version 1.
    pub prev_hash: Option<String>,
    pub key_id: String,
    /// The W3C trace id (32 lower-case hex, not all zeros) of the request that appended
    /// the event, when traces are exported; absent otherwise (never `null`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

impl EventBody {
    pub fn aggregate_key(&self) -> Result<AggregateKey, EnvelopeError> {
        AggregateKey::new(&self.workspace_id, &self.aggregate_type, &self.aggregate_id)
    }

    /// The field rules of `events/v1/body.json` that the types alone do not enforce.
    pub fn check(&self) -> Result<(), EnvelopeError> {
        let invalid = |field: &'static str, reason: &str| {
            Err(EnvelopeError::InvalidField {
                field,
                reason: reason.into(),
            })
        };
        self.aggregate_key()?;
        if self.aggregate_version < 1 {
            return invalid("aggregate_version", "must be an integer >= 1");
        }
        if self.schema_version < 1 {
            return invalid("schema_version", "must be an integer >= 1");
        }
        let word =
            |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        match self.kind.split_once('.') {
            Some((a, b)) if word(a) && word(b) => {}
            _ => return invalid("kind", "must match [a-z_]+.[a-z_]+"),
        }
        if self.actor.id.is_empty() {
            return invalid("actor", "id must not be empty");
        }
        if !self.payload.is_object() {
            return invalid("payload", "must be a JSON object");
        }
        if let Some(h) = &self.prev_hash {
            let ok = h
                .strip_prefix("sha256:")
                .is_some_and(|x| is_lower_hex(x, 64));
            if !ok {
                return invalid("prev_hash", "must be null or sha256:<64 lowercase hex>");
            }
        }
        let ok = self
            .key_id
            .strip_prefix("ed25519:")
            .is_some_and(|x| is_lower_hex(x, 16));
        if !ok {
            return invalid("key_id", "must be ed25519:<16 lowercase hex>");
        }
        if let Some(t) = &self.trace_id {
            if !is_lower_hex(t, 32) || t.bytes().all(|b| b == b'0') {
                return invalid("trace_id", "must be 32 lowercase hex, not all zeros");
            }
        }
        Ok(())
    }
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `event_id`: exactly `xxxxxxxx-xxxx-7xxx-[89ab]xxx-xxxxxxxxxxxx` in lowercase hex.
fn uuid_v7_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
    let text = String::deserialize(d)?;
    let b = text.as_bytes();
    let shape_ok = b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
        && b[14] == b'7'
        && matches!(b[19], b'8' | b'9' | b'a' | b'b');
    if !shape_ok {
        return Err(serde::de::Error::custom(format!(
            "event_id {text:?} is not a lowercase UUIDv7"
        )));
    }
    Uuid::parse_str(&text).map_err(serde::de::Error::custom)
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DsseEnvelope {
    #[serde(rename = "payloadType")]
    payload_type: String,
    payload: String,
    signatures: Vec<DsseSignature>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DsseSignature {
    keyid: String,
    sig: String,
}

/// Encodes a signed envelope. `sig` is over `pae(PAYLOAD_TYPE, body)`.
pub fn encode_envelope(body: &[u8], key_id: &str, sig: &[u8; 64]) -> Result<Bytes, EnvelopeError> {
    let env = DsseEnvelope {
        payload_type: PAYLOAD_TYPE.to_string(),
        payload: B64.encode(body),
        signatures: vec![DsseSignature {
            keyid: key_id.to_string(),
            sig: B64.encode(sig),
        }],
    };
    let bytes = serde_json::to_vec(&env).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
    if bytes.len() > MAX_ENVELOPE_BYTES {
        return Err(EnvelopeError::TooLarge(bytes.len()));
    }
    Ok(Bytes::from(bytes))
}

/// An envelope taken apart, without any trust decision yet.
#[derive(Debug, Clone)]
pub struct OpenedEnvelope {
    /// The body bytes exactly as signed.
    pub body_bytes: Vec<u8>,
    pub body: EventBody,
    /// (key id hint, signature) pairs, in envelope order.
    pub signatures: Vec<(String, [u8; 64])>,
    pub hash: String,
}

/// Parses envelope bytes as stored. Does not check signatures (see `keys::KeyRing`).
pub fn open_envelope(envelope: &[u8]) -> Result<OpenedEnvelope, EnvelopeError> {
    if envelope.len() > MAX_ENVELOPE_BYTES {
        return Err(EnvelopeError::TooLarge(envelope.len()));
    }
    let env: DsseEnvelope =
        serde_json::from_slice(envelope).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
    if env.payload_type != PAYLOAD_TYPE {
        return Err(EnvelopeError::PayloadType(env.payload_type));
    }
    let body_bytes = B64
        .decode(env.payload.as_bytes())
        .map_err(|_| EnvelopeError::PayloadEncoding)?;
    match env.signatures.len() {
        0 => return Err(EnvelopeError::NoSignature),
        1 => {}
        n => return Err(EnvelopeError::ManySignatures(n)),
    }
    let mut signatures = Vec::with_capacity(env.signatures.len());
    for s in env.signatures {
        let raw = B64
            .decode(s.sig.as_bytes())
            .map_err(|_| EnvelopeError::SignatureEncoding)?;
        let sig: [u8; 64] = raw
            .try_into()
            .map_err(|_| EnvelopeError::SignatureEncoding)?;
        signatures.push((s.keyid, sig));
    }
    let body: EventBody =
        serde_json::from_slice(&body_bytes).map_err(|e| EnvelopeError::Body(e.to_string()))?;
    body.check()?;
    Ok(OpenedEnvelope {
        body_bytes,
        body,
        signatures,
        hash: event_hash(envelope),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_dsse_spec_example() {
        // From the DSSE protocol document.
        let got = pae("http://example.com/HelloWorld", b"hello world");
        assert_eq!(
            got,
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn aggregate_key_rejects_subject_metacharacters() {
        for bad in ["a.b", "a*", ">", "", "a b"] {
            assert!(AggregateKey::new(bad, "workspace", "x").is_err(), "{bad}");
            assert!(AggregateKey::new("w", "workspace", bad).is_err(), "{bad}");
        }
        assert!(AggregateKey::new("w", "Workspace", "x").is_err());
        let k = AggregateKey::new("w-1", "api_key", "K_2").unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(k.subject("ledger"), "ledger.w-1.api_key.K_2");
    }

    #[test]
    fn open_rejects_wrong_payload_type_and_missing_signature() {
        let env = br#"{"payloadType":"text/plain","payload":"","signatures":[]}"#;
        assert_eq!(
            open_envelope(env).err(),
            Some(EnvelopeError::PayloadType("text/plain".into()))
        );
        let env = format!(r#"{{"payloadType":"{PAYLOAD_TYPE}","payload":"","signatures":[]}}"#);
        assert_eq!(
            open_envelope(env.as_bytes()).err(),
            Some(EnvelopeError::NoSignature)
        );
    }

    mod properties {
        use super::*;
        use crate::ledger::{Actor, ActorType};
        use proptest::prelude::*;

        fn body(payload: serde_json::Value) -> Vec<u8> {
            let body = EventBody {
                event_id: Uuid::now_v7(),
                workspace_id: "ws1".into(),
                aggregate_type: "workspace".into(),
                aggregate_id: "ws1".into(),
                aggregate_version: 1,
                kind: "workspace.created".into(),
                schema_version: 1,
                occurred_at: time::OffsetDateTime::UNIX_EPOCH,
                actor: Actor {
                    actor_type: ActorType::System,
                    id: "system".into(),
                },
                payload,
                prev_hash: None,
                key_id: "ed25519:0011223344556677".into(),
                trace_id: None,
            };
            serde_json::to_vec(&body).unwrap_or_default()
        }

        fn signature() -> impl Strategy<Value = [u8; 64]> {
            prop::collection::vec(any::<u8>(), 64).prop_map(|v| v.try_into().unwrap_or([0; 64]))
        }

        #[test]
        fn a_plain_body_opens() {
            let env = encode_envelope(&body(serde_json::json!({"name": "Acme"})), "k", &[7; 64]);
            let env = env.unwrap_or_else(|e| unreachable!("{e}"));
            assert!(
                open_envelope(&env).is_ok(),
                "{:?}",
                open_envelope(&env).err()
            );
        }

        proptest! {
            /// Any bytes at all open or are refused; never a panic.
            #[test]
            fn any_bytes_open_or_are_refused(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
                let _ = open_envelope(&bytes);
            }

            /// What is sealed opens to exactly the body bytes, key id and signature given.
            #[test]
            fn a_sealed_body_opens_as_sealed(name in "\\PC{0,40}", key in "[a-z0-9:]{1,24}", sig in signature()) {
                let body = body(serde_json::json!({ "name": name }));
                let env = encode_envelope(&body, &key, &sig).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let opened = open_envelope(&env).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(&opened.body_bytes, &body);
                prop_assert_eq!(opened.signatures, vec![(key, sig)]);
                prop_assert_eq!(opened.hash, event_hash(&env));
            }

            /// One changed byte anywhere in an envelope is refused, or opens to other body
            /// bytes or another signature: never silently to the same signed content.
            #[test]
            fn a_changed_byte_never_opens_to_the_same_content(at in any::<prop::sample::Index>(), byte in any::<u8>(), sig in signature()) {
                let env = encode_envelope(&body(serde_json::json!({"name": "Acme"})), "k1", &sig)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let original = open_envelope(&env).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let mut changed = env.to_vec();
                let i = at.index(changed.len());
                prop_assume!(changed[i] != byte);
                changed[i] = byte;
                if let Ok(opened) = open_envelope(&changed) {
                    prop_assert!(
                        opened.body_bytes != original.body_bytes || opened.signatures != original.signatures,
                        "byte {} changed to {} opened to the same content", i, byte
                    );
                }
            }
        }
    }
}
