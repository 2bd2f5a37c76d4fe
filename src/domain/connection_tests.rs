//! Unit tests of the connection aggregate (`connection.rs`): decisions and folds, pure.

use super::*;
use time::macros::datetime;

const T0: OffsetDateTime = datetime!(2026-05-01 10:00:00 UTC);

fn sealed(fp: &str) -> SealedSecret {
    SealedSecret {
        data_key_id: "dk:1".into(),
        nonce: "n".into(),
        ciphertext: "c".into(),
        fingerprint: fp.into(),
    }
}

fn initiated() -> Event {
    Event::ConnectionInitiated(ConnectionInitiated {
        auth_config_id: "ac1".into(),
        auth_config_version: 1,
        user_id: "user-1".into(),
        redirect_url: "https://app.example.com/connected".into(),
        requested_scopes: vec!["read".into(), "write".into()],
        state_hash: "sha256:aa".into(),
        state_expires_at: T0 + time::Duration::minutes(10),
        pkce_verifier: Some(sealed("hmac-sha256:v")),
        data_key_id: "dk:1".into(),
    })
}

fn tokens(refresh: bool) -> OAuthTokens {
    OAuthTokens {
        access_token: sealed("hmac-sha256:at"),
        refresh_token: refresh.then(|| sealed("hmac-sha256:rt")),
        token_type: "Bearer".into(),
        expires_at: Some(T0 + time::Duration::hours(1)),
    }
}

fn authorized() -> Event {
    Event::ConnectionAuthorized(ConnectionAuthorized {
        scopes: vec!["read".into()],
        tokens: tokens(true),
        granted_scopes: None,
    })
}

fn check(given: &[Event], when: ConnectionCommand) -> Result<Event, DomainError> {
    let mut c = Connection::default();
    for e in given {
        c.apply(e);
    }
    c.decide(&when)
}

fn authorize(hash: &str, now: OffsetDateTime) -> ConnectionCommand {
    ConnectionCommand::Authorize {
        state_hash: hash.into(),
        now,
        authorized: ConnectionAuthorized {
            scopes: vec!["read".into()],
            tokens: tokens(true),
            granted_scopes: None,
        },
    }
}

#[test]
fn scopes_granted_beyond_the_request_are_recorded_not_kept() {
    // Requested `read write`; the provider grants `admin read` (and not `write`).
    let wider = ConnectionCommand::Authorize {
        state_hash: "sha256:aa".into(),
        now: T0,
        authorized: ConnectionAuthorized {
            scopes: vec!["admin".into(), "read".into()],
            tokens: tokens(true),
            granted_scopes: None,
        },
    };
    assert_eq!(
        check(&[initiated()], wider),
        Ok(Event::ConnectionAuthorized(ConnectionAuthorized {
            scopes: vec!["read".into()],
            tokens: tokens(true),
            granted_scopes: Some(vec!["admin".into(), "read".into()]),
        }))
    );
    // Within the request: nothing more to record.
    assert_eq!(
        check(&[initiated()], authorize("sha256:aa", T0)),
        Ok(authorized())
    );
    // A refresh that answers a wider scope does not widen the connection either.
    let refreshed = ConnectionCommand::CompleteRefresh(ConnectionRefreshed {
        scopes: vec!["read".into(), "admin".into()],
        tokens: tokens(true),
        refresh_token_rotated: false,
        attempts: 1,
    });
    let mut c = Connection::default();
    for e in [initiated(), authorized()] {
        c.apply(&e);
    }
    let lease = c.decide(&start(T0, 0)).expect("lease");
    let given = [initiated(), authorized(), lease];
    match check(&given, refreshed) {
        Ok(Event::ConnectionRefreshed(e)) => assert_eq!(e.scopes, vec!["read".to_string()]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_state_is_claimed_once_before_the_exchange() {
    let claim = |now| ConnectionCommand::StartAuthorization {
        state_hash: "sha256:aa".into(),
        now,
    };
    let started = Event::ConnectionAuthorizationStarted(AuthorizationStarted {});
    assert_eq!(check(&[initiated()], claim(T0)), Ok(started.clone()));
    // A second claim (a concurrent callback) is a replay.
    let rejected = Err(DomainError::Rejected(STATE_REJECTED.into()));
    assert_eq!(check(&[initiated(), started.clone()], claim(T0)), rejected);
    // The claimer completes even if the exchange outlasted the state's ten minutes.
    let late = T0 + time::Duration::minutes(11);
    assert_eq!(
        check(
            &[initiated(), started.clone()],
            authorize("sha256:aa", late)
        ),
        Ok(authorized())
    );
    // Unclaimed, an expired state is refused as before; a wrong one always.
    assert_eq!(
        check(&[initiated()], authorize("sha256:aa", late)),
        rejected
    );
    let wrong = ConnectionCommand::StartAuthorization {
        state_hash: "sha256:bb".into(),
        now: T0,
    };
    assert_eq!(check(&[initiated()], wrong), rejected);
}

#[test]
fn state_is_single_use_bound_and_expires() {
    assert_eq!(
        check(&[initiated()], authorize("sha256:aa", T0)),
        Ok(authorized())
    );
    let rejected = Err(DomainError::Rejected(STATE_REJECTED.into()));
    // wrong state, expired state, reused state, unknown connection
    assert_eq!(check(&[initiated()], authorize("sha256:bb", T0)), rejected);
    assert_eq!(
        check(
            &[initiated()],
            authorize("sha256:aa", T0 + time::Duration::minutes(10))
        ),
        rejected
    );
    assert_eq!(
        check(&[initiated(), authorized()], authorize("sha256:aa", T0)),
        rejected
    );
    assert_eq!(check(&[], authorize("sha256:aa", T0)), rejected);
    let failed = ConnectionCommand::FailAuthorization {
        state_hash: "sha256:aa".into(),
        now: T0,
        failed: ConnectionAuthorizationFailed {
            error: "access_denied".into(),
            error_description: None,
        },
    };
    let e = check(&[initiated()], failed);
    assert!(matches!(e, Ok(Event::ConnectionAuthorizationFailed(_))));
    let mut c = Connection::default();
    c.apply(&initiated());
    c.apply(&e.unwrap_or_else(|e| unreachable!("{e}")));
    assert_eq!(c.status, Some(ConnectionStatus::Error));
    assert_eq!(c.decide(&authorize("sha256:aa", T0)), rejected);
}

#[test]
fn a_hosted_link_is_single_use_bound_and_expires() {
    let submit = |hash: &str, now| ConnectionCommand::SubmitCredentials {
        state_hash: hash.into(),
        now,
        submitted: CredentialsSubmitted {
            credentials: Some(sealed("hmac-sha256:key")),
        },
    };
    let done = Event::ConnectionCredentialsSubmitted(CredentialsSubmitted {
        credentials: Some(sealed("hmac-sha256:key")),
    });
    assert_eq!(
        check(&[initiated()], submit("sha256:aa", T0)),
        Ok(done.clone())
    );
    let rejected = Err(DomainError::Rejected(STATE_REJECTED.into()));
    // Another link, an expired one, a used one, none at all.
    assert_eq!(check(&[initiated()], submit("sha256:bb", T0)), rejected);
    let late = T0 + time::Duration::minutes(10);
    assert_eq!(check(&[initiated()], submit("sha256:aa", late)), rejected);
    assert_eq!(
        check(&[initiated(), done.clone()], submit("sha256:aa", T0)),
        rejected
    );
    assert_eq!(check(&[], submit("sha256:aa", T0)), rejected);
    let mut c = Connection::default();
    c.apply(&initiated());
    c.apply(&done);
    assert_eq!(c.status, Some(ConnectionStatus::Active));
    assert!(c.credentials.is_some() && c.state_hash.is_none());
}

fn start(now: OffsetDateTime, seen: u64) -> ConnectionCommand {
    ConnectionCommand::StartRefresh {
        now,
        seen_rounds: seen,
        started: RefreshStarted {
            trigger: RefreshTrigger::OnDemand,
            lease_expires_at: now + time::Duration::seconds(60),
        },
    }
}

#[test]
fn one_refresh_round_at_a_time_and_waiters_adopt_its_outcome() {
    let given = vec![initiated(), authorized()];
    let started = check(&given, start(T0, 0)).unwrap_or_else(|e| unreachable!("{e}"));
    let mut in_flight = given.clone();
    in_flight.push(started);
    // A second claimant at the same time is refused while the lease lives ...
    assert!(check(&in_flight, start(T0, 0)).is_err());
    // ... but may take over once the lease has lapsed (the holder died).
    assert!(check(&in_flight, start(T0 + time::Duration::seconds(61), 0)).is_ok());
    let done = Event::ConnectionRefreshed(ConnectionRefreshed {
        scopes: vec!["read".into()],
        tokens: tokens(true),
        refresh_token_rotated: true,
        attempts: 1,
    });
    let mut refreshed = in_flight.clone();
    refreshed.push(done);
    // A caller that saw round 0 adopts round 1 instead of refreshing again.
    assert!(check(&refreshed, start(T0, 0)).is_err());
    assert!(check(&refreshed, start(T0, 1)).is_ok());
    // A retryable failure keeps the lease; the final one ends the round.
    let fail = |is_final| {
        Event::ConnectionRefreshFailed(RefreshFailed {
            attempt: 1,
            error: "server_error".into(),
            retryable: true,
            is_final,
        })
    };
    let mut failing = in_flight.clone();
    failing.push(fail(false));
    assert!(check(&failing, start(T0, 0)).is_err());
    failing.push(fail(true));
    assert!(check(&failing, start(T0, 1)).is_ok());
}

#[test]
fn refresh_needs_an_active_connection_with_a_refresh_token() {
    let no_rt = Event::ConnectionAuthorized(ConnectionAuthorized {
        scopes: vec![],
        tokens: tokens(false),
        granted_scopes: None,
    });
    assert!(check(&[initiated(), no_rt], start(T0, 0)).is_err());
    assert!(check(&[initiated()], start(T0, 0)).is_err());
    assert_eq!(
        check(&[], start(T0, 0)),
        Err(DomainError::NotFound("connection"))
    );
}

#[test]
fn reconsent_only_when_a_granted_scope_was_removed() {
    let given = [initiated(), authorized()];
    let mark = |removed: &[&str]| {
        ConnectionCommand::MarkNeedsReconsent(NeedsReconsent {
            auth_config_version: 2,
            removed_scopes: removed.iter().map(|s| s.to_string()).collect(),
        })
    };
    assert!(check(&given, mark(&["write"])).is_err());
    assert!(matches!(
        check(&given, mark(&["read"])),
        Ok(Event::ConnectionNeedsReconsent(_))
    ));
}

#[test]
fn revoke_then_delete_and_nothing_after() {
    let revoked = Event::ConnectionRevoked(ConnectionRevoked {
        reason: None,
        provider: ProviderRevocation {
            outcome: "revoked".into(),
            http_status: Some(200),
            detail: None,
        },
    });
    let given = vec![initiated(), authorized(), revoked.clone()];
    assert!(check(
        &given,
        ConnectionCommand::Revoke(match &revoked {
            Event::ConnectionRevoked(r) => r.clone(),
            _ => unreachable!(),
        })
    )
    .is_err());
    let deleted = check(&given, ConnectionCommand::Delete);
    assert_eq!(
        deleted,
        Ok(Event::ConnectionDeleted(ConnectionDeleted {
            data_key_id: "dk:1".into()
        }))
    );
    let mut all = given;
    all.push(deleted.unwrap_or_else(|e| unreachable!("{e}")));
    assert_eq!(
        check(&all, ConnectionCommand::Delete),
        Err(DomainError::NotFound("connection"))
    );
    assert_eq!(
        check(&all, start(T0, 0)),
        Err(DomainError::NotFound("connection"))
    );
}

#[test]
fn status_names_round_trip() {
    for s in [
        ConnectionStatus::Initiated,
        ConnectionStatus::Active,
        ConnectionStatus::NeedsReconsent,
        ConnectionStatus::Expired,
        ConnectionStatus::Revoked,
        ConnectionStatus::Error,
        ConnectionStatus::Deleted,
    ] {
        assert_eq!(ConnectionStatus::parse(s.as_str()), Some(s));
        assert_eq!(
            serde_json::to_value(s).unwrap_or_default(),
            serde_json::json!(s.as_str())
        );
    }
}
