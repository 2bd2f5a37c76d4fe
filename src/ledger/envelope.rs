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
    let mut text = *b"sha256:0000000000000000000000000000000000000000000000000000000000000000";
    // Into a buffer of the right size: `hex::encode` goes a character at a time.
    if hex::encode_to_slice(Sha256::digest(envelope), &mut text[7..]).is_err() {
        unreachable!("a SHA-256 digest is 32 bytes, 64 hex digits");
    }
    String::from_utf8_lossy(&text).into_owned()
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

impl ActorType {
    /// The name events carry (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            ActorType::System => "system",
            ActorType::ApiKey => "api_key",
            ActorType::User => "user",
            ActorType::Member => "member",
            ActorType::Agent => "agent",
            ActorType::Anonymous => "anonymous",
        }
    }
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
        Self::check_parts(&key.workspace_id, &key.aggregate_type, &key.aggregate_id)?;
        Ok(key)
    }

    /// What `new` checks, without making a key.
    fn check_parts(
        workspace_id: &str,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<(), EnvelopeError> {
        check_token("workspace_id", workspace_id)?;
        check_token("aggregate_id", aggregate_id)?;
        if aggregate_type.is_empty()
            || aggregate_type.len() > 64
            || !all_bytes(aggregate_type, |b| b.is_ascii_lowercase() || b == b'_')
        {
            return Err(EnvelopeError::InvalidField {
                field: "aggregate_type",
                reason: "must be 1-64 characters of a-z and _".into(),
            });
        }
        Ok(())
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
        && all_bytes(v, |b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
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
        AggregateKey::check_parts(&self.workspace_id, &self.aggregate_type, &self.aggregate_id)?;
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
    s.len() == len && all_bytes(s, |b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether every byte of `s` is `ok`: one pass without an early exit, which the compiler
/// vectorises. For short text checked per event (ids, hashes, `COPY` values): an early
/// exit, `str::find` or `memchr` costs more there.
pub fn all_bytes(s: &str, ok: impl Fn(u8) -> bool) -> bool {
    s.bytes().fold(true, |all, b| all & ok(b))
}

/// `event_id`: exactly `xxxxxxxx-xxxx-7xxx-[89ab]xxx-xxxxxxxxxxxx` in lowercase hex.
fn uuid_v7_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
    let text = RawText::deserialize(d)?;
    let b: &[u8] = &text.0;
    let shape_ok = b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
        && b[14] == b'7'
        && matches!(b[19], b'8' | b'9' | b'a' | b'b');
    if !shape_ok {
        return Err(serde::de::Error::custom(format!(
            "event_id {:?} is not a lowercase UUIDv7",
            String::from_utf8_lossy(b)
        )));
    }
    Uuid::try_parse_ascii(b).map_err(serde::de::Error::custom)
}

#[derive(Debug, Serialize)]
struct DsseEnvelope {
    #[serde(rename = "payloadType")]
    payload_type: String,
    payload: String,
    signatures: Vec<DsseSignature>,
}

#[derive(Debug, Serialize)]
struct DsseSignature {
    keyid: String,
    sig: String,
}

/// An envelope as read, borrowing from the stored bytes what has no escapes: one copy
/// fewer of the payload, the largest part, on every read of the log.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredEnvelope<'a> {
    #[serde(rename = "payloadType", borrow)]
    payload_type: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    payload: RawText<'a>,
    #[serde(borrow)]
    signatures: Vec<StoredSignature<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredSignature<'a> {
    keyid: String,
    #[serde(borrow)]
    sig: RawText<'a>,
}

/// A JSON string's bytes (unescaped), borrowed unless it has escapes: for values whose own
/// check covers every byte (base64, a UUID's shape), so not checked as UTF-8 first.
struct RawText<'a>(std::borrow::Cow<'a, [u8]>);

impl<'de: 'a, 'a> Deserialize<'de> for RawText<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        use std::borrow::Cow;
        struct Text<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Text<'a> {
            type Value = RawText<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_bytes<E: Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
                Ok(RawText(Cow::Borrowed(v)))
            }
            fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Self::Value, E> {
                Ok(RawText(Cow::Owned(v.to_vec())))
            }
            fn visit_borrowed_str<E: Error>(self, v: &'de str) -> Result<Self::Value, E> {
                self.visit_borrowed_bytes(v.as_bytes())
            }
            fn visit_str<E: Error>(self, v: &str) -> Result<Self::Value, E> {
                self.visit_bytes(v.as_bytes())
            }
        }
        d.deserialize_bytes(Text(std::marker::PhantomData))
    }
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
    let env: StoredEnvelope =
        serde_json::from_slice(envelope).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
    if env.payload_type != PAYLOAD_TYPE {
        return Err(EnvelopeError::PayloadType(env.payload_type.into_owned()));
    }
    let body_bytes = B64
        .decode(&env.payload.0)
        .map_err(|_| EnvelopeError::PayloadEncoding)?;
    match env.signatures.len() {
        0 => return Err(EnvelopeError::NoSignature),
        1 => {}
        n => return Err(EnvelopeError::ManySignatures(n)),
    }
    let mut signatures = Vec::with_capacity(env.signatures.len());
    for s in env.signatures {
        let raw = B64
            .decode(&s.sig.0)
            .map_err(|_| EnvelopeError::SignatureEncoding)?;
        let sig: [u8; 64] = raw
            .try_into()
            .map_err(|_| EnvelopeError::SignatureEncoding)?;
        signatures.push((s.keyid, sig));
    }
    // Checked as UTF-8 once, whole: read from bytes, serde_json checks each of the body's
    // strings (keys included, some forty) on its own.
    let body: EventBody = std::str::from_utf8(&body_bytes)
        .map_err(|e| EnvelopeError::Body(e.to_string()))
        .and_then(|text| {
            serde_json::from_str(text).map_err(|e| EnvelopeError::Body(e.to_string()))
        })?;
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
    fn an_actor_type_names_itself_as_events_carry_it() {
        use ActorType::*;
        for t in [System, ApiKey, User, Member, Agent, Anonymous] {
            assert_eq!(
                serde_json::to_value(t).ok(),
                Some(t.as_str().into()),
                "{t:?}"
            );
        }
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

        #[test]
        fn a_payload_written_with_escapes_opens_and_one_not_a_string_is_refused() {
            let body = body(serde_json::json!({"name": "Acme"}));
            let env = encode_envelope(&body, "k", &[7; 64]).unwrap_or_else(|e| unreachable!("{e}"));
            let text = String::from_utf8_lossy(&env).into_owned();
            // JSON lets a writer escape any character: `\u0065` is the payload's first, `e`
            // (`{"` in base64).
            let escaped = text.replacen(r#""payload":"e"#, r#""payload":"\u0065"#, 1);
            assert_ne!(escaped, text);
            let opened = open_envelope(escaped.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(opened.body_bytes, body);
            for payload in ["42", "[\"eyJ9\"]", "null"] {
                let env = format!(
                    r#"{{"payloadType":"{PAYLOAD_TYPE}","payload":{payload},"signatures":[{{"keyid":"k","sig":"AA=="}}]}}"#
                );
                assert!(
                    matches!(
                        open_envelope(env.as_bytes()),
                        Err(EnvelopeError::Malformed(_))
                    ),
                    "{payload}"
                );
            }
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
