//! Dynamic database users (issue 17): with a connection's administrative credential, make a
//! user with a password and the grants of the auth config's templates, and drop it again.
//! PostgreSQL (`CREATE ROLE … LOGIN PASSWORD … VALID UNTIL …` and GRANTs in one
//! transaction) and MySQL/MariaDB (`CREATE USER … IDENTIFIED BY …` and GRANTs). Every
//! identifier is quoted by the driver; the user name and password are the ledger's, never
//! the agent's. Connections go to addresses the destination policy checked.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use super::{scrub, target, Class, ConnectorError, Definition, Failure, Values};
use crate::domain::dynamic_credential::GrantRule;
use crate::net::Policy;

/// The drivers that make dynamic users.
pub const DRIVERS: &[&str] = &["postgres", "mysql"];

/// A user to make: name and password from the ledger, the rules of the granted templates.
pub struct NewUser<'a> {
    pub username: &'a str,
    pub password: &'a SecretString,
    /// When the password stops working (PostgreSQL's `VALID UNTIL`; MySQL relies on the
    /// scheduler's drop).
    pub valid_until: time::OffsetDateTime,
    pub rules: &'a [GrantRule],
}

/// Makes the user on the definition's server, as the administrative user in `values`.
pub async fn create(
    definition: &Definition,
    values: &Values<'_>,
    timeout: Duration,
    destinations: &Arc<Policy>,
    user: &NewUser<'_>,
) -> Result<(), ConnectorError> {
    let whole = timeout.saturating_mul(3);
    let outcome = tokio::time::timeout(
        whole,
        create_now(definition, values, timeout, destinations, user),
    )
    .await;
    let password = secrecy::ExposeSecret::expose_secret(user.password);
    scrubbed(definition, values, whole, &[password], outcome)
}

async fn create_now(
    definition: &Definition,
    values: &Values<'_>,
    timeout: Duration,
    destinations: &Arc<Policy>,
    user: &NewUser<'_>,
) -> Result<(), ConnectorError> {
    let target = target(values, destinations).await?;
    match definition.driver.as_str() {
        "postgres" => super::postgres::create_user(values, target, timeout, user).await,
        "mysql" => super::mysql::create_user(values, target, timeout, user).await,
        other => Err(ConnectorError::NoDriver(other.to_string())),
    }
}

/// Drops the user if it exists (a drop repeated after a crash succeeds).
pub async fn drop(
    definition: &Definition,
    values: &Values<'_>,
    timeout: Duration,
    destinations: &Arc<Policy>,
    username: &str,
) -> Result<(), ConnectorError> {
    let whole = timeout.saturating_mul(3);
    let outcome = tokio::time::timeout(
        whole,
        drop_now(definition, values, timeout, destinations, username),
    )
    .await;
    scrubbed(definition, values, whole, &[], outcome)
}

async fn drop_now(
    definition: &Definition,
    values: &Values<'_>,
    timeout: Duration,
    destinations: &Arc<Policy>,
    username: &str,
) -> Result<(), ConnectorError> {
    let target = target(values, destinations).await?;
    match definition.driver.as_str() {
        "postgres" => super::postgres::drop_user(values, target, timeout, username).await,
        "mysql" => super::mysql::drop_user(values, target, timeout, username).await,
        other => Err(ConnectorError::NoDriver(other.to_string())),
    }
}

/// An operation's outcome within its bound; a failure's message without any secret.
fn scrubbed(
    definition: &Definition,
    values: &Values<'_>,
    whole: Duration,
    extra_secrets: &[&str],
    outcome: Result<Result<(), ConnectorError>, tokio::time::error::Elapsed>,
) -> Result<(), ConnectorError> {
    let mut secrets: Vec<&str> = definition
        .fields
        .iter()
        .filter(|f| f.secret)
        .filter_map(|f| values.opt_str(&f.name))
        .collect();
    secrets.extend_from_slice(extra_secrets);
    match outcome {
        Err(_) => Err(Failure::new(Class::Timeout, format!("no answer within {whole:?}")).into()),
        Ok(Err(ConnectorError::Failed(mut f))) => {
            f.message = scrub(&f.message, &secrets);
            Err(f.into())
        }
        Ok(other) => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::dynamic_credential::Privilege;

    fn user<'a>(password: &'a SecretString, rules: &'a [GrantRule]) -> NewUser<'a> {
        NewUser {
            username: "al_dyn_0011223344556677",
            password,
            valid_until: time::macros::datetime!(2026-01-02 03:04:05 UTC),
            rules,
        }
    }

    #[test]
    fn identifiers_from_the_auth_config_are_quoted_not_interpolated() {
        let password = SecretString::from("Pw0rd".to_string());
        let rules = [GrantRule {
            privileges: vec![Privilege::Select, Privilege::Insert, Privilege::Select],
            schema: Some("sales\"; DROP TABLE x; --".into()),
            tables: vec!["or`ders".into()],
        }];
        let pg = super::super::postgres::create_statements(&user(&password, &rules), "d\"b");
        // The password itself never goes to PostgreSQL: its SCRAM verifier does.
        assert!(!pg[0].contains("Pw0rd"), "{}", pg[0]);
        assert!(
            pg[0].starts_with("CREATE ROLE \"al_dyn_0011223344556677\" LOGIN NOINHERIT PASSWORD 'SCRAM-SHA-256$4096:"),
            "{}",
            pg[0]
        );
        assert!(
            pg[0].ends_with("' VALID UNTIL '2026-01-02T03:04:05Z'"),
            "{}",
            pg[0]
        );
        assert_eq!(
            pg[1..],
            vec![
                "GRANT CONNECT ON DATABASE \"d\"\"b\" TO \"al_dyn_0011223344556677\"",
                "GRANT USAGE ON SCHEMA \"sales\"\"; DROP TABLE x; --\" TO \"al_dyn_0011223344556677\"",
                "GRANT SELECT, INSERT ON TABLE \"sales\"\"; DROP TABLE x; --\".\"or`ders\" TO \"al_dyn_0011223344556677\"",
            ]
        );
        let my = super::super::mysql::create_statements(&user(&password, &rules), "app");
        assert_eq!(
            my,
            vec![
                "CREATE USER 'al_dyn_0011223344556677'@'%' IDENTIFIED BY 'Pw0rd'",
                "GRANT SELECT, INSERT ON `sales\"; DROP TABLE x; --`.`or``ders` TO 'al_dyn_0011223344556677'@'%'",
            ]
        );
    }

    #[test]
    fn a_whole_schema_when_no_table_is_named() {
        let password = SecretString::from("x".to_string());
        let rules = [GrantRule {
            privileges: vec![Privilege::Select],
            schema: None,
            tables: vec![],
        }];
        let pg = super::super::postgres::create_statements(&user(&password, &rules), "db");
        assert!(pg.contains(
            &"GRANT SELECT ON ALL TABLES IN SCHEMA \"public\" TO \"al_dyn_0011223344556677\""
                .to_string()
        ));
        let my = super::super::mysql::create_statements(&user(&password, &rules), "app");
        assert_eq!(
            my[1],
            "GRANT SELECT ON `app`.* TO 'al_dyn_0011223344556677'@'%'"
        );
    }
}
