//! The `s3` driver (S3-compatible object storage): a `HeadBucket` signed with SigV4 in the
//! `Authorization` header (`aws-sigv4`, AWS's own signer) and sent by `net::HttpClient`, so
//! the endpoint's addresses pass the destination policy. A `HEAD` answer has no body, so a
//! refusal is asked again as a one-key `ListObjectsV2` (read-only too) to read the server's
//! error code.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;

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

pub(super) async fn test(
    values: &Values<'_>,
    timeout: Duration,
    destinations: &Arc<Policy>,
) -> Result<(), ConnectorError> {
    let mut url = destinations.url(values.str("endpoint"))?;
    let bucket = values.str("bucket");
    if values.flag("path_style") {
        url.path_segments_mut()
            .map_err(|()| Failure::new(Class::Failed, "the endpoint cannot name a bucket"))?
            .pop_if_empty()
            .push(bucket);
    } else {
        let host = url.host_str().unwrap_or_default().to_string();
        url.set_host(Some(&format!("{bucket}.{host}")))
            .map_err(|e| Failure::new(Class::Failed, format!("endpoint: {e}")))?;
        destinations.url(url.as_str())?;
    }
    let identity = aws_credential_types::Credentials::new(
        values.str("access_key_id"),
        values.str("secret_access_key"),
        None,
        None,
        "authledger-connector",
    )
    .into();
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let http = HttpClient::new(destinations, |b| {
        b.timeout(timeout).user_agent("authledger-connection-test")
    })
    .map_err(|e| Failure::new(Class::Failed, e.to_string()))?;
    let signed = |method: &'static str, url: &str| -> Result<Vec<(String, String)>, Failure> {
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(values.str("region"))
            .name("s3")
            // The server checks the signature's time against its own clock: the real time.
            .time(SystemTime::now())
            .settings(settings.clone())
            .build()
            .map_err(|e| Failure::new(Class::Failed, e.to_string()))?
            .into();
        let request =
            SignableRequest::new(method, url, std::iter::empty(), SignableBody::Bytes(&[]))
                .map_err(|e| Failure::new(Class::Failed, format!("cannot sign: {e}")))?;
        let (instructions, _) = sign(request, &params)
            .map_err(|e| Failure::new(Class::Failed, format!("cannot sign: {e}")))?
            .into_parts();
        Ok(instructions
            .headers()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    };
    let head = signed("HEAD", url.as_str())?;
    let status = send(&http, reqwest::Method::HEAD, url.as_str(), head)
        .await?
        .0;
    if status.is_success() {
        return Ok(());
    }
    let mut list = url.clone();
    list.query_pairs_mut()
        .append_pair("list-type", "2")
        .append_pair("max-keys", "1");
    let headers = signed("GET", list.as_str())?;
    let (status, body) = send(&http, reqwest::Method::GET, list.as_str(), headers).await?;
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
        // HEAD refused, the listing allowed: logged in and read the bucket all the same.
        _ if status.is_success() => return Ok(()),
        _ => Class::Failed,
    };
    Err(Failure::new(class, said).into())
}

async fn send(
    http: &HttpClient,
    method: reqwest::Method,
    url: &str,
    headers: Vec<(String, String)>,
) -> Result<(reqwest::StatusCode, String), ConnectorError> {
    let mut request = http.request(method, url)?;
    for (k, v) in headers {
        request = request.header(k, v);
    }
    let response = request.send().await.map_err(|e| {
        if let Some(r) = crate::net::client::refusal(&e) {
            return ConnectorError::Refused(r);
        }
        let chain = format!("{e:?}");
        let (class, message) = if e.is_timeout() {
            (Class::Timeout, "the endpoint did not answer in time")
        } else if chain.contains("certificate") || chain.contains("Tls") {
            (
                Class::TlsFailure,
                "the TLS handshake with the endpoint failed",
            )
        } else if chain.contains("ConnectionRefused") {
            (Class::Unreachable, "connection refused")
        } else {
            (Class::Unreachable, "the endpoint could not be reached")
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
