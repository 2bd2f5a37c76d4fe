//! Adding a connection's credential to an [`UpstreamRequest`]. Pure; the credential wins
//! over anything already in the request.

use std::fmt;

use base64::Engine;
use secrecy::{ExposeSecret, SecretString};

use super::UpstreamRequest;
use crate::domain::auth_config::KeyLocation;

/// A connection's credential, opened just for this request.
pub enum Credential {
    /// `Authorization: Bearer <token>` (OAuth 2.0 access tokens, bearer-token configs).
    Bearer(SecretString),
    /// An API key, where the auth config's `ApiKeySettings` put it (`key_name`, `location`,
    /// `prefix`).
    ApiKey {
        name: String,
        location: KeyLocation,
        /// Written before the value, separated by one space unless it already ends in
        /// whitespace (`"Token"` → `Token <key>`, `"Bearer "` → `Bearer <key>`); applies in
        /// every location.
        prefix: Option<String>,
        value: SecretString,
    },
    /// `Authorization: Basic base64(username:password)` (RFC 7617).
    Basic {
        username: String,
        password: SecretString,
    },
    /// Nothing to add.
    None,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Bearer(_) => f.write_str("Bearer([redacted])"),
            Credential::ApiKey {
                name,
                location,
                prefix,
                ..
            } => f
                .debug_struct("ApiKey")
                .field("name", name)
                .field("location", location)
                .field("prefix", prefix)
                .field("value", &"[redacted]")
                .finish(),
            Credential::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"[redacted]")
                .finish(),
            Credential::None => f.write_str("None"),
        }
    }
}

fn with_prefix(prefix: Option<&str>, value: &str) -> String {
    match prefix {
        None | Some("") => value.to_string(),
        Some(p) if p.ends_with(char::is_whitespace) => format!("{p}{value}"),
        Some(p) => format!("{p} {value}"),
    }
}

impl UpstreamRequest {
    /// Adds the credential. A header credential replaces every header of the same name
    /// (case-insensitively); a query credential replaces every parameter of that name; a
    /// cookie credential replaces the `Cookie` header with `name=value`. The name is
    /// recorded in `secret_params` so `Debug` hides it.
    pub fn inject(&mut self, credential: &Credential) {
        match credential {
            Credential::Bearer(token) => {
                self.set_secret_header("authorization", format!("Bearer {}", token.expose_secret()))
            }
            Credential::Basic { username, password } => {
                let pair = format!("{username}:{}", password.expose_secret());
                let encoded = base64::engine::general_purpose::STANDARD.encode(pair.as_bytes());
                self.set_secret_header("authorization", format!("Basic {encoded}"));
            }
            Credential::ApiKey {
                name,
                location,
                prefix,
                value,
            } => {
                let value = with_prefix(prefix.as_deref(), value.expose_secret());
                match location {
                    KeyLocation::Header => self.set_secret_header(name, value),
                    KeyLocation::Query => self.set_secret_query(name, &value),
                    KeyLocation::Cookie => {
                        self.set_secret_header("cookie", format!("{name}={value}"));
                        self.remember_secret(name);
                    }
                }
            }
            Credential::None => {}
        }
    }

    fn remember_secret(&mut self, name: &str) {
        if !self
            .secret_params
            .iter()
            .any(|s| s.eq_ignore_ascii_case(name))
        {
            self.secret_params.push(name.to_string());
        }
    }

    fn set_secret_header(&mut self, name: &str, value: String) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value));
        self.remember_secret(name);
    }

    fn set_secret_query(&mut self, name: &str, value: &str) {
        let (base, rest) = self.url.split_once('?').unwrap_or((&self.url, ""));
        let (query, fragment) = match rest.split_once('#') {
            Some((q, f)) => (q, Some(f)),
            None => (rest, None),
        };
        let mut serializer = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            if k != name {
                serializer.append_pair(&k, &v);
            }
        }
        serializer.append_pair(name, value);
        let mut url = format!("{base}?{}", serializer.finish());
        if let Some(f) = fragment {
            url.push('#');
            url.push_str(f);
        }
        self.url = url;
        self.remember_secret(name);
    }
}

#[cfg(test)]
mod tests {
    use super::super::HttpMethod;
    use super::*;

    fn request() -> UpstreamRequest {
        UpstreamRequest {
            method: HttpMethod::Get,
            url: "https://api.example.com/v1/items?q=a+b&api_key=agent&x=1".into(),
            headers: vec![
                ("accept".into(), "application/json".into()),
                // As if something upstream of us had let an agent header through.
                ("Authorization".into(), "Bearer agent-supplied".into()),
                ("AUTHORIZATION".into(), "Basic agent".into()),
                ("Cookie".into(), "session=agent".into()),
            ],
            body: None,
            secret_params: Vec::new(),
        }
    }

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_string())
    }

    fn auth_headers(req: &UpstreamRequest) -> Vec<&str> {
        req.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("authorization"))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    #[test]
    fn bearer_replaces_every_authorization_header() {
        let mut req = request();
        req.inject(&Credential::Bearer(secret("ya29.real")));
        assert_eq!(auth_headers(&req), vec!["Bearer ya29.real"]);
        assert_eq!(req.header("accept"), Some("application/json"));
        assert!(!format!("{req:?}").contains("ya29"));
    }

    #[test]
    fn basic_is_base64_of_user_colon_password() {
        let mut req = request();
        req.inject(&Credential::Basic {
            username: "Aladdin".into(),
            password: secret("open sesame"),
        });
        // RFC 7617 §2 example.
        assert_eq!(
            auth_headers(&req),
            vec!["Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="]
        );
    }

    #[test]
    fn api_key_header_replaces_same_name_and_takes_a_prefix() {
        let mut req = request();
        req.headers.push(("x-api-key".into(), "agent".into()));
        req.inject(&Credential::ApiKey {
            name: "X-Api-Key".into(),
            location: KeyLocation::Header,
            prefix: None,
            value: secret("k-123"),
        });
        let keys: Vec<_> = req
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("x-api-key"))
            .collect();
        assert_eq!(keys, vec![&("X-Api-Key".to_string(), "k-123".to_string())]);

        for (prefix, expected) in [
            (Some("Token"), "Token k-1"),
            (Some("Bearer "), "Bearer k-1"),
            (Some(""), "k-1"),
            (None, "k-1"),
        ] {
            let mut req = request();
            req.inject(&Credential::ApiKey {
                name: "Authorization".into(),
                location: KeyLocation::Header,
                prefix: prefix.map(str::to_string),
                value: secret("k-1"),
            });
            assert_eq!(auth_headers(&req), vec![expected]);
        }
    }

    #[test]
    fn api_key_in_query_replaces_the_agents_parameter() {
        let mut req = request();
        req.inject(&Credential::ApiKey {
            name: "api_key".into(),
            location: KeyLocation::Query,
            prefix: None,
            value: secret("s3cr&t=1"),
        });
        assert_eq!(
            req.url,
            "https://api.example.com/v1/items?q=a+b&x=1&api_key=s3cr%26t%3D1"
        );
        let shown = format!("{req:?}");
        assert!(!shown.contains("s3cr"), "{shown}");
        assert!(shown.contains("api_key=[redacted]"), "{shown}");

        // A name that does not look secret is still hidden once injected.
        let mut req = request();
        req.url = "https://api.example.com/v1/items".into();
        req.inject(&Credential::ApiKey {
            name: "appid".into(),
            location: KeyLocation::Query,
            prefix: None,
            value: secret("A1"),
        });
        assert_eq!(req.url, "https://api.example.com/v1/items?appid=A1");
        assert!(!format!("{req:?}").contains("A1"));
    }

    #[test]
    fn api_key_in_cookie_sets_the_cookie_header() {
        let mut req = request();
        req.inject(&Credential::ApiKey {
            name: "sid".into(),
            location: KeyLocation::Cookie,
            prefix: None,
            value: secret("c-9"),
        });
        let cookies: Vec<_> = req
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(cookies, vec!["sid=c-9"]);
        assert!(!format!("{req:?}").contains("c-9"));
    }

    #[test]
    fn none_changes_nothing() {
        let mut req = request();
        req.inject(&Credential::None);
        assert_eq!(req, request());
    }

    #[test]
    fn credential_debug_shows_no_secret() {
        let shown = format!(
            "{:?} {:?} {:?}",
            Credential::Bearer(secret("B1")),
            Credential::ApiKey {
                name: "k".into(),
                location: KeyLocation::Header,
                prefix: Some("Token".into()),
                value: secret("A1"),
            },
            Credential::Basic {
                username: "u".into(),
                password: secret("P1"),
            }
        );
        for s in ["B1", "A1", "P1"] {
            assert!(!shown.contains(s), "{shown}");
        }
        assert!(
            shown.contains("Token") && shown.contains("\"u\""),
            "{shown}"
        );
    }
}
