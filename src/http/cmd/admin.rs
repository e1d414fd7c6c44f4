//! The admin routes, which exist only with `--admin-token` and need it: `DELETE /hit?url=URL`
//! removes a URL from every bucket of every period, and `GET /export` streams every count as
//! `hitme export` writes it.

use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

use crate::http::error::ApiError;
use crate::http::params::{parse_timestamp, Fields};
use crate::http::response::{Body, Response};
use crate::http::App;
use crate::store::rows::{Format, RowWriter};
use crate::store::{HitStore, StoreError};

/// `DELETE /hit?url=URL`
pub(crate) struct DeleteUrl {
    url: String,
}

impl DeleteUrl {
    pub(crate) fn parse(fields: Fields, app: &App) -> Result<DeleteUrl, ApiError> {
        Ok(DeleteUrl {
            url: fields.require_url(&app.url_rules)?,
        })
    }

    /// Scans every bucket (a chunked `SCAN` of the keys under the prefix), so it runs on the
    /// read pool.
    pub(crate) fn apply(self, app: &App) -> Result<Response, ApiError> {
        let deleted = app.store.delete_url(&self.url)?;
        let mut out = br#"{"status":"OK","url":"#.to_vec();
        serde_json::to_writer(&mut out, &self.url).expect("a string always serialises");
        out.extend_from_slice(
            format!(
                r#","buckets":{},"hits":{},"visits":{}}}"#,
                deleted.buckets, deleted.hits, deleted.visits
            )
            .as_bytes(),
        );
        Ok(Response::json(out))
    }
}

/// `GET /export?format=csv|jsonl&since=TS`
pub(crate) struct Export {
    format: Format,
    since: Option<i64>,
}

impl Export {
    pub(crate) fn parse(fields: Fields) -> Result<Export, ApiError> {
        let format = match fields.format.as_deref() {
            None | Some("") | Some("csv") => Format::Csv,
            Some("jsonl") => Format::Jsonl,
            Some(_) => return Err(ApiError::bad_request("format must be csv or jsonl")),
        };
        let since = fields
            .since
            .as_deref()
            .map(|since| {
                parse_timestamp(since).map_err(|_| {
                    ApiError::bad_request(
                        "since must be whole milliseconds since the Unix epoch (0: every bucket)",
                    )
                })
            })
            .transpose()?;
        Ok(Export { format, since })
    }

    pub(crate) fn apply(self, app: &App) -> Result<Response, ApiError> {
        let content_type = match self.format {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Jsonl => "application/x-ndjson",
        };
        let stream = ExportStream::start(app.store.clone(), self.format, self.since)?;
        Ok(Response::with(content_type, Body::Stream(Box::new(stream)))
            .with_cache_control("no-store"))
    }
}

/// An export read by a thread of its own, a chunk of text at a time, a few chunks ahead.
struct ExportStream {
    chunks: Receiver<Result<Vec<u8>, StoreError>>,
    out: Vec<u8>,
    sent: usize,
}

impl ExportStream {
    fn start(
        store: Arc<dyn HitStore>,
        format: Format,
        since: Option<i64>,
    ) -> Result<Self, ApiError> {
        let (send, chunks) = sync_channel(4);
        std::thread::Builder::new()
            .name("hitme-export".into())
            .spawn(move || {
                let (mut writer, head) = RowWriter::new(format);
                if send.send(Ok(head)).is_err() {
                    return;
                }
                let exported = store.export(since, &mut |rows| {
                    // Gone: the client left, and the export with it.
                    send.send(Ok(writer.write(&rows)))
                        .map_err(|_| "the client left".to_string())
                });
                if let Err(e) = exported {
                    let _ = send.send(Err(e));
                }
            })
            .map_err(|e| ApiError::internal(format!("cannot start a thread for /export: {e}")))?;
        Ok(ExportStream {
            chunks,
            out: Vec::new(),
            sent: 0,
        })
    }
}

impl Read for ExportStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.sent == self.out.len() {
            match self.chunks.recv() {
                Ok(Ok(chunk)) => (self.out, self.sent) = (chunk, 0),
                // A failure cuts the answer short: no last chunk, so never taken as whole.
                Ok(Err(e)) => return Err(io::Error::other(e.message().to_string())),
                Err(_) => return Ok(0),
            }
        }
        let n = (self.out.len() - self.sent).min(buf.len());
        buf[..n].copy_from_slice(&self.out[self.sent..self.sent + n]);
        self.sent += n;
        Ok(n)
    }
}
