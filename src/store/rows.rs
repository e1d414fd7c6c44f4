//! An export's rows as text: CSV (after a line naming the format's version) or JSON lines.
//! `GET /export` and `hitme export` write them; `hitme import` reads them back.

use super::Row;

/// The first line of an export: what wrote it, and the version of its format.
pub(crate) const CSV_VERSION_LINE: &str = "# hitme export v1";
pub(crate) const CSV_HEADER: &str = "metric,period,start,url,count";

/// How an export is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Jsonl,
}

/// Writes rows in `format`, the first line(s) first.
pub(crate) struct RowWriter {
    format: Format,
}

impl RowWriter {
    /// A writer, and the lines that open its output.
    pub(crate) fn new(format: Format) -> (RowWriter, Vec<u8>) {
        let head = match format {
            Format::Csv => format!("{CSV_VERSION_LINE}\n{CSV_HEADER}\n").into_bytes(),
            Format::Jsonl => Vec::new(),
        };
        (RowWriter { format }, head)
    }

    /// The text of `rows`.
    pub(crate) fn write(&mut self, rows: &[Row]) -> Vec<u8> {
        match self.format {
            Format::Csv => {
                let mut csv = csv::WriterBuilder::new()
                    .terminator(csv::Terminator::Any(b'\n'))
                    .from_writer(Vec::with_capacity(rows.len() * 80));
                for row in rows {
                    let record = [
                        row.metric.name(),
                        row.period.name(),
                        &row.start.to_string(),
                        &row.url,
                        &row.count.to_string(),
                    ];
                    csv.write_record(record)
                        .expect("writing into memory cannot fail");
                }
                csv.into_inner().expect("writing into memory cannot fail")
            }
            Format::Jsonl => {
                let mut out = Vec::with_capacity(rows.len() * 96);
                for row in rows {
                    let line = serde_json::json!({
                        "metric": row.metric.name(),
                        "period": row.period.name(),
                        "start": row.start,
                        "url": row.url,
                        "count": row.count,
                    });
                    serde_json::to_writer(&mut out, &line).expect("a value always serialises");
                    out.push(b'\n');
                }
                out
            }
        }
    }
}
