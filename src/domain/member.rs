//! Team members: people who sign in to the console with an email and a password, each with
//! a role (admin, developer, viewer, auditor; `agent` stays for API keys). A member is one
//! aggregate whose id is derived from the email, so sign-in finds it without a projection;
//! its sessions live in the aggregate too, so every instance decides a session from the
//! log. Secrets never enter an event: the invite and session secrets as `sha256:` hashes
//! (256 random bits each), the password's argon2id hash only sealed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::auth_config::SealedSecret;
use super::{Aggregate, DomainError, Event, Role};

/// The aggregate id of the member with this email (lower-cased): hex of its SHA-256, cut
/// to 32 characters (a valid subject token; the email itself is in `member.invited`).
pub fn member_id(email: &str) -> String {
    let digest = Sha256::digest(normalize_email(email).as_bytes());
    hex::encode(&digest[..16])
}

pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInvited {
    pub email: String,
    pub role: Role,
    /// `sha256:<hex>` of the single-use sign-up secret.
    pub invite_hash: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: time::OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberJoined {
    /// The invite this sign-up consumed.
    pub invite_hash: String,
    /// The password's argon2id hash (PHC string), sealed under the member's data key.
    pub password: SealedSecret,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSignedIn {
    /// `sha256:<hex>` of the session secret the cookie carries.
    pub session_hash: String,
    /// The session's absolute end.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: time::OffsetDateTime,
    /// The time step (RFC 6238: unix seconds / 30) of the second-factor code this sign-in
    /// used; absent for a sign-in with the password alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_factor_step: Option<u64>,
    /// The issuer of the workspace's team SSO provider when the member signed in through
    /// it (its `id_token` verified); absent for a sign-in with the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sso_issuer: Option<String>,
}

/// The member's account at the workspace's team SSO provider (OIDC): the provider's
/// `sub` for them, bound at their first SSO sign-in. A later `id_token` for the same email
/// but another `sub` (the address given to someone else at the provider) is refused.
/// With `invite_hash`, the invitee joined by SSO instead of setting a password (the
/// invite is consumed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSsoLinked {
    pub issuer: String,
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite_hash: Option<String>,
}

/// The member set up a second factor (a TOTP authenticator, RFC 6238, SHA-1, 6 digits,
/// 30 s): its shared secret, sealed, and the time step of the code that confirmed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSecondFactorEnrolled {
    pub secret: SealedSecret,
    pub step: u64,
}

/// An admin removed the member's second factor (a lost authenticator); the member signs
/// in with the password alone until they set up a new one. Open sessions end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSecondFactorReset {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSignedOut {
    pub session_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRoleChanged {
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRemoved {
    /// The data key of the sealed password hash, destroyed with the membership.
    pub data_key_id: Option<String>,
}

#[derive(Debug, Default, Clone)]
pub struct Member {
    pub email: Option<String>,
    pub role: Option<Role>,
    /// The pending invite (consumed by `member.joined`, replaced by a new invite).
    pub invite: Option<MemberInvited>,
    pub password: Option<SealedSecret>,
    /// Open sessions: hash → absolute end.
    pub sessions: BTreeMap<String, time::OffsetDateTime>,
    /// The sealed TOTP secret, once set up.
    pub second_factor: Option<SealedSecret>,
    /// The newest time step a second-factor code was accepted for: a code is good once
    /// (RFC 6238 §5.2), so a later sign-in needs a later step.
    pub last_second_factor_step: u64,
    /// The member's subject at each team SSO issuer they signed in through: issuer → `sub`.
    pub sso: BTreeMap<String, String>,
}

impl Member {
    /// Whether the member has joined: set a password, or joined through SSO.
    pub fn joined(&self) -> bool {
        self.password.is_some() || !self.sso.is_empty()
    }

    /// What a verified SSO identity (`issuer`, `subject`, for this member's email) comes to
    /// at `now`: pure, so the console and the commands decide alike.
    pub fn sso_sign_in(&self, issuer: &str, subject: &str, now: time::OffsetDateTime) -> SsoSignIn {
        if self.role.is_none() {
            return SsoSignIn::NotMember;
        }
        if let Some(bound) = self.sso.get(issuer) {
            return if bound == subject {
                SsoSignIn::SignIn
            } else {
                SsoSignIn::OtherSubject
            };
        }
        if self.joined() {
            return SsoSignIn::Link;
        }
        match &self.invite {
            Some(i) if now < i.expires_at => SsoSignIn::Join {
                invite_hash: i.invite_hash.clone(),
            },
            _ => SsoSignIn::NotMember,
        }
    }

    /// The member's role while `session_hash` is an open session at `now`.
    pub fn session_role(&self, session_hash: &str, now: time::OffsetDateTime) -> Option<Role> {
        let end = self.sessions.get(session_hash)?;
        (now < *end).then_some(self.role?)
    }
}

/// What a verified SSO identity for a member's email comes to ([`Member::sso_sign_in`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SsoSignIn {
    /// Bound to this subject already: a session opens.
    SignIn,
    /// A joined member's first SSO sign-in through this issuer: bind the subject, then sign in.
    Link,
    /// An invitee with a pending invite: joins by SSO (the invite consumed), then signs in.
    Join { invite_hash: String },
    /// Bound to another subject at this issuer: refused (the email was reassigned).
    OtherSubject,
    /// No member, removed, or an invite that expired.
    NotMember,
}

pub enum MemberCommand {
    Invite(MemberInvited),
    /// Binds the member's SSO subject (their first SSO sign-in), or joins an invitee by SSO.
    LinkSso {
        link: MemberSsoLinked,
        now: time::OffsetDateTime,
    },
    Join {
        invite_hash: String,
        password: SealedSecret,
        now: time::OffsetDateTime,
    },
    SignIn(MemberSignedIn),
    SignOut {
        session_hash: String,
    },
    EnrolSecondFactor(MemberSecondFactorEnrolled),
    ResetSecondFactor,
    /// A new role; every open session ends (the member signs in again under it).
    ChangeRole(Role),
    /// The member can no longer sign in; every open session ends.
    Remove,
}

impl Aggregate for Member {
    const TYPE: &'static str = "member";
    type Command = MemberCommand;

    fn apply(&mut self, event: &Event) {
        match event {
            Event::MemberInvited(e) => {
                self.email = Some(e.email.clone());
                if self.password.is_none() {
                    self.role = Some(e.role);
                }
                self.invite = Some(e.clone());
            }
            Event::MemberJoined(e) => {
                self.password = Some(e.password.clone());
                self.role = self.invite.as_ref().map(|i| i.role);
                self.invite = None;
            }
            Event::MemberSignedIn(e) => {
                self.sessions.insert(e.session_hash.clone(), e.expires_at);
                if let Some(step) = e.second_factor_step {
                    self.last_second_factor_step = self.last_second_factor_step.max(step);
                }
            }
            Event::MemberSecondFactorEnrolled(e) => {
                self.second_factor = Some(e.secret.clone());
                self.last_second_factor_step = self.last_second_factor_step.max(e.step);
            }
            Event::MemberSecondFactorReset(_) => {
                self.second_factor = None;
                self.sessions.clear();
            }
            Event::MemberSignedOut(e) => {
                self.sessions.remove(&e.session_hash);
            }
            Event::MemberRoleChanged(e) => {
                self.role = Some(e.role);
                if let Some(invite) = &mut self.invite {
                    invite.role = e.role;
                }
                self.sessions.clear();
            }
            Event::MemberSsoLinked(e) => {
                self.sso.insert(e.issuer.clone(), e.subject.clone());
                if e.invite_hash.is_some() {
                    self.role = self.invite.as_ref().map(|i| i.role);
                    self.invite = None;
                }
            }
            Event::MemberRemoved(_) => {
                self.role = None;
                self.invite = None;
                self.password = None;
                self.sso.clear();
                self.second_factor = None;
                self.sessions.clear();
            }
            _ => {}
        }
    }

    fn decide(&self, command: &MemberCommand) -> Result<Event, DomainError> {
        match command {
            MemberCommand::Invite(i) => decide_invite(self, i),
            MemberCommand::Join {
                invite_hash,
                password,
                now,
            } => {
                let pending = self.invite.as_ref().filter(|i| {
                    i.invite_hash == *invite_hash && *now < i.expires_at && !self.joined()
                });
                if pending.is_none() {
                    return Err(DomainError::Rejected(
                        "this sign-up link is unknown, used or expired".into(),
                    ));
                }
                Ok(Event::MemberJoined(MemberJoined {
                    invite_hash: invite_hash.clone(),
                    password: password.clone(),
                }))
            }
            MemberCommand::SignIn(s) => decide_sign_in(self, s),
            MemberCommand::LinkSso { link, now } => decide_link_sso(self, link, *now),
            MemberCommand::EnrolSecondFactor(e) => {
                if !self.joined() {
                    return Err(DomainError::NotFound("member"));
                }
                if self.second_factor.is_some() {
                    return Err(DomainError::Rejected(
                        "a second factor is already set up; an admin can reset it".into(),
                    ));
                }
                Ok(Event::MemberSecondFactorEnrolled(e.clone()))
            }
            MemberCommand::ResetSecondFactor => {
                if self.second_factor.is_none() {
                    return Err(DomainError::Rejected(
                        "the member has no second factor set up".into(),
                    ));
                }
                Ok(Event::MemberSecondFactorReset(MemberSecondFactorReset {}))
            }
            MemberCommand::SignOut { session_hash } => {
                if !self.sessions.contains_key(session_hash) {
                    return Err(DomainError::Rejected("no such session".into()));
                }
                Ok(Event::MemberSignedOut(MemberSignedOut {
                    session_hash: session_hash.clone(),
                }))
            }
            MemberCommand::ChangeRole(role) => {
                if self.role.is_none() {
                    return Err(DomainError::NotFound("member"));
                }
                if *role == Role::Agent {
                    return Err(DomainError::Invalid {
                        field: "role",
                        reason: "members are admin, developer, viewer or auditor".into(),
                    });
                }
                if self.role == Some(*role) {
                    return Err(DomainError::Rejected(
                        "the member already has this role".into(),
                    ));
                }
                Ok(Event::MemberRoleChanged(MemberRoleChanged { role: *role }))
            }
            MemberCommand::Remove => {
                if self.role.is_none() {
                    return Err(DomainError::NotFound("member"));
                }
                Ok(Event::MemberRemoved(MemberRemoved {
                    data_key_id: self.password.as_ref().map(|p| p.data_key_id.clone()),
                }))
            }
        }
    }
}

/// A session opens for a joined member; a second-factor code counts once, so its step must
/// be later than any step accepted before (whether a code is required is the caller's
/// policy: the member's set-up factor, or the workspace's rule).
fn decide_sign_in(member: &Member, s: &MemberSignedIn) -> Result<Event, DomainError> {
    if !member.joined() {
        return Err(DomainError::NotFound("member"));
    }
    check_hash("session_hash", &s.session_hash)?;
    if let Some(step) = s.second_factor_step {
        if member.second_factor.is_none() {
            return Err(DomainError::Rejected(
                "the member has no second factor set up".into(),
            ));
        }
        if step <= member.last_second_factor_step {
            return Err(DomainError::Rejected(
                "this code was already used; wait for the next one".into(),
            ));
        }
    }
    Ok(Event::MemberSignedIn(s.clone()))
}

/// A subject is bound once per issuer; an invite is consumed only while it is pending.
fn decide_link_sso(
    member: &Member,
    link: &MemberSsoLinked,
    now: time::OffsetDateTime,
) -> Result<Event, DomainError> {
    let bounded = |field, v: &str| {
        if v.is_empty() || v.len() > 512 || v.chars().any(char::is_control) {
            Err(DomainError::Invalid {
                field,
                reason: "must be 1-512 characters without control characters".into(),
            })
        } else {
            Ok(())
        }
    };
    bounded("issuer", &link.issuer)?;
    bounded("subject", &link.subject)?;
    let expected = match member.sso_sign_in(&link.issuer, &link.subject, now) {
        SsoSignIn::Link => None,
        SsoSignIn::Join { invite_hash } => Some(invite_hash),
        SsoSignIn::SignIn => {
            return Err(DomainError::Rejected(
                "this SSO account is already linked".into(),
            ))
        }
        SsoSignIn::OtherSubject => {
            return Err(DomainError::Rejected(
                "another account at the identity provider is linked to this member".into(),
            ))
        }
        SsoSignIn::NotMember => return Err(DomainError::NotFound("member")),
    };
    if link.invite_hash != expected {
        return Err(DomainError::Rejected(
            "this sign-up link is unknown, used or expired".into(),
        ));
    }
    Ok(Event::MemberSsoLinked(link.clone()))
}

fn decide_invite(member: &Member, i: &MemberInvited) -> Result<Event, DomainError> {
    if member.joined() {
        return Err(DomainError::AlreadyExists("member"));
    }
    if i.role == Role::Agent {
        return Err(DomainError::Invalid {
            field: "role",
            reason: "members are admin, developer, viewer or auditor; agents use API keys".into(),
        });
    }
    let email = &i.email;
    let well_formed = email.len() <= 254
        && *email == normalize_email(email)
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if !well_formed {
        return Err(DomainError::Invalid {
            field: "email",
            reason: "must be an email address".into(),
        });
    }
    check_hash("invite_hash", &i.invite_hash)?;
    Ok(Event::MemberInvited(i.clone()))
}

pub(super) fn check_hash(field: &'static str, hash: &str) -> Result<(), DomainError> {
    let hex = hash.strip_prefix("sha256:").unwrap_or_default();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(DomainError::Invalid {
            field,
            reason: "not sha256:<hex>".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<A: Aggregate>(given: &[Event], when: &A::Command) -> Result<Event, DomainError> {
        let mut state = A::default();
        for e in given {
            state.apply(e);
        }
        state.decide(when)
    }

    fn at(s: i64) -> time::OffsetDateTime {
        time::OffsetDateTime::from_unix_timestamp(1_767_000_000 + s)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
    }

    fn hash(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn invited(role: Role) -> Event {
        Event::MemberInvited(MemberInvited {
            email: "ada@example.com".into(),
            role,
            invite_hash: hash('a'),
            expires_at: at(100),
        })
    }

    fn sealed() -> SealedSecret {
        SealedSecret {
            data_key_id: "dk_1".into(),
            nonce: "n".into(),
            ciphertext: "c".into(),
            fingerprint: "hmac-sha256:00".into(),
        }
    }

    fn join(invite: char, now: i64) -> MemberCommand {
        MemberCommand::Join {
            invite_hash: hash(invite),
            password: sealed(),
            now: at(now),
        }
    }

    #[test]
    fn an_invite_is_joined_once_before_it_expires() {
        assert!(check::<Member>(&[invited(Role::Viewer)], &join('a', 10)).is_ok());
        assert!(check::<Member>(&[invited(Role::Viewer)], &join('b', 10)).is_err());
        assert!(check::<Member>(&[invited(Role::Viewer)], &join('a', 100)).is_err());
        let joined = Event::MemberJoined(MemberJoined {
            invite_hash: hash('a'),
            password: sealed(),
        });
        assert!(check::<Member>(&[invited(Role::Viewer), joined], &join('a', 10)).is_err());
    }

    #[test]
    fn agents_and_malformed_emails_are_not_invited() {
        let mut bad = MemberInvited {
            email: "ada@example.com".into(),
            role: Role::Agent,
            invite_hash: hash('a'),
            expires_at: at(1),
        };
        assert!(check::<Member>(&[], &MemberCommand::Invite(bad.clone())).is_err());
        bad.role = Role::Admin;
        assert!(check::<Member>(&[], &MemberCommand::Invite(bad.clone())).is_ok());
        for email in ["Ada@example.com", "ada", "@example.com", "a b@example.com"] {
            bad.email = email.into();
            assert!(
                check::<Member>(&[], &MemberCommand::Invite(bad.clone())).is_err(),
                "{email}"
            );
        }
    }

    #[test]
    fn a_session_counts_until_its_end_or_sign_out() {
        let mut m = Member::default();
        for e in [
            invited(Role::Developer),
            Event::MemberJoined(MemberJoined {
                invite_hash: hash('a'),
                password: sealed(),
            }),
            Event::MemberSignedIn(MemberSignedIn {
                session_hash: hash('s'),
                expires_at: at(50),
                second_factor_step: None,
                sso_issuer: None,
            }),
        ] {
            m.apply(&e);
        }
        assert_eq!(m.session_role(&hash('s'), at(10)), Some(Role::Developer));
        assert_eq!(m.session_role(&hash('s'), at(50)), None);
        assert_eq!(m.session_role(&hash('t'), at(10)), None);
        m.apply(&Event::MemberSignedOut(MemberSignedOut {
            session_hash: hash('s'),
        }));
        assert_eq!(m.session_role(&hash('s'), at(10)), None);
    }

    #[test]
    fn a_role_change_or_removal_ends_every_session() {
        let mut m = Member::default();
        let signed_in = |c| {
            Event::MemberSignedIn(MemberSignedIn {
                session_hash: hash(c),
                expires_at: at(50),
                second_factor_step: None,
                sso_issuer: None,
            })
        };
        for e in [
            invited(Role::Developer),
            Event::MemberJoined(MemberJoined {
                invite_hash: hash('a'),
                password: sealed(),
            }),
            signed_in('s'),
        ] {
            m.apply(&e);
        }
        let change = m.decide(&MemberCommand::ChangeRole(Role::Viewer));
        assert!(matches!(change, Ok(Event::MemberRoleChanged(_))));
        assert!(m
            .decide(&MemberCommand::ChangeRole(Role::Developer))
            .is_err());
        m.apply(&Event::MemberRoleChanged(MemberRoleChanged {
            role: Role::Viewer,
        }));
        assert_eq!(m.session_role(&hash('s'), at(10)), None);
        m.apply(&signed_in('t'));
        assert_eq!(m.session_role(&hash('t'), at(10)), Some(Role::Viewer));
        let removed = m.decide(&MemberCommand::Remove);
        assert!(
            matches!(&removed, Ok(Event::MemberRemoved(r)) if r.data_key_id.as_deref() == Some("dk_1"))
        );
        m.apply(&Event::MemberRemoved(MemberRemoved { data_key_id: None }));
        assert_eq!(m.session_role(&hash('t'), at(10)), None);
        assert!(!m.joined());
        assert!(m
            .decide(&MemberCommand::SignIn(MemberSignedIn {
                session_hash: hash('u'),
                expires_at: at(50),
                second_factor_step: None,
                sso_issuer: None,
            }))
            .is_err());
    }

    fn joined_member() -> Member {
        let mut m = Member::default();
        m.apply(&invited(Role::Admin));
        m.apply(&Event::MemberJoined(MemberJoined {
            invite_hash: hash('a'),
            password: sealed(),
        }));
        m
    }

    fn sign_in(step: Option<u64>) -> MemberCommand {
        MemberCommand::SignIn(MemberSignedIn {
            session_hash: hash('e'),
            expires_at: at(50),
            second_factor_step: step,
            sso_issuer: None,
        })
    }

    #[test]
    fn a_second_factor_code_counts_once_and_only_once_set_up() {
        let mut m = joined_member();
        assert!(
            m.decide(&sign_in(Some(10))).is_err(),
            "no factor set up yet"
        );
        let enrolled = m.decide(&MemberCommand::EnrolSecondFactor(
            MemberSecondFactorEnrolled {
                secret: sealed(),
                step: 10,
            },
        ));
        let Ok(enrolled) = enrolled else {
            panic!("enrolment refused: {enrolled:?}");
        };
        m.apply(&enrolled);
        let again = MemberCommand::EnrolSecondFactor(MemberSecondFactorEnrolled {
            secret: sealed(),
            step: 11,
        });
        assert!(
            m.decide(&again).is_err(),
            "a second enrolment needs a reset"
        );
        assert!(
            m.decide(&sign_in(Some(10))).is_err(),
            "the enrolment's code"
        );
        let Ok(signed) = m.decide(&sign_in(Some(11))) else {
            panic!("a fresh step is refused");
        };
        m.apply(&signed);
        assert!(m.decide(&sign_in(Some(11))).is_err(), "a replayed code");
        assert!(m.decide(&sign_in(Some(9))).is_err(), "an older code");
        assert!(m.decide(&sign_in(Some(12))).is_ok());
    }

    #[test]
    fn a_reset_removes_the_factor_and_ends_every_session() {
        let mut m = joined_member();
        assert!(m.decide(&MemberCommand::ResetSecondFactor).is_err());
        m.apply(&Event::MemberSecondFactorEnrolled(
            MemberSecondFactorEnrolled {
                secret: sealed(),
                step: 10,
            },
        ));
        m.apply(&Event::MemberSignedIn(MemberSignedIn {
            session_hash: hash('s'),
            expires_at: at(50),
            second_factor_step: Some(11),
            sso_issuer: None,
        }));
        let Ok(reset) = m.decide(&MemberCommand::ResetSecondFactor) else {
            panic!("reset refused");
        };
        m.apply(&reset);
        assert!(m.second_factor.is_none());
        assert_eq!(m.session_role(&hash('s'), at(10)), None);
        assert!(m.decide(&sign_in(None)).is_ok());
    }
    fn link(subject: &str, invite: Option<char>) -> MemberSsoLinked {
        MemberSsoLinked {
            issuer: "https://sso.example.com".into(),
            subject: subject.into(),
            invite_hash: invite.map(hash),
        }
    }

    fn link_at(subject: &str, invite: Option<char>, now: i64) -> MemberCommand {
        MemberCommand::LinkSso {
            link: link(subject, invite),
            now: at(now),
        }
    }

    #[test]
    fn an_invitee_joins_by_sso_once_before_the_invite_expires() {
        let given = [invited(Role::Developer)];
        let joined = check::<Member>(&given, &link_at("sub-1", Some('a'), 10));
        assert_eq!(joined, Ok(Event::MemberSsoLinked(link("sub-1", Some('a')))));
        // Without the invite, with another invite, or after it expired: refused.
        assert!(check::<Member>(&given, &link_at("sub-1", None, 10)).is_err());
        assert!(check::<Member>(&given, &link_at("sub-1", Some('b'), 10)).is_err());
        assert!(check::<Member>(&given, &link_at("sub-1", Some('a'), 100)).is_err());
        let mut m = Member::default();
        m.apply(&given[0]);
        m.apply(&Event::MemberSsoLinked(link("sub-1", Some('a'))));
        assert!(m.joined() && m.invite.is_none());
        assert_eq!(m.role, Some(Role::Developer));
        // The password sign-up link is used up too.
        assert!(m.decide(&join('a', 10)).is_err());
        assert_eq!(
            m.sso_sign_in("https://sso.example.com", "sub-1", at(500)),
            SsoSignIn::SignIn
        );
    }

    #[test]
    fn a_bound_subject_stays_bound_and_another_is_refused() {
        let mut m = Member::default();
        m.apply(&invited(Role::Viewer));
        m.apply(&Event::MemberJoined(MemberJoined {
            invite_hash: hash('a'),
            password: sealed(),
        }));
        let iss = "https://sso.example.com";
        assert_eq!(m.sso_sign_in(iss, "sub-1", at(10)), SsoSignIn::Link);
        let linked = m.decide(&link_at("sub-1", None, 10));
        assert!(linked.is_ok());
        m.apply(&Event::MemberSsoLinked(link("sub-1", None)));
        assert_eq!(m.sso_sign_in(iss, "sub-1", at(10)), SsoSignIn::SignIn);
        // The same email at the provider, now another account: refused, never re-bound.
        assert_eq!(m.sso_sign_in(iss, "sub-2", at(10)), SsoSignIn::OtherSubject);
        assert!(m.decide(&link_at("sub-2", None, 10)).is_err());
        assert!(m.decide(&link_at("sub-1", None, 10)).is_err());
        // Another issuer (the workspace moved to a new provider) binds afresh.
        assert_eq!(
            m.sso_sign_in("https://new.example.com", "x", at(10)),
            SsoSignIn::Link
        );
        // A removed member is no member, and the binding goes with the membership.
        m.apply(&Event::MemberRemoved(MemberRemoved { data_key_id: None }));
        assert_eq!(m.sso_sign_in(iss, "sub-1", at(10)), SsoSignIn::NotMember);
        assert!(m.sso.is_empty());
    }

    #[test]
    fn no_member_and_expired_invites_are_not_members_for_sso() {
        let iss = "https://sso.example.com";
        assert_eq!(
            Member::default().sso_sign_in(iss, "s", at(0)),
            SsoSignIn::NotMember
        );
        let mut m = Member::default();
        m.apply(&invited(Role::Viewer));
        assert_eq!(m.sso_sign_in(iss, "s", at(100)), SsoSignIn::NotMember);
        assert!(matches!(
            m.sso_sign_in(iss, "s", at(99)),
            SsoSignIn::Join { .. }
        ));
        let control = MemberCommand::LinkSso {
            link: MemberSsoLinked {
                issuer: iss.into(),
                subject: "a\nb".into(),
                invite_hash: Some(hash('a')),
            },
            now: at(1),
        };
        assert!(m.decide(&control).is_err());
    }
}
