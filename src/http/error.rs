//! API errors: what went wrong, the HTTP status that says so, and the JSON body a client sees.

use std::borrow::Cow;
use std::fmt;

use crate::store::StoreError;
use crate::top::RankingError;

/// An error answered to the client as `{"status":"error","error":"..."}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub message: Cow<'static, str>,
    /// The methods a path accepts, sent as `Allow` with a 405.
    pub allow: Option<&'static str>,
}

impl ApiError {
    fn new(status: u16, message: impl Into<Cow<'static, str>>) -> Self {
        ApiError {
            status,
            message: message.into(),
            allow: None,
        }
    }

    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(400, message)
    }

    pub fn not_found(path: &str) -> Self {
        Self::new(
            404,
            format!(
                "no such path: {}; the API is POST /hit, GET /hit, GET /hits, GET /top, GET /series, GET /healthz, GET /metrics and the dashboard at /",
                truncate(path, 200)
            ),
        )
    }

    pub fn method_not_allowed(method: &str, allow: &'static str) -> Self {
        ApiError {
            allow: Some(allow),
            ..Self::new(
                405,
                format!(
                    "method {} is not allowed here; use {allow}",
                    truncate(method, 20)
                ),
            )
        }
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            413,
            format!("request body is over the {limit}-byte limit; send only url and timestamp"),
        )
    }

    pub fn unavailable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(503, message)
    }

    pub fn internal(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(500, message)
    }

    /// The JSON body sent to the client.
    pub fn to_json(&self) -> Vec<u8> {
        let mut body = br#"{"status":"error","error":"#.to_vec();
        serde_json::to_writer(&mut body, &self.message).expect("a string always serialises");
        body.push(b'}');
        body
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl std::error::Error for ApiError {}

impl From<StoreError> for ApiError {
    /// Redis being down, slow or refusing us is the operator's to fix: 503, so clients retry.
    /// Data HitMe cannot use, or a bug, is a 500.
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(message) => ApiError::unavailable(message),
            StoreError::BadData(message) | StoreError::Internal(message) => {
                ApiError::internal(message)
            }
        }
    }
}

impl From<RankingError> for ApiError {
    fn from(err: RankingError) -> Self {
        match err {
            RankingError::Store(err) => err.into(),
            RankingError::Busy => ApiError::unavailable(
                "HitMe is reading other rankings for /top and keeps its other workers for hits; retry in a second",
            ),
        }
    }
}

/// Cuts client-supplied text echoed in errors to a readable length: at most `max` bytes,
/// on a character boundary.
pub(super) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_body_has_status_and_message() {
        let err = ApiError::bad_request("url is required");
        assert_eq!(
            String::from_utf8(err.to_json()).unwrap(),
            r#"{"status":"error","error":"url is required"}"#
        );
    }

    #[test]
    fn long_paths_are_cut_on_a_char_boundary() {
        let path = "é".repeat(300);
        let err = ApiError::not_found(&path);
        assert!(err.message.len() < 400);
    }
}
