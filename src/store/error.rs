//! What can go wrong in the store, said so that an operator knows what to do; the HTTP edge
//! chooses the status.

use std::fmt;

use redis::{ErrorKind, RedisError};

/// A failed store operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreError {
    /// Redis is down, slow, refusing HitMe or reconfiguring: the operator's to fix, and the
    /// client's to retry.
    Unavailable(String),
    /// Redis answered with data HitMe cannot use (say, a key of the wrong type).
    BadData(String),
    /// A bug in HitMe.
    Internal(String),
}

impl StoreError {
    pub(crate) fn message(&self) -> &str {
        match self {
            StoreError::Unavailable(m) | StoreError::BadData(m) | StoreError::Internal(m) => m,
        }
    }

    /// A reply HitMe cannot understand (a parse error, an unexpected type, `WRONGTYPE`), named
    /// with its likely cause; `None` for every other failure.
    pub(crate) fn bad_data(err: &RedisError) -> Option<StoreError> {
        let wrong_data = matches!(
            err.kind(),
            ErrorKind::Parse | ErrorKind::UnexpectedReturnType
        ) || err.code() == Some("WRONGTYPE");
        wrong_data.then(|| {
            StoreError::BadData(format!(
                "Redis returned data HitMe cannot use ({err}); check that --key-prefix names only HitMe's hashes"
            ))
        })
    }

    /// A failed command on a standalone Redis.
    pub(crate) fn standalone(err: RedisError) -> StoreError {
        Self::bad_data(&err).unwrap_or_else(|| {
            StoreError::Unavailable(format!(
                "Redis is unavailable ({err}); retry later, and check that Redis is running at --redis-url"
            ))
        })
    }

    /// No pooled connection to a standalone Redis in time.
    pub(crate) fn standalone_pool(err: r2d2::Error) -> StoreError {
        StoreError::Unavailable(format!(
            "no Redis connection could be had in time ({err}); retry later, and check that Redis is running at --redis-url"
        ))
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for StoreError {}
