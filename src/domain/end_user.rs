//! An end user's browser sessions on their own pages (`/me/`): opened when the workspace's
//! identity provider signed them in (OpenID Connect, its `id_token` verified), closed when
//! they sign out or at the absolute end. Only the session secret's hash is recorded, so every
//! instance decides a session from the log alone and nothing in the log opens one.
//!
//! The aggregate id is [`end_user_id`] of the provider's `sub` (which may hold any
//! characters), the `sub` itself is in the event.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::{check_name, Aggregate, DomainError, Event};

/// The aggregate id of the end user whose identity provider `sub` is `user_id`.
pub fn end_user_id(user_id: &str) -> String {
    let digest = Sha256::digest(user_id.as_bytes());
    format!("eu_{}", hex::encode(&digest[..16]))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndUserSignedIn {
    /// The end user as the provider names them (`sub`), the id their connections carry.
    pub user_id: String,
    /// The issuer whose `id_token` signed them in.
    pub issuer: String,
    /// `sha256:<hex>` of the session secret the cookie carries.
    pub session_hash: String,
    /// The session's absolute end.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: time::OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndUserSignedOut {
    pub session_hash: String,
}

#[derive(Debug, Default, Clone)]
pub struct EndUserSessions {
    pub user_id: Option<String>,
    /// Open sessions: hash → absolute end.
    pub sessions: BTreeMap<String, time::OffsetDateTime>,
}

impl EndUserSessions {
    /// The end user of an open session `session_hash` at `now`.
    pub fn session(&self, session_hash: &str, now: time::OffsetDateTime) -> Option<&str> {
        let ends = self.sessions.get(session_hash)?;
        (now < *ends).then_some(self.user_id.as_deref()).flatten()
    }
}

pub enum EndUserCommand {
    SignIn(EndUserSignedIn),
    SignOut { session_hash: String },
}

impl Aggregate for EndUserSessions {
    const TYPE: &'static str = "end_user";
    type Command = EndUserCommand;

    fn apply(&mut self, event: &Event) {
        match event {
            Event::EndUserSignedIn(e) => {
                self.user_id = Some(e.user_id.clone());
                self.sessions.insert(e.session_hash.clone(), e.expires_at);
            }
            Event::EndUserSignedOut(e) => {
                self.sessions.remove(&e.session_hash);
            }
            _ => {}
        }
    }

    fn decide(&self, command: &EndUserCommand) -> Result<Event, DomainError> {
        match command {
            EndUserCommand::SignIn(s) => {
                check_name("user_id", &s.user_id, 255)?;
                check_name("issuer", &s.issuer, 2048)?;
                super::member::check_hash("session_hash", &s.session_hash)?;
                if self.user_id.as_ref().is_some_and(|u| *u != s.user_id) {
                    return Err(DomainError::Rejected("another end user's sessions".into()));
                }
                if self.sessions.contains_key(&s.session_hash) {
                    return Err(DomainError::AlreadyExists("session"));
                }
                Ok(Event::EndUserSignedIn(s.clone()))
            }
            EndUserCommand::SignOut { session_hash } => {
                if !self.sessions.contains_key(session_hash) {
                    return Err(DomainError::Rejected("no such session".into()));
                }
                Ok(Event::EndUserSignedOut(EndUserSignedOut {
                    session_hash: session_hash.clone(),
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign_in(user: &str, hash: &str) -> EndUserCommand {
        EndUserCommand::SignIn(EndUserSignedIn {
            user_id: user.into(),
            issuer: "https://idp.example.com".into(),
            session_hash: hash.into(),
            expires_at: time::macros::datetime!(2026-01-02 12:00 UTC),
        })
    }

    #[test]
    fn a_session_opens_lasts_until_its_end_and_closes_once() {
        let h = format!("sha256:{}", "ab".repeat(32));
        let mut s = EndUserSessions::default();
        assert!(s.decide(&sign_in("u-1", "not-a-hash")).is_err());
        let ev = s.decide(&sign_in("u-1", &h)).unwrap();
        s.apply(&ev);
        let before = time::macros::datetime!(2026-01-02 11:59 UTC);
        let after = time::macros::datetime!(2026-01-02 12:00 UTC);
        assert_eq!(s.session(&h, before), Some("u-1"));
        assert_eq!(s.session(&h, after), None, "past its absolute end");
        assert!(
            s.decide(&sign_in("u-2", &format!("sha256:{}", "cd".repeat(32))))
                .is_err(),
            "another user's sub never lands here"
        );
        let out = EndUserCommand::SignOut {
            session_hash: h.clone(),
        };
        let ev = s.decide(&out).unwrap();
        s.apply(&ev);
        assert_eq!(s.session(&h, before), None);
        assert!(s.decide(&out).is_err(), "signed out once");
    }

    #[test]
    fn the_aggregate_id_is_a_subject_token_for_any_sub() {
        let id = end_user_id("auth0|weird sub/with:chars");
        assert!(id.starts_with("eu_") && id.len() == 35);
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    }
}
