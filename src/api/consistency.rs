//! Read-your-writes across requests: every write answers the log position it reached
//! (`Authledger-Position` header, from `commands::written::track`), and any read given `?min_position=N` waits (bounded) until
//! the projections include N, or answers 503 so the client can retry (400 at once for a
//! position the log has not reached).

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::problem::Problem;
use crate::app::AppState;
use crate::commands::{wait_to_read, NotReadable};

pub const POSITION_HEADER: &str = "authledger-position";
/// How long a read waits for the projections to reach `min_position`.
const MAX_WAIT: Duration = Duration::from_secs(10);

fn min_position(query: Option<&str>) -> Result<Option<u64>, String> {
    let Some(q) = query else { return Ok(None) };
    for pair in q.split('&') {
        if let Some(v) = pair.strip_prefix("min_position=") {
            return v
                .parse::<u64>()
                .map(Some)
                .map_err(|_| "min_position must be a log position (unsigned integer)".into());
        }
    }
    Ok(None)
}

pub async fn consistency(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match min_position(req.uri().query()) {
        Err(detail) => {
            return Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-request",
                "Invalid request",
                Some(detail),
            )
            .into_response()
        }
        Ok(Some(n)) => {
            if let Err(not_readable) = wait_to_read(&state, n, MAX_WAIT).await {
                return refusal(not_readable);
            }
        }
        Ok(None) => {}
    }
    let (mut resp, position) = crate::commands::written::track(next.run(req)).await;
    if position > 0 {
        if let Ok(v) = HeaderValue::from_str(&position.to_string()) {
            resp.headers_mut().insert(POSITION_HEADER, v);
        }
    }
    resp
}

/// A read that cannot be answered as of its `min_position`: a position the log has not
/// reached is the client's mistake (400); projections behind the log are worth a retry (503).
fn refusal(not_readable: NotReadable) -> Response {
    match not_readable {
        NotReadable::BeyondLog { position, head } => Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-request",
            "min_position is beyond the log",
            Some(format!(
                "position {position} was never written: the log's last position is {head}"
            )),
        )
        .into_response(),
        NotReadable::Lagging { position } => {
            let mut resp = Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "projection-lagging",
                "The projections have not reached min_position yet",
                Some(format!(
                    "waited {}s for position {position}",
                    MAX_WAIT.as_secs()
                )),
            )
            .into_response();
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from_static("1"),
            );
            resp
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_position_is_read_from_the_query() {
        assert_eq!(min_position(None), Ok(None));
        assert_eq!(min_position(Some("a=1&min_position=42")), Ok(Some(42)));
        assert!(min_position(Some("min_position=-1")).is_err());
    }
}
