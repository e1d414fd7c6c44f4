//! API errors: what went wrong, the HTTP status that says so, and the JSON body a client sees.

use std::borrow::Cow;
use std::fmt;

use crate::store::StoreError;

/// An error answered to the client as `{"status":"error","error":"..."}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub message: Cow<'static, str>,
    /// The methods a path accepts, sent as `Allow` with a 405.
    pub allow: Option<&'static str>,
    /// The request body was left unread: the answer goes out without waiting for it.
    pub body_unread: bool,
    /// A word for programs, sent as `"reason"` beside the message (`/healthz`, 401s).
    pub reason: Option<&'static str>,
    /// A 401 that asks for a bearer token (`WWW-Authenticate: Bearer`).
    pub challenge: bool,
}

impl ApiError {
    fn new(status: u16, message: impl Into<Cow<'static, str>>) -> Self {
        ApiError {
            status,
            message: message.into(),
            allow: None,
            body_unread: false,
            reason: None,
            challenge: false,
        }
    }

    /// The same error, for a request whose body is left unread.
    pub(crate) fn with_body_unread(self) -> Self {
        ApiError {
            body_unread: true,
            ..self
        }
    }

    pub(crate) fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(400, message)
    }

    pub(crate) fn not_found(path: &str) -> Self {
        Self::new(
            404,
            format!(
                "no such path: {}; the API is POST /hit, GET /hit, GET /hits, GET /top, GET /series, GET /sites, GET /pixel.gif, GET /badge.svg, GET /healthz, GET /metrics, with --visits GET /visitors, with --sources GET /sources, with --admin-token DELETE /hit and GET /export, the dashboard at / and its description at GET /openapi.json",
                truncate(path, 200)
            ),
        )
    }

    pub(crate) fn method_not_allowed(method: &str, allow: &'static str) -> Self {
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

    pub(crate) fn payload_too_large(limit: usize) -> Self {
        Self::new(
            413,
            format!("request body is over the {limit}-byte limit; send only url and timestamp"),
        )
    }

    pub fn unavailable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(503, message)
    }

    /// A read without the right `--read-token`.
    pub(crate) fn unauthorized(message: &'static str) -> Self {
        ApiError {
            reason: Some("token"),
            challenge: true,
            ..Self::new(401, message)
        }
    }

    /// A hit HitMe will not count (a host outside `--sites`).
    pub(crate) fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(403, message)
    }

    /// A counting request over the client's `--rate-limit`.
    pub(crate) fn too_many_requests(rate: &str, retry_after_secs: u64) -> Self {
        Self::new(
            429,
            format!(
                "this client sent more hits than --rate-limit {rate} allows; nothing was counted, retry in {retry_after_secs} s"
            ),
        )
    }

    /// `/healthz` when Redis is not fit to count: `reason` says why in a word
    /// (`unreachable`, `refusing_writes`).
    pub(crate) fn unhealthy(reason: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        ApiError {
            reason: Some(reason),
            ..Self::new(503, message)
        }
    }

    /// A read refused at once: `waiting` reads already wait for the read pool.
    pub(crate) fn reads_queue_full(waiting: usize) -> Self {
        Self::unavailable(format!(
            "{waiting} reads (GET /hits, GET /top) are already waiting for HitMe's read threads; retry in a few seconds, or raise --read-threads"
        ))
    }

    /// A read that waited for the read pool longer than it may.
    pub(crate) fn read_waited(waited: std::time::Duration) -> Self {
        Self::unavailable(format!(
            "this read waited {} ms for one of HitMe's read threads, past --read-queue-ms; retry later, or raise --read-threads",
            waited.as_millis()
        ))
    }

    pub(crate) fn internal(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(500, message)
    }

    /// The JSON body sent to the client.
    pub(crate) fn to_json(&self) -> Vec<u8> {
        let mut body = br#"{"status":"error","error":"#.to_vec();
        serde_json::to_writer(&mut body, &self.message).expect("a string always serialises");
        if let Some(reason) = self.reason {
            body.extend_from_slice(br#","reason":"#);
            serde_json::to_writer(&mut body, reason).expect("a string always serialises");
        }
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
        // 200 bytes of the path (100 two-byte characters), cut between characters.
        assert_eq!(err.message.chars().filter(|&c| c == 'é').count(), 100);
    }
}
