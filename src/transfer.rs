//! Moving counts in and out: `hitme export` writes every count under the prefix as CSV
//! (`metric,period,start,url,count` after a line naming the format and its version) or JSON
//! lines; `hitme import` checks a whole file first, naming the line of any problem, and only
//! then writes it in pipelined chunks. A file of `url,count` lines (all-time totals, say from
//! another counter) imports too. `GET /export` streams the same CSV.

use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::Tool;
use crate::http::canonical::{canonical_url, UrlRules};
use crate::http::App;
use crate::store::rows::{Format, RowWriter, CSV_HEADER, CSV_VERSION_LINE};
use crate::store::{HitStore, Metric, Row, StoreError};
use crate::time::{Calendar, Period};

/// Rows written to Redis per pipelined chunk.
const IMPORT_CHUNK: usize = 1000;

/// Runs `hitme export` or `hitme import` with `app`'s store, calendar and URL rules.
pub fn run(tool: &Tool, app: &App) -> Result<(), String> {
    let store = app.store.as_ref();
    match tool {
        Tool::Export {
            format,
            since,
            output,
        } => export(store, *format, *since, output.as_deref()),
        Tool::Import { file, add } => import(store, &app.calendar, &app.url_rules, file, *add),
        Tool::RebuildRankings => rebuild_rankings(store, app.kept_rankings.is_some()),
    }
}

/// `hitme rebuild-rankings`: every bucket's kept ranking of hits rebuilt.
fn rebuild_rankings(store: &dyn HitStore, kept: bool) -> Result<(), String> {
    if !kept {
        return Err("rebuild-rankings rebuilds what --rankings keeps; add --rankings".into());
    }
    let began = Instant::now();
    let rebuilt = store.rebuild_rankings().map_err(|e| e.to_string())?;
    eprintln!(
        "hitme: rebuilt the rankings of {rebuilt} buckets in {:.1} s",
        began.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `hitme export`: every count to `output` (standard output when `None`).
fn export(
    store: &dyn HitStore,
    format: Format,
    since: Option<i64>,
    output: Option<&Path>,
) -> Result<(), String> {
    let mut out: Box<dyn Write> = match output {
        Some(path) => Box::new(io::BufWriter::new(
            File::create(path).map_err(|e| format!("cannot write {} ({e})", path.display()))?,
        )),
        None => Box::new(io::BufWriter::new(io::stdout().lock())),
    };
    let began = Instant::now();
    let (mut writer, head) = RowWriter::new(format);
    out.write_all(&head).map_err(|e| e.to_string())?;
    let mut written = 0u64;
    store
        .export(since, &mut |rows| {
            written += rows.len() as u64;
            out.write_all(&writer.write(&rows))
                .map_err(|e| e.to_string())
        })
        .map_err(|e| e.message().to_string())?;
    out.flush().map_err(|e| e.to_string())?;
    eprintln!(
        "hitme: exported {written} counts in {:.1} s",
        began.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The shape of an import file, told by its first line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Csv,
    Jsonl,
    /// `url,count`: all-time hits.
    Totals,
}

/// Reads an import file's rows, checked: `line N: problem` at the first one that is not.
struct Rows<R: BufRead> {
    lines: std::iter::Enumerate<io::Lines<R>>,
    shape: Option<Shape>,
    calendar: Calendar,
    rules: UrlRules,
}

impl<R: BufRead> Rows<R> {
    fn new(reader: R, calendar: &Calendar, rules: &UrlRules) -> Rows<R> {
        Rows {
            lines: reader.lines().enumerate(),
            shape: None,
            calendar: calendar.clone(),
            rules: rules.clone(),
        }
    }

    fn row(&mut self, n: usize, line: &str) -> Result<Option<Row>, String> {
        let at = |why: String| format!("line {n}: {why}");
        let shape = match self.shape {
            Some(shape) => shape,
            None => {
                let shape = match line {
                    l if l.starts_with("# hitme export") => {
                        if l.trim() != CSV_VERSION_LINE {
                            return Err(at(format!(
                                "{:?} is not an export this HitMe reads (it reads {CSV_VERSION_LINE:?}); export again with this HitMe's version",
                                l.trim()
                            )));
                        }
                        self.shape = Some(Shape::Csv);
                        return Ok(None);
                    }
                    l if l.trim_start().starts_with('{') => Shape::Jsonl,
                    l if l.trim().eq_ignore_ascii_case("url,count") => {
                        self.shape = Some(Shape::Totals);
                        return Ok(None);
                    }
                    _ => Shape::Totals,
                };
                self.shape = Some(shape);
                shape
            }
        };
        let fields: Vec<String> = match shape {
            Shape::Jsonl => {
                let value: serde_json::Value = serde_json::from_str(line)
                    .map_err(|e| at(format!("not a JSON object ({e})")))?;
                let field = |name: &str| match &value[name] {
                    serde_json::Value::String(s) => Ok(s.clone()),
                    serde_json::Value::Number(n) => Ok(n.to_string()),
                    _ => Err(at(format!("{name} is missing"))),
                };
                vec![
                    field("metric")?,
                    field("period")?,
                    field("start")?,
                    field("url")?,
                    field("count")?,
                ]
            }
            _ => {
                if shape == Shape::Csv && line.trim() == CSV_HEADER {
                    return Ok(None);
                }
                let mut reader = csv::ReaderBuilder::new()
                    .has_headers(false)
                    .from_reader(line.as_bytes());
                let record = reader
                    .records()
                    .next()
                    .transpose()
                    .map_err(|e| at(format!("not a CSV line ({e})")))?
                    .unwrap_or_default();
                record.iter().map(str::to_string).collect()
            }
        };
        let want = if shape == Shape::Totals { 2 } else { 5 };
        if fields.len() != want {
            return Err(at(match shape {
                Shape::Totals => format!("{} fields where url,count has 2", fields.len()),
                _ => format!("{} fields where {CSV_HEADER} has 5", fields.len()),
            }));
        }
        let (metric, period, start, url, count) = match shape {
            Shape::Totals => ("hits", "all", "0", &fields[0], &fields[1]),
            _ => (
                fields[0].as_str(),
                fields[1].as_str(),
                fields[2].as_str(),
                &fields[3],
                &fields[4],
            ),
        };
        let metric = match metric {
            "hits" => Metric::Hits,
            "visits" => Metric::Visits,
            other => return Err(at(format!("metric {other:?} is neither hits nor visits"))),
        };
        let period = Period::EVERY
            .into_iter()
            .find(|p| p.name() == period)
            .ok_or_else(|| {
                at(format!(
                    "period {period:?} is not one of all, month, week, day, hour, minute"
                ))
            })?;
        let start: i64 = start.parse().map_err(|_| {
            at(format!(
                "start {start:?} is not a whole number of milliseconds"
            ))
        })?;
        let aligned = match period {
            Period::All => start == 0,
            _ => start >= 0 && self.calendar.start(start, period) == start,
        };
        if !aligned {
            return Err(at(format!(
                "start {start} is not the start of a {} bucket on this HitMe's calendar ({}); export and import with the same --time-zone and --week-start",
                period.name(),
                self.calendar.zone_name()
            )));
        }
        let url = canonical_url(url, &self.rules).map_err(|e| at(e.message.into_owned()))?;
        let count: i64 = count
            .trim()
            .parse()
            .ok()
            .filter(|c| *c >= 0)
            .ok_or_else(|| at(format!("count {count:?} is not a whole number from 0 up")))?;
        Ok(Some(Row {
            metric,
            period,
            start,
            url,
            count,
        }))
    }
}

impl<R: BufRead> Iterator for Rows<R> {
    type Item = Result<Row, String>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (i, line) = self.lines.next()?;
            let line = match line {
                Ok(line) => line,
                Err(e) => return Some(Err(format!("line {}: cannot be read ({e})", i + 1))),
            };
            if line.trim().is_empty() {
                continue;
            }
            match self.row(i + 1, &line) {
                Ok(Some(row)) => return Some(Ok(row)),
                Ok(None) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// `hitme import FILE` (`-`: standard input): checks every line, then writes.
fn import(
    store: &dyn HitStore,
    calendar: &Calendar,
    rules: &UrlRules,
    file: &Path,
    add: bool,
) -> Result<(), String> {
    // Standard input is read twice (checked, then written): kept in a file meanwhile.
    let spooled = (file == Path::new("-")).then(spool_stdin).transpose()?;
    let path = spooled.as_ref().map_or(file, |s| s.0.as_path());
    let open = || {
        File::open(path)
            .map(BufReader::new)
            .map_err(|e| format!("cannot read {} ({e})", file.display()))
    };
    let mut total = 0u64;
    for row in Rows::new(open()?, calendar, rules) {
        row.map_err(|e| format!("{e}; nothing was written"))?;
        total += 1;
    }
    let mut progress = Progress::new(total);
    let mut chunk = Vec::with_capacity(IMPORT_CHUNK);
    let write = |chunk: &mut Vec<Row>, progress: &mut Progress| -> Result<(), String> {
        store.import(chunk, add).map_err(|e: StoreError| {
            format!(
                "{} ({} of {} counts written)",
                e.message(),
                progress.done,
                progress.total
            )
        })?;
        progress.advance(chunk);
        chunk.clear();
        Ok(())
    };
    for row in Rows::new(open()?, calendar, rules) {
        chunk.push(row?);
        if chunk.len() == IMPORT_CHUNK {
            write(&mut chunk, &mut progress)?;
        }
    }
    if !chunk.is_empty() {
        write(&mut chunk, &mut progress)?;
    }
    progress.finish(add);
    Ok(())
}

/// A temporary copy of standard input, removed when dropped.
struct Spooled(PathBuf);

impl Drop for Spooled {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn spool_stdin() -> Result<Spooled, String> {
    let path = std::env::temp_dir().join(format!("hitme-import-{}", std::process::id()));
    let spooled = Spooled(path);
    let mut file = File::create(&spooled.0).map_err(|e| {
        format!(
            "cannot keep standard input in {} ({e})",
            spooled.0.display()
        )
    })?;
    io::copy(&mut io::stdin().lock().take(u64::MAX), &mut file)
        .map_err(|e| format!("cannot read standard input ({e})"))?;
    Ok(spooled)
}

/// What an import has written: a line redrawn in place on a terminal, a line every 100,000
/// counts otherwise.
struct Progress {
    total: u64,
    done: u64,
    hits: u64,
    visits: u64,
    began: Instant,
    drawn: Instant,
    terminal: bool,
}

impl Progress {
    fn new(total: u64) -> Progress {
        Progress {
            total,
            done: 0,
            hits: 0,
            visits: 0,
            began: Instant::now(),
            drawn: Instant::now(),
            terminal: io::stderr().is_terminal(),
        }
    }

    fn advance(&mut self, rows: &[Row]) {
        let before = self.done;
        self.done += rows.len() as u64;
        self.visits += rows.iter().filter(|r| r.metric == Metric::Visits).count() as u64;
        self.hits = self.done - self.visits;
        let rate = self.done as f64 / self.began.elapsed().as_secs_f64().max(0.001);
        if self.terminal && self.drawn.elapsed() >= Duration::from_millis(200) {
            let percent = self.done * 100 / self.total.max(1);
            eprint!(
                "\r\x1b[Khitme: {percent:>3}% {} of {} counts, {rate:.0}/s",
                self.done, self.total
            );
            self.drawn = Instant::now();
        } else if !self.terminal && self.done / 100_000 > before / 100_000 {
            eprintln!("hitme: {} of {} counts, {rate:.0}/s", self.done, self.total);
        }
    }

    fn finish(&self, add: bool) {
        if self.terminal {
            eprint!("\r\x1b[K");
        }
        let secs = self.began.elapsed().as_secs_f64();
        eprintln!(
            "hitme: imported {} counts ({} of hits, {} of visits; {}) in {secs:.1} s, {:.0}/s",
            self.done,
            self.hits,
            self.visits,
            if add {
                "added to those in Redis"
            } else {
                "each set"
            },
            self.done as f64 / secs.max(0.001)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::WeekStart;

    fn rows(text: &str) -> Vec<Result<Row, String>> {
        let rules = UrlRules::dropping("");
        Rows::new(text.as_bytes(), &Calendar::new(WeekStart::Monday), &rules).collect()
    }

    #[test]
    fn exports_read_back_as_they_were_written() {
        let row = Row {
            metric: Metric::Visits,
            period: Period::Day,
            start: 1_700_006_400_000,
            url: "http://a.example/x?q=1,2&r=%22s%22".into(),
            count: 7,
        };
        for format in [Format::Csv, Format::Jsonl] {
            let (mut writer, mut text) = RowWriter::new(format);
            text.extend(writer.write(std::slice::from_ref(&row)));
            let read = rows(std::str::from_utf8(&text).unwrap());
            assert_eq!(read, vec![Ok(row.clone())], "{format:?}");
        }
    }

    #[test]
    fn totals_and_bad_lines_name_their_line() {
        let read = rows("url,count\nhttp://a.example/,5\n");
        assert_eq!(read.len(), 1);
        let row = read[0].clone().unwrap();
        assert_eq!(
            (row.metric, row.period, row.start, row.count),
            (Metric::Hits, Period::All, 0, 5)
        );
        let bad = rows("http://a.example/,5\nhttp://b.example/,many\n");
        assert_eq!(
            bad[1],
            Err("line 2: count \"many\" is not a whole number from 0 up".into())
        );
        let bad = rows(&format!(
            "{CSV_VERSION_LINE}\n{CSV_HEADER}\nhits,day,1700006400001,http://a.example/,1\n"
        ));
        assert!(bad[0]
            .as_ref()
            .unwrap_err()
            .starts_with("line 3: start 1700006400001 is not the start of a day bucket"));
        let newer = rows("# hitme export v9\n");
        assert!(newer[0]
            .as_ref()
            .unwrap_err()
            .starts_with("line 1: \"# hitme export v9\" is not an export"));
    }
}
