//! `--read-token`: who may read the statistics. With a token, the reads (`/hits`, `/top`,
//! `/series`, `GET /hit`, `/badge.svg` and `/metrics`) need `Authorization: Bearer TOKEN`;
//! `--public-counts` leaves `GET /hit` and `/badge.svg` open, so that pages can show their
//! own counts. Counting, `/healthz`, preflights and the dashboard's files never need it. The
//! token is compared in constant time and never logged.

use tiny_http::Request;

use super::error::ApiError;
use super::route::Endpoint;

#[derive(Default)]
pub(crate) struct ReadAccess {
    token: Option<String>,
    public_counts: bool,
}

impl ReadAccess {
    pub(crate) fn new(token: Option<String>, public_counts: bool) -> ReadAccess {
        ReadAccess {
            token,
            public_counts,
        }
    }

    /// Whether `request` may read `endpoint`: a 401 when it needs the token and does not
    /// carry it.
    pub(crate) fn check(&self, request: &Request, endpoint: Endpoint) -> Result<(), ApiError> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        let needs_token = match endpoint {
            Endpoint::Hits
            | Endpoint::Top
            | Endpoint::Series
            | Endpoint::Sites
            | Endpoint::Visitors
            | Endpoint::Sources
            | Endpoint::Metrics => true,
            Endpoint::Hit | Endpoint::Badge => !self.public_counts,
            _ => false,
        };
        if !needs_token {
            return Ok(());
        }
        match bearer(request) {
            Some(given) if same(given.as_bytes(), token.as_bytes()) => Ok(()),
            Some(_) => Err(ApiError::unauthorized("the read token is not this HitMe's")),
            None => Err(ApiError::unauthorized(
                "this HitMe's statistics need its read token: send Authorization: Bearer <token> (the token it was started with, --read-token)",
            )),
        }
    }
}

/// `--admin-token`: who may change data (`DELETE /hit`) and take it all (`GET /export`).
/// Without a token those routes do not exist.
#[derive(Default)]
pub(crate) struct AdminAccess(Option<String>);

impl AdminAccess {
    pub(crate) fn new(token: Option<String>) -> AdminAccess {
        AdminAccess(token)
    }

    /// Whether the admin routes exist.
    pub(crate) fn enabled(&self) -> bool {
        self.0.is_some()
    }

    /// Whether `request` carries the admin token: a 401 when not.
    pub(crate) fn check(&self, request: &Request) -> Result<(), ApiError> {
        let Some(token) = &self.0 else {
            return Err(ApiError::unauthorized("this HitMe has no admin token"));
        };
        match bearer(request) {
            Some(given) if same(given.as_bytes(), token.as_bytes()) => Ok(()),
            Some(_) => Err(ApiError::unauthorized("the admin token is not this HitMe's")),
            None => Err(ApiError::unauthorized(
                "this needs HitMe's admin token: send Authorization: Bearer <token> (the token it was started with, --admin-token)",
            )),
        }
    }
}

/// The credentials of an `Authorization: Bearer` header, if the request has one.
fn bearer(request: &Request) -> Option<&str> {
    let value = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))?
        .value
        .as_str()
        .trim();
    let (scheme, credentials) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credentials.trim())
}

/// Compares in time that depends on the length only, so that the time an answer takes does
/// not tell how much of a guessed token was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiny_http::{Header, TestRequest};

    fn with(auth: Option<&str>) -> Request {
        let mut request = TestRequest::new().with_path("/top");
        if let Some(auth) = auth {
            request = request
                .with_header(Header::from_bytes(&b"Authorization"[..], auth.as_bytes()).unwrap());
        }
        request.into()
    }

    #[test]
    fn reads_need_the_token_when_there_is_one() {
        let open = ReadAccess::default();
        assert!(open.check(&with(None), Endpoint::Hits).is_ok());
        let access = ReadAccess::new(Some("s3cret".into()), false);
        for endpoint in [
            Endpoint::Hits,
            Endpoint::Top,
            Endpoint::Series,
            Endpoint::Metrics,
            Endpoint::Hit,
            Endpoint::Badge,
        ] {
            let err = access.check(&with(None), endpoint).unwrap_err();
            assert_eq!(
                (err.status, err.reason),
                (401, Some("token")),
                "{endpoint:?}"
            );
            assert!(access.check(&with(Some("Bearer s3cret")), endpoint).is_ok());
            assert!(access
                .check(&with(Some("bearer  s3cret ")), endpoint)
                .is_ok());
            assert_eq!(
                access
                    .check(&with(Some("Bearer s3cre")), endpoint)
                    .unwrap_err()
                    .message,
                "the read token is not this HitMe's"
            );
            assert!(access
                .check(&with(Some("Basic czNjcmV0")), endpoint)
                .is_err());
        }
        for endpoint in [Endpoint::Healthz, Endpoint::Pixel, Endpoint::NotFound] {
            assert!(access.check(&with(None), endpoint).is_ok(), "{endpoint:?}");
        }
        let public = ReadAccess::new(Some("s3cret".into()), true);
        assert!(public.check(&with(None), Endpoint::Hit).is_ok());
        assert!(public.check(&with(None), Endpoint::Badge).is_ok());
        assert!(public.check(&with(None), Endpoint::Top).is_err());
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
        assert!(!same(b"", b"a"));
    }
}
