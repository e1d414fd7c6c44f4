//! The routes that serve HitMe itself rather than counts: `/healthz`, `/metrics` and the
//! dashboard's files.

use crate::assets::Asset;
use crate::http::error::ApiError;
use crate::http::response::{Body, Response};
use crate::http::App;

/// `GET /healthz`: 200 when Redis answers a PING, 503 when it does not.
pub(super) fn health(app: &App) -> Result<Response, ApiError> {
    app.store.ping()?;
    Ok(Response::ok())
}

/// `GET /metrics`, in the Prometheus text format.
pub(super) fn metrics(app: &App) -> Response {
    let text = app.metrics.render(&app.pool);
    Response::with(
        "text/plain; version=0.0.4; charset=utf-8",
        Body::Owned(text),
    )
}

/// A dashboard file.
pub(super) fn asset(asset: Asset) -> Response {
    Response::with(asset.content_type, Body::Static(asset.bytes))
}
