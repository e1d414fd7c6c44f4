//! A response as HitMe sends it: a status, a content type, a body, and the headers that go
//! with every answer.

use std::io::Cursor;
use std::time::Duration;

use tiny_http::{Header, Response, StatusCode};

use super::error::ApiError;

pub const JSON: &str = "application/json";
const OK_BODY: &[u8] = br#"{"status":"OK"}"#;

/// What to send back.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Body,
    /// With a 405: the methods the path accepts.
    pub allow: Option<&'static str>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Body {
    Static(&'static [u8]),
    Owned(Vec<u8>),
}

impl AsRef<[u8]> for Body {
    fn as_ref(&self) -> &[u8] {
        match self {
            Body::Static(bytes) => bytes,
            Body::Owned(bytes) => bytes,
        }
    }
}

impl Reply {
    /// A 200 with `body` of `content_type`.
    pub fn with(content_type: &'static str, body: Body) -> Reply {
        Reply {
            status: 200,
            content_type,
            body,
            allow: None,
        }
    }

    /// A 200 with a JSON body.
    pub fn json(body: Vec<u8>) -> Reply {
        Reply::with(JSON, Body::Owned(body))
    }

    /// `{"status":"OK"}`
    pub fn ok() -> Reply {
        Reply::with(JSON, Body::Static(OK_BODY))
    }

    pub fn error(err: &ApiError) -> Reply {
        Reply {
            status: err.status,
            allow: err.allow,
            ..Reply::json(err.to_json())
        }
    }

    /// The tiny_http response for this reply; `keep_alive` is the header an HTTP/1.0
    /// keep-alive client needs.
    pub fn into_response(self, keep_alive: Option<Header>) -> Response<Cursor<Body>> {
        let mut headers = Vec::with_capacity(5);
        headers.push(header("Content-Type", self.content_type));
        headers.push(header("Server", "hitme"));
        if self.content_type == JSON {
            headers.push(header("Cache-Control", "no-store"));
        } else {
            headers.push(header("Cache-Control", "no-cache"));
        }
        if let Some(allow) = self.allow {
            headers.push(header("Allow", allow));
        }
        // tiny_http refuses to let a response set `Connection`; HTTP/1.0 clients such as ab
        // look for a `Keep-Alive` header instead.
        headers.extend(keep_alive);
        let len = self.body.as_ref().len();
        Response::new(
            StatusCode(self.status),
            headers,
            Cursor::new(self.body),
            Some(len),
            None,
        )
    }
}

fn header(name: &'static str, value: &'static str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("static headers are valid")
}

/// The `Keep-Alive` header for connections closed after `idle` without a request.
pub fn keep_alive_header(idle: Option<Duration>) -> Header {
    // Without a timeout HitMe never closes an idle connection; the header wants a number,
    // and a day says as much to a client.
    let secs = idle.map_or(86_400, |d| d.as_secs().max(1));
    Header::from_bytes(&b"Keep-Alive"[..], format!("timeout={secs}").as_bytes())
        .expect("a number is a valid header value")
}
