//! The `s3` driver (S3-compatible object storage): a SigV4-signed `HeadBucket` (`rusty-s3`
//! signs, `net::HttpClient` sends it, so the endpoint's addresses pass the destination
//! policy). A `HEAD` answer has no body, so a refusal is asked again as a one-key
//! `ListObjectsV2` (read-only too) to read the server's error code.

use std::sync::Arc;
use std::time::Duration;

use rusty_s3::actions::{HeadBucket, ListObjectsV2, S3Action};
use rusty_s3::{Bucket, Credentials, UrlStyle};

use super::{Class, ConnectorError, Failure, Values};
use crate::net::{HttpClient, Policy};

pub const FIELDS: &[&str] = &[
    "endpoint",
    "region",
    "bucket",
    "path_style",
    "access_key_id",
    "secret_access_key",
];

/// How long a signed URL stays valid (the request is sent at once).
const SIGNED_FOR: Duration = Duration::from_secs(60);

pub(super) async fn test(
    values: &Values<'_>,
    timeout: Duration,
    destinations: &Arc<Policy>,
) -> Result<(), ConnectorError> {
    let endpoint = destinations.url(values.str("endpoint"))?;
    let style = if values.flag("path_style") {
        UrlStyle::Path
    } else {
        UrlStyle::VirtualHost
    };
    let bucket = Bucket::new(
        endpoint,
        style,
        values.str("bucket").to_string(),
        values.str("region").to_string(),
    )
    .map_err(|e| Failure::new(Class::Failed, format!("endpoint: {e}")))?;
    let credentials = Credentials::new(
        values.str("access_key_id"),
        values.str("secret_access_key"),
    );
    let http = HttpClient::new(destinations, |b| {
        b.timeout(timeout).user_agent("authledger-connection-test")
    })
    .map_err(|e| Failure::new(Class::Failed, e.to_string()))?;
    let head = HeadBucket::new(&bucket, Some(&credentials)).sign(SIGNED_FOR);
    let status = send(&http, reqwest::Method::HEAD, head.as_str()).await?.0;
    if status.is_success() {
        return Ok(());
    }
    let mut list = ListObjectsV2::new(&bucket, Some(&credentials));
    list.query_mut().insert("max-keys", "1");
    let (status, body) = send(&http, reqwest::Method::GET, list.sign(SIGNED_FOR).as_str()).await?;
    let code = tag(&body, "Code").unwrap_or_default();
    let message = tag(&body, "Message").unwrap_or_default();
    let said = if message.is_empty() {
        format!("HTTP {} {code}", status.as_u16())
    } else {
        format!("{code}: {message}")
    };
    let class = match (status.as_u16(), code.as_str()) {
        (_, "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "InvalidToken" | "ExpiredToken") => {
            Class::InvalidCredentials
        }
        (_, "NoSuchBucket") | (404, _) => Class::NotFound,
        (_, "AccessDenied" | "AllAccessDisabled") | (403, _) => Class::PermissionDenied,
        (401, _) => Class::InvalidCredentials,
        _ if status.is_success() => {
            // HEAD was refused and the listing allowed: a server that does not serve HEAD
            // on a bucket; logged in and read the bucket all the same.
            return Ok(());
        }
        _ => Class::Failed,
    };
    Err(Failure::new(class, said).into())
}

async fn send(
    http: &HttpClient,
    method: reqwest::Method,
    url: &str,
) -> Result<(reqwest::StatusCode, String), ConnectorError> {
    let response = http.request(method, url)?.send().await.map_err(|e| {
        if let Some(r) = crate::net::client::refusal(&e) {
            return ConnectorError::Refused(r);
        }
        let class = if e.is_timeout() {
            Class::Timeout
        } else if format!("{e:?}").contains("certificate") || format!("{e:?}").contains("Tls") {
            Class::TlsFailure
        } else {
            Class::Unreachable
        };
        let message = match class {
            Class::Timeout => "the endpoint did not answer in time",
            Class::TlsFailure => "the TLS handshake with the endpoint failed",
            _ => "the endpoint could not be reached",
        };
        Failure::new(class, message).into()
    })?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    Ok((status, body.chars().take(4096).collect()))
}

/// The text of the first `<name>…</name>` of an S3 error document.
fn tag(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(xml[start..end].chars().take(300).collect())
}
