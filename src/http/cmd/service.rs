//! The routes that serve HitMe itself rather than counts: `/healthz`, `/metrics` and the
//! dashboard's files.

use crate::assets::Asset;
use crate::http::error::ApiError;
use crate::http::response::{Body, Response};
use crate::http::App;
use crate::store::Trouble;

/// `GET /healthz`: 200 when Redis is fit to count hits; 503 with a `reason` when it cannot be
/// reached (`unreachable`: its breaker is open, or it does not answer a PING) or refuses
/// writes (`refusing_writes`: out of memory, read-only, failed snapshot). What is known
/// already is answered without asking Redis, so that a Redis that is down never makes a
/// health check wait; while writes are refused, one small write checks whether they are
/// taken again.
pub(super) fn health(app: &App) -> Result<Response, ApiError> {
    match app.store.trouble() {
        Some(Trouble::Unreachable(why)) => return Err(ApiError::unhealthy("unreachable", why)),
        Some(Trouble::RefusingWrites(why)) if app.store.probe_write().is_err() => {
            let why = format!(
                "Redis refuses writes ({why}); free memory or fix Redis, and hits are counted again"
            );
            return Err(ApiError::unhealthy("refusing_writes", why));
        }
        // Writes are taken again, or nothing is known to be wrong.
        Some(Trouble::RefusingWrites(_)) | None => {}
    }
    app.store
        .ping()
        .map_err(|e| ApiError::unhealthy("unreachable", e.message().to_string()))?;
    Ok(Response::ok())
}

/// `GET /metrics`, in the Prometheus text format.
pub(super) fn metrics(app: &App) -> Response {
    let text = app.metrics.render((app.pool)());
    Response::with(
        "text/plain; version=0.0.4; charset=utf-8",
        Body::Owned(text),
    )
}

/// A dashboard file.
pub(super) fn asset(asset: Asset) -> Response {
    Response::with(asset.content_type, Body::Static(asset.bytes))
}
