//! The one response type: a status, a content type, a body and the headers of its own, built
//! with small builders (`Response::json(body).with_status(201)`); the headers of the
//! connection and of CORS are added when it is sent ([`super::edge_headers`]).

use std::io::Read;
use std::time::Duration;

use tiny_http::{Header, StatusCode};

use super::error::ApiError;

pub(crate) const JSON: &str = "application/json";
const OK_BODY: &[u8] = br#"{"status":"OK"}"#;

/// What to send back.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Body,
    /// With a 405 or a preflight: the methods the path accepts.
    pub allow: Option<&'static str>,
    /// `no-store` for answers that must never be reused (counts, hits), `no-cache` for the
    /// dashboard's files and badges (revalidated each time).
    pub cache_control: &'static str,
    /// The request body was left unread (too large, or the client stalled): sending must
    /// not hold up a worker while tiny_http drains it.
    pub body_unread: bool,
    /// Headers of this response's own (`WWW-Authenticate`, `Retry-After`, `RateLimit-*`).
    pub headers: Vec<Header>,
}

pub enum Body {
    Static(&'static [u8]),
    Owned(Vec<u8>),
    /// Written as it is read, with chunked transfer encoding: its length is not known
    /// up front. An error while reading cuts the response short (no last chunk, and the
    /// connection is closed), which the client sees as an incomplete answer.
    Stream(Box<dyn Read + Send>),
}

impl Body {
    /// The bytes of a body held in memory; none for a stream.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Body::Static(bytes) => bytes,
            Body::Owned(bytes) => bytes,
            Body::Stream(_) => &[],
        }
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Stream(_) => f.write_str("Stream"),
            _ => write!(f, "{:?}", String::from_utf8_lossy(self.bytes())),
        }
    }
}

/// A body being sent.
pub struct BodyReader {
    body: Body,
    sent: usize,
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Body::Stream(stream) = &mut self.body {
            return stream.read(buf);
        }
        let rest = &self.body.bytes()[self.sent..];
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.sent += n;
        Ok(n)
    }
}

impl Response {
    /// A 200 with `body` of `content_type`.
    pub fn with(content_type: &'static str, body: Body) -> Response {
        Response {
            status: 200,
            content_type,
            body,
            allow: None,
            cache_control: if content_type == JSON {
                "no-store"
            } else {
                "no-cache"
            },
            body_unread: false,
            headers: Vec::new(),
        }
    }

    /// A 200 with a JSON body.
    pub fn json(body: Vec<u8>) -> Response {
        Response::with(JSON, Body::Owned(body))
    }

    /// `{"status":"OK"}`
    pub fn ok() -> Response {
        Response::with(JSON, Body::Static(OK_BODY))
    }

    /// `204 No Content`, for a preflight.
    pub(crate) fn no_content(allow: &'static str) -> Response {
        Response::with("", Body::Static(b""))
            .with_status(204)
            .with_allow(allow)
    }

    /// The JSON error a client sees for `err`.
    pub(crate) fn error(err: &ApiError) -> Response {
        let mut headers = Vec::new();
        if err.challenge {
            headers.push(header("WWW-Authenticate", "Bearer"));
        }
        Response {
            body_unread: err.body_unread,
            allow: err.allow,
            headers,
            ..Response::json(err.to_json()).with_status(err.status)
        }
    }

    /// `WWW-Authenticate: Bearer`, for a 401 that is not JSON (the badge's).
    pub(crate) fn with_bearer_challenge(mut self) -> Response {
        self.headers.push(header("WWW-Authenticate", "Bearer"));
        self
    }

    pub(crate) fn with_headers(mut self, headers: Vec<Header>) -> Response {
        self.headers.extend(headers);
        self
    }

    pub(crate) fn with_status(self, status: u16) -> Response {
        Response { status, ..self }
    }

    pub(crate) fn with_allow(self, allow: &'static str) -> Response {
        Response {
            allow: Some(allow),
            ..self
        }
    }

    pub(crate) fn with_cache_control(self, cache_control: &'static str) -> Response {
        Response {
            cache_control,
            ..self
        }
    }

    /// The tiny_http response, with `headers` (those of the connection and of CORS) added to
    /// its own.
    pub fn into_tiny(self, mut headers: Vec<Header>) -> tiny_http::Response<BodyReader> {
        if !self.content_type.is_empty() {
            headers.push(header("Content-Type", self.content_type));
        }
        headers.push(header("Server", "hitme"));
        headers.push(header("Cache-Control", self.cache_control));
        if let Some(allow) = self.allow {
            headers.push(header("Allow", allow));
        }
        headers.extend(self.headers);
        let len = match self.body {
            Body::Stream(_) => None,
            _ => Some(self.body.bytes().len()),
        };
        let body = BodyReader {
            body: self.body,
            sent: 0,
        };
        tiny_http::Response::new(StatusCode(self.status), headers, body, len, None)
    }
}

fn header(name: &'static str, value: &'static str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("static headers are valid")
}

/// The `Keep-Alive` header for connections closed after `idle` without a request.
pub(crate) fn keep_alive_header(idle: Option<Duration>) -> Header {
    // Without a timeout HitMe never closes an idle connection; the header wants a number,
    // and a day says as much to a client.
    let secs = idle.map_or(86_400, |d| d.as_secs().max(1));
    Header::from_bytes(&b"Keep-Alive"[..], format!("timeout={secs}").as_bytes())
        .expect("a number is a valid header value")
}
