//! Configuration: command-line flags, each with an environment variable fallback.

use std::time::Duration;

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, ValueEnum};

use crate::http::client::TrustedProxies;
use crate::http::cors::Cors;
use crate::http::rate_limit::Rate;
use crate::http::sites::Sites;
use crate::store::expiry::Retention;
use crate::store::rows::Format;
use crate::store::{Backend, StoreConfig};
use crate::time::PerPeriod;
use crate::time::Zone;
use crate::time::{Calendar, Period, WeekStart};

/// HitMe: a Redis-backed HTTP hit counter.
///
/// Records hits for URLs with POST /hit and answers all-time, month, week, day, hour and
/// minute counts with GET /hit and GET /hits; serves a dashboard at /.
#[derive(Parser, Debug, Clone)]
#[command(name = "hitme", version = env!("HITME_VERSION"))]
pub struct Config {
    /// Without a command, HitMe serves; with one, it runs it against the same Redis.
    #[command(subcommand)]
    pub tool: Option<Tool>,

    /// Address to listen on (host:port; port 0 picks a free one).
    #[arg(long, env = "HITME_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// Let several HitMe processes listen on the same address (SO_REUSEPORT); the kernel
    /// spreads connections among them. Every one of them must be started with it.
    #[arg(long, env = "HITME_REUSE_PORT")]
    pub reuse_port: bool,

    /// Redis to store hits in: redis://[:password@]host:port[/db], rediss://... for TLS, or
    /// redis+unix:///path.
    #[arg(
        long,
        env = "HITME_REDIS_URL",
        global = true,
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true,
        conflicts_with = "redis_cluster",
        value_name = "URL",
        value_parser = parse_redis_url
    )]
    pub redis_url: String,

    /// Use a Redis Cluster instead of --redis-url: comma-separated seed nodes (host:port,...).
    /// Keys then carry a hash tag per URL; see the README's "Scaling" section.
    #[arg(
        long,
        env = "HITME_REDIS_CLUSTER",
        global = true,
        value_delimiter = ',',
        value_name = "HOST:PORT,...",
        hide_env_values = true
    )]
    pub redis_cluster: Option<Vec<String>>,

    /// With --redis-cluster: replicas that must confirm each hit (Redis WAIT, up to
    /// --redis-timeout-ms / 4) before it is answered, so a failover cannot lose it; capped at
    /// the replicas its master has. 0 answers as soon as the master has counted it.
    #[arg(
        long,
        env = "HITME_WAIT_REPLICAS",
        default_value_t = 1,
        value_name = "N"
    )]
    pub wait_replicas: usize,

    /// PEM file of the certificate authority to trust for a rediss:// (TLS) Redis, instead of
    /// the system's roots.
    #[arg(
        long,
        env = "HITME_REDIS_CA_FILE",
        global = true,
        value_name = "PEM",
        conflicts_with = "redis_cluster"
    )]
    pub redis_ca_file: Option<std::path::PathBuf>,

    /// Worker threads handling requests [default: one per CPU, at least 2; with
    /// --redis-cluster four per CPU, at least 8]. A worker takes the requests queued while it
    /// waited on Redis and writes their hits together, so more workers than CPUs only add
    /// thread switches; in cluster mode a worker waits on a master and its replica for each
    /// URL it writes, so more workers keep the CPUs busy.
    #[arg(long, env = "HITME_THREADS", value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads: Option<u32>,

    /// Threads of the read pool, which answers the reads that scan buckets (GET /hits, a
    /// GET /top whose ranking must be read), so that the workers never wait on them.
    #[arg(long, env = "HITME_READ_THREADS", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub read_threads: u32,

    /// Milliseconds a read may wait for a read-pool thread before it is answered 503 (it is
    /// answered 503 at once when 32 reads per read thread are already waiting).
    #[arg(long, env = "HITME_READ_QUEUE_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub read_queue_ms: u64,

    /// Redis connections in the pool [default: the number of threads and read threads].
    #[arg(long, env = "HITME_POOL_SIZE", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub pool_size: Option<u32>,

    /// Prefix of every Redis key (`<prefix>:all`, `<prefix>:day:<ms>`, ...).
    #[arg(long, env = "HITME_KEY_PREFIX", global = true, default_value = "hits", value_parser = parse_prefix)]
    pub key_prefix: String,

    /// First day of the week for week buckets (Monday as in ISO 8601, Sunday as in the original node build).
    #[arg(long, env = "HITME_WEEK_START", global = true, value_enum, default_value_t = WeekStartArg::Monday)]
    pub week_start: WeekStartArg,

    /// Time zone whose local calendar cuts the month, week, day, hour and minute buckets: an
    /// IANA name such as America/New_York, Europe/Berlin or Asia/Kolkata. Every HitMe writing
    /// under one --key-prefix must use the same one (it is recorded in <prefix>:config).
    #[arg(long, env = "HITME_TIME_ZONE", global = true, default_value = "UTC", value_name = "ZONE", value_parser = parse_time_zone)]
    pub time_zone: TimeZoneArg,

    /// Milliseconds a client connection may stay silent (idle between keep-alive requests, or
    /// stalled mid-request) before it is closed; 0 waits for ever.
    #[arg(long, env = "HITME_CLIENT_TIMEOUT_MS", default_value_t = 15_000)]
    pub client_timeout_ms: u64,

    /// Milliseconds allowed for connecting to Redis, for each Redis command, and for waiting on a
    /// free pooled connection; past it a request gets 503.
    #[arg(long, env = "HITME_REDIS_TIMEOUT_MS", global = true, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub redis_timeout_ms: u64,

    /// Also join hits taken by different workers into one round trip (each worker already
    /// writes the hits queued behind the one it takes in one transaction), answered only once
    /// committed. Workers wait on each other's batches, and batches are only as large as the
    /// workers waiting, so use more threads (e.g. --threads 16).
    #[arg(long, env = "HITME_GROUP_COMMIT", conflicts_with = "redis_cluster")]
    pub group_commit: bool,

    /// Origins whose pages may read the API across origins (CORS): a comma-separated list
    /// such as https://www.example.com,https://blog.example.com, or * for any. Empty: none.
    #[arg(
        long,
        env = "HITME_CORS_ORIGINS",
        default_value = "",
        value_name = "ORIGIN,...",
        value_parser = Cors::parse
    )]
    pub(crate) cors_origins: Cors,

    /// Query parameters removed from URLs before they are counted, comma-separated; "" keeps
    /// every parameter.
    #[arg(
        long,
        env = "HITME_DROP_QUERY_PARAMS", global = true,
        default_value = crate::http::canonical::UrlRules::DEFAULT_DROPPED,
        value_name = "NAME,..."
    )]
    pub drop_query_params: String,

    /// Count only URLs of these hosts, comma-separated: example.com, or *.example.org for any
    /// subdomain (not the name itself). Another host's hit is refused with 403, so junk URLs
    /// cannot fill Redis. Default: every host.
    #[arg(long, env = "HITME_SITES", default_value = "", value_name = "HOST,...", value_parser = Sites::parse)]
    pub(crate) sites: Sites,

    /// At most N counting requests (POST /hit, /pixel.gif, /badge.svg?count=1) per client in
    /// any DURATION (e.g. 20/5s); more get 429 with Retry-After and RateLimit-* headers, and
    /// count nothing. Per HitMe process. Default: no limit.
    #[arg(long, env = "HITME_RATE_LIMIT", value_name = "N/DURATION", value_parser = Rate::parse)]
    pub(crate) rate_limit: Option<Rate>,

    /// Proxies whose X-Forwarded-For (or Forwarded: for=) names the client, as CIDRs
    /// (127.0.0.1/32,10.0.0.0/8): the client is the right-most address there that is not one
    /// of them. A header from any other peer is ignored.
    #[arg(long, env = "HITME_TRUSTED_PROXIES", default_value = "", value_name = "CIDR,...", value_parser = TrustedProxies::parse)]
    pub(crate) trusted_proxies: TrustedProxies,

    /// Count the pixel, badge and hitme.js loads of known crawlers, link checkers and headless
    /// browsers too (by User-Agent); by default they are answered but not counted.
    #[arg(long, env = "HITME_COUNT_BOTS")]
    pub count_bots: bool,

    /// Make the statistics private: /hits, /top, /series, /sites, /visitors, GET /hit,
    /// /badge.svg and /metrics need Authorization: Bearer TOKEN (the dashboard asks for it once).
    #[arg(
        long,
        env = "HITME_READ_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true,
        conflicts_with = "read_token_file"
    )]
    read_token: Option<String>,

    /// As --read-token, the token read from a file (its first line), kept out of the
    /// process list.
    #[arg(long, env = "HITME_READ_TOKEN_FILE", value_name = "PATH")]
    read_token_file: Option<std::path::PathBuf>,

    /// Count visits beside hits: a visit is a hit from a visitor (a keyed hash of the site,
    /// the client's address and User-Agent, with a salt of the day) who has not hit that URL
    /// within --visit-window. Read with metric=visits; GET /hit adds "visits".
    #[arg(long, env = "HITME_VISITS")]
    pub visits: bool,

    /// With --visits: how long after a visitor's last hit on a URL its next one is a visit
    /// again (at most 24h).
    #[arg(long, env = "HITME_VISIT_WINDOW", default_value = "8h", value_name = "DURATION", value_parser = parse_visit_window)]
    pub visit_window: Duration,

    /// Keep each bucket's top URLs, its total and its number of URLs at write time, so that
    /// /top pages within --ranking-size and the dashboard cost O(page) at any number of
    /// URLs. Costs Redis work per hit. In cluster mode every HitMe of a key prefix must use it
    /// alike (recorded in <prefix>:config).
    #[arg(long, env = "HITME_RANKINGS", global = true)]
    pub rankings: bool,

    /// With --rankings: how many top URLs each bucket keeps (1 to 100000).
    #[arg(long, env = "HITME_RANKING_SIZE", global = true, default_value_t = 1000, value_name = "K", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub ranking_size: u32,

    /// With --rankings: how long after a bucket ends its kept ranking stays (the counts stay
    /// as --retention-* says; /top of an older bucket reads the bucket). 0: as long as the
    /// bucket. Keeps the rankings of past minutes from costing more than their counts.
    #[arg(long, env = "HITME_RANKING_RETENTION", global = true, default_value = "1h", value_name = "DURATION", value_parser = parse_keep)]
    pub ranking_retention: Keep,

    /// Count where hits come from: the page URL's utm_source, source or ref tag, else the
    /// referrer's host (POST /hit's referrer field, which hitme.js sends), else direct. A
    /// referrer on the spam list is answered and not counted. Read with GET /sources. Costs
    /// Redis work per hit.
    #[arg(long, env = "HITME_SOURCES")]
    pub sources: bool,

    /// With --sources: how many sources each bucket keeps per URL and per site (1 to
    /// 100000); the rest count under (other).
    #[arg(long, env = "HITME_MAX_SOURCES", default_value_t = 1000, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_sources: u32,

    /// With --sources: more referrer spam hosts, one per line (# starts a comment), besides
    /// the list HitMe ships (matomo-org/referrer-spam-list). A host matches its subdomains.
    #[arg(long, env = "HITME_REFERRER_SPAM_FILE", value_name = "PATH")]
    pub referrer_spam_file: Option<std::path::PathBuf>,

    /// Enable the admin routes, which need Authorization: Bearer TOKEN: DELETE /hit?url=URL
    /// (remove a URL from every bucket) and GET /export (every count, as hitme export writes
    /// it). Without it they do not exist.
    #[arg(
        long,
        env = "HITME_ADMIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true,
        conflicts_with = "admin_token_file"
    )]
    admin_token: Option<String>,

    /// As --admin-token, the token read from a file (its first line).
    #[arg(long, env = "HITME_ADMIN_TOKEN_FILE", value_name = "PATH")]
    admin_token_file: Option<std::path::PathBuf>,

    /// With a read token: leave GET /hit and /badge.svg open, so that pages can show their own
    /// counts.
    #[arg(long, env = "HITME_PUBLIC_COUNTS")]
    pub public_counts: bool,

    /// Keep minute buckets this long after the minute ends (e.g. 48h, 7d; 0 = forever).
    #[arg(long, env = "HITME_RETENTION_MINUTE", global = true, default_value = "48h", value_parser = parse_keep)]
    pub retention_minute: Keep,

    /// Keep hour buckets this long after the hour ends.
    #[arg(long, env = "HITME_RETENTION_HOUR", global = true, default_value = "60d", value_parser = parse_keep)]
    pub retention_hour: Keep,

    /// Keep day buckets this long after the day ends.
    #[arg(long, env = "HITME_RETENTION_DAY", global = true, default_value = "3y", value_parser = parse_keep)]
    pub retention_day: Keep,

    /// Keep week buckets this long after the week ends.
    #[arg(long, env = "HITME_RETENTION_WEEK", global = true, default_value = "0", value_parser = parse_keep)]
    pub retention_week: Keep,

    /// Keep month buckets this long after the month ends.
    #[arg(long, env = "HITME_RETENTION_MONTH", global = true, default_value = "0", value_parser = parse_keep)]
    pub retention_month: Keep,
}

/// What HitMe does besides serving.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum Tool {
    /// Write every count under --key-prefix (hits and visits), as CSV (metric,period,start,url,count,
    /// after a line naming the format's version) or JSON lines, to standard output or --output.
    Export {
        #[arg(long, value_enum, default_value_t = Format::Csv)]
        format: Format,
        /// Only buckets that start at or after this time (ms since the epoch); all-time
        /// totals are always written.
        #[arg(long, value_name = "TS")]
        since: Option<i64>,
        /// Write to this file instead of standard output.
        #[arg(long, short, value_name = "PATH")]
        output: Option<std::path::PathBuf>,
    },
    /// Write the counts of an export (or of url,count lines: all-time totals) into Redis.
    /// The whole file is checked first, and nothing is written if a line is wrong.
    Import {
        /// The file, or - for standard input.
        file: std::path::PathBuf,
        /// Add each count to the one in Redis (to merge two HitMes) instead of setting it
        /// (so that importing twice changes nothing).
        #[arg(long)]
        add: bool,
    },
    /// With --rankings: rebuild every bucket's kept ranking of hits from a chunked read of
    /// its counts, while HitMe goes on counting (after hits written by a HitMe without
    /// --rankings, or to be sure). /top rebuilds a bucket by itself when it finds its
    /// ranking untrustworthy; this does every bucket at once.
    RebuildRankings,
}

/// How long to keep a bucket after it ends; `None` keeps it forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keep(pub Option<Duration>);

/// One worker per CPU HitMe may use, at least 2 (so that one busy reading a large ranking
/// never leaves hits unanswered).
pub fn default_threads() -> u32 {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 1024) as u32)
}

/// The forms `--redis-url` takes, for its errors.
const REDIS_URL_FORMS: &str = "give redis://HOST:PORT (e.g. redis://127.0.0.1:6379), redis://:PASSWORD@HOST:PORT/DB, rediss://... for TLS, or redis+unix:///PATH/TO/redis.sock";

/// A Redis URL, checked here so that a mistake is told in words (the Redis client says only
/// that it did not parse).
fn parse_redis_url(s: &str) -> Result<String, String> {
    let url =
        url::Url::parse(s).map_err(|e| format!("it is not a URL ({e}); {REDIS_URL_FORMS}"))?;
    match url.scheme() {
        "redis" | "rediss" => {
            if url.host_str().is_none_or(str::is_empty) {
                return Err(format!("it names no host; {REDIS_URL_FORMS}"));
            }
            let db = url.path().trim_start_matches('/');
            if !db.is_empty() && db.parse::<u32>().is_err() {
                return Err(format!(
                    "its path /{db} is not a database number; {REDIS_URL_FORMS}"
                ));
            }
        }
        "redis+unix" | "unix" => {
            if url.path().is_empty() || url.path() == "/" {
                return Err(format!("it names no socket path; {REDIS_URL_FORMS}"));
            }
        }
        other => {
            return Err(format!(
                "{other}:// is not a Redis scheme; {REDIS_URL_FORMS}"
            ))
        }
    }
    Ok(s.to_string())
}

/// The shortest `--read-token` or `--admin-token` accepted: a token is all that guards what
/// it opens, so it must be too long to guess.
const MIN_TOKEN_CHARS: usize = 16;

fn parse_visit_window(s: &str) -> Result<Duration, String> {
    let window =
        humantime::parse_duration(s).map_err(|e| format!("{e}; use e.g. 30m, 8h or 24h"))?;
    if window < Duration::from_secs(1) || window > crate::visits::MAX_WINDOW {
        return Err(format!(
            "{s} is not from 1s to 24h: a visitor is named by a salt of one day, so a window cannot outlast it"
        ));
    }
    Ok(window)
}

fn parse_keep(s: &str) -> Result<Keep, String> {
    if s.trim() == "0" {
        return Ok(Keep(None));
    }
    let keep = humantime::parse_duration(s)
        .map_err(|e| format!("{e}; use e.g. 48h, 60d, 3y, or 0 to keep forever"))?;
    if keep < Duration::from_secs(1) {
        return Err("must be at least 1s, or 0 to keep forever".into());
    }
    Ok(Keep(Some(keep)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WeekStartArg {
    Monday,
    Sunday,
}

impl From<WeekStartArg> for WeekStart {
    fn from(arg: WeekStartArg) -> Self {
        match arg {
            WeekStartArg::Monday => WeekStart::Monday,
            WeekStartArg::Sunday => WeekStart::Sunday,
        }
    }
}

/// `--time-zone`: `None` for UTC, which needs no zone rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeZoneArg(pub Option<Zone>);

fn parse_time_zone(s: &str) -> Result<TimeZoneArg, String> {
    match s {
        "UTC" => Ok(TimeZoneArg(None)),
        name => Zone::named(name).map(|zone| TimeZoneArg(Some(zone))),
    }
}

fn parse_prefix(s: &str) -> Result<String, String> {
    if s.is_empty()
        || s.len() > 100
        || s.bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err("must be 1 to 100 characters without spaces".into());
    }
    Ok(s.to_string())
}

impl Config {
    /// Parses `args` (the program name first) and refuses flags that do not apply to the
    /// chosen backend. Those of the standalone backend are refused by clap itself
    /// (`conflicts_with`); `--wait-replicas` has a default, so only its being given says
    /// anything, which clap's `requires` does not check once a conflicting flag is present.
    pub fn try_parse_checked<I, T>(args: I) -> Result<Config, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let mut command = Config::command();
        let matches = command.try_get_matches_from_mut(args)?;
        let config = Config::from_arg_matches(&matches)?;
        // Whether a flag was given (on the command line or in its variable), not defaulted.
        let given = |id: &str| {
            matches!(
                matches.value_source(id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        };
        if given("wait_replicas") && config.redis_cluster.is_none() {
            return Err(command.error(
                ErrorKind::MissingRequiredArgument,
                "--wait-replicas applies only with --redis-cluster; remove it, or name the cluster with --redis-cluster",
            ));
        }
        if config.public_counts && config.read_token.is_none() && config.read_token_file.is_none() {
            return Err(command.error(
                ErrorKind::MissingRequiredArgument,
                "--public-counts applies only with --read-token or --read-token-file: without a token every count is public already",
            ));
        }
        if given("sites") && config.sites.all() {
            return Err(command.error(
                ErrorKind::InvalidValue,
                "--sites names no host; give the hosts to count (example.com,*.example.org), or leave it out to count every host",
            ));
        }
        if given("visit_window") && !config.visits {
            return Err(command.error(
                ErrorKind::MissingRequiredArgument,
                "--visit-window applies only with --visits; add --visits, or remove --visit-window",
            ));
        }
        for (id, flag) in [
            ("ranking_size", "--ranking-size"),
            ("ranking_retention", "--ranking-retention"),
        ] {
            if given(id) && !config.rankings {
                return Err(command.error(
                    ErrorKind::MissingRequiredArgument,
                    format!(
                        "{flag} applies only with --rankings; add --rankings, or remove {flag}"
                    ),
                ));
            }
        }
        for (id, flag) in [
            ("max_sources", "--max-sources"),
            ("referrer_spam_file", "--referrer-spam-file"),
        ] {
            if given(id) && !config.sources {
                return Err(command.error(
                    ErrorKind::MissingRequiredArgument,
                    format!("{flag} applies only with --sources; add --sources, or remove {flag}"),
                ));
            }
        }
        if config
            .read_token
            .as_deref()
            .is_some_and(|t| t.trim().is_empty())
        {
            return Err(command.error(
                ErrorKind::InvalidValue,
                "--read-token is empty; give a long random token, e.g. from `openssl rand -hex 32`",
            ));
        }
        Ok(config)
    }

    /// The read token, from `--read-token` or the first line of `--read-token-file`.
    pub(crate) fn read_token(&self) -> Result<Option<String>, String> {
        token(&self.read_token, &self.read_token_file, "--read-token")
    }

    /// The admin token, from `--admin-token` or the first line of `--admin-token-file`.
    pub(crate) fn admin_token(&self) -> Result<Option<String>, String> {
        token(&self.admin_token, &self.admin_token_file, "--admin-token")
    }

    /// The read timeout of client connections, if any.
    pub(crate) fn client_timeout(&self) -> Option<Duration> {
        (self.client_timeout_ms > 0).then(|| Duration::from_millis(self.client_timeout_ms))
    }

    /// The worker threads: `--threads`, or the default for the backend.
    pub fn threads(&self) -> u32 {
        let cpus = default_threads();
        self.threads.unwrap_or(match self.redis_cluster {
            Some(_) => (cpus * 4).clamp(8, 1024),
            None => cpus,
        })
    }

    pub(crate) fn pool_size(&self) -> u32 {
        self.pool_size.unwrap_or(self.threads() + self.read_threads)
    }

    /// The store to open. Flags of the other backend were refused while parsing.
    pub(crate) fn store_config(&self) -> StoreConfig {
        let backend = match &self.redis_cluster {
            Some(seeds) => Backend::Cluster {
                seeds: seeds.clone(),
                wait_replicas: self.wait_replicas,
            },
            None => Backend::Standalone {
                redis_url: self.redis_url.clone(),
                ca_file: self.redis_ca_file.clone(),
                group_commit: self.group_commit,
            },
        };
        StoreConfig {
            backend,
            pool_size: self.pool_size(),
            timeout: Duration::from_millis(self.redis_timeout_ms),
            prefix: self.key_prefix.clone(),
            calendar: self.calendar(),
            retention: self.retention(),
            visit_window: self.visits.then_some(self.visit_window),
            kept: self.kept(),
            max_sources: self.sources.then_some(self.max_sources as usize),
        }
    }

    /// What `--rankings` keeps, if given.
    pub(crate) fn kept(&self) -> Option<crate::store::KeptConfig> {
        self.rankings.then_some(crate::store::KeptConfig {
            size: self.ranking_size as usize,
            keep: self.ranking_retention.0,
        })
    }

    pub fn calendar(&self) -> Calendar {
        Calendar::in_zone(self.week_start.into(), self.time_zone.0.clone())
    }

    fn retention(&self) -> Retention {
        PerPeriod::from_fn(|period| match period {
            Period::All => None,
            Period::Month => self.retention_month.0,
            Period::Week => self.retention_week.0,
            Period::Day => self.retention_day.0,
            Period::Hour => self.retention_hour.0,
            Period::Minute => self.retention_minute.0,
        })
    }

    /// Where hits go, fit for logs: passwords are hidden.
    pub(crate) fn redis_description(&self) -> String {
        match &self.redis_cluster {
            Some(nodes) => {
                let nodes: Vec<String> = nodes.iter().map(|n| redact(n)).collect();
                format!("cluster {}", nodes.join(","))
            }
            None => redact(&self.redis_url),
        }
    }
}

/// A Redis URL with any password removed; a bare `host:port` is kept.
pub(crate) fn redact(redis_url: &str) -> String {
    if !redis_url.contains("://") && !redis_url.contains('@') {
        return redis_url.to_string();
    }
    match url::Url::parse(redis_url) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("***"));
            }
            url.into()
        }
        Err(_) => "<unparseable redis url>".to_string(),
    }
}

/// A token given as `flag`, or on the first line of the file given as `<flag>-file`.
fn token(
    given: &Option<String>,
    file: &Option<std::path::PathBuf>,
    flag: &str,
) -> Result<Option<String>, String> {
    if let Some(token) = given {
        let token = token.trim();
        if token.is_empty() {
            return Err(format!(
                "{flag} is empty; give a long random token, e.g. from `openssl rand -hex 32`"
            ));
        }
        return long_enough(token, flag).map(Some);
    }
    let Some(path) = file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {flag}-file {} ({e})", path.display()))?;
    match text.lines().next().map(str::trim) {
        Some(token) if !token.is_empty() => long_enough(token, &format!("{flag}-file {}", path.display())).map(Some),
        _ => Err(format!(
            "{flag}-file {} holds no token; write one on its first line, e.g. with `openssl rand -hex 32 > {}`",
            path.display(),
            path.display()
        )),
    }
}

/// `token` if it is at least `MIN_TOKEN_CHARS` long.
fn long_enough(token: &str, given_by: &str) -> Result<String, String> {
    let chars = token.chars().count();
    match chars >= MIN_TOKEN_CHARS {
        true => Ok(token.to_string()),
        false => Err(format!(
            "the token of {given_by} is {chars} characters; use at least {MIN_TOKEN_CHARS}, e.g. from `openssl rand -hex 32`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = Config::try_parse_from(["hitme"]).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080");
        assert_eq!(c.threads(), default_threads());
        assert!(c.threads() >= 2);
        assert_eq!(c.pool_size(), c.threads() + 2);
        assert_eq!(c.key_prefix, "hits");
        assert_eq!(c.week_start, WeekStartArg::Monday);
        let hour = Duration::from_secs(3600);
        let retention: Vec<Option<Duration>> =
            c.store_config().retention.values().copied().collect();
        assert_eq!(
            retention,
            [
                None,
                None,
                None,
                Some(Duration::from_secs(3 * 31_557_600)),
                Some(hour * 24 * 60),
                Some(hour * 48)
            ]
        );
    }

    #[test]
    fn retention_values() {
        assert_eq!(parse_keep("0").unwrap(), Keep(None));
        assert_eq!(
            parse_keep("90m").unwrap(),
            Keep(Some(Duration::from_secs(5400)))
        );
        assert!(parse_keep("soon").is_err());
        assert!(parse_keep("-1h").is_err());
        assert!(parse_keep("10ms").is_err());
    }

    #[test]
    fn flags_override_and_bad_values_are_refused() {
        let c =
            Config::try_parse_from(["hitme", "--threads", "8", "--week-start", "sunday"]).unwrap();
        assert_eq!((c.threads(), c.pool_size()), (8, 10));
        assert_eq!(c.week_start, WeekStartArg::Sunday);
        let cluster =
            Config::try_parse_from(["hitme", "--redis-cluster", "127.0.0.1:7000"]).unwrap();
        assert_eq!(cluster.threads(), (default_threads() * 4).clamp(8, 1024));
        let cluster = Config::try_parse_from([
            "hitme",
            "--redis-cluster",
            "127.0.0.1:7000",
            "--threads",
            "3",
        ])
        .unwrap();
        assert_eq!(cluster.threads(), 3);
        assert!(Config::try_parse_from(["hitme", "--threads", "0"]).is_err());
        assert!(Config::try_parse_from(["hitme", "--key-prefix", "a b"]).is_err());
        assert!(Config::try_parse_from(["hitme", "--bogus"]).is_err());
    }

    #[test]
    fn flags_of_the_other_backend_are_refused() {
        let cluster = ["hitme", "--redis-cluster", "127.0.0.1:7000"];
        for flag in [
            &["--group-commit"][..],
            &["--redis-url", "redis://127.0.0.1:6380"],
            &["--redis-ca-file", "/tmp/ca.pem"],
        ] {
            let args = cluster.iter().chain(flag);
            let err = Config::try_parse_checked(args).unwrap_err().to_string();
            assert!(
                err.contains(flag[0]) && err.contains("--redis-cluster"),
                "{err}"
            );
        }
        for args in [
            &["hitme", "--wait-replicas", "2"][..],
            &[
                "hitme",
                "--redis-url",
                "redis://127.0.0.1:1",
                "--wait-replicas",
                "0",
            ],
        ] {
            let err = Config::try_parse_checked(args).unwrap_err();
            assert_eq!(err.exit_code(), 2);
            let err = err.to_string();
            assert!(
                err.contains("--wait-replicas") && err.contains("--redis-cluster"),
                "{err}"
            );
        }
        // Defaults are no choice: both backends start with them.
        let c = Config::try_parse_checked(cluster).unwrap();
        assert!(matches!(
            c.store_config().backend,
            Backend::Cluster {
                wait_replicas: 1,
                ..
            }
        ));
        let c = Config::try_parse_checked(["hitme", "--group-commit"]).unwrap();
        assert!(matches!(
            c.store_config().backend,
            Backend::Standalone {
                group_commit: true,
                ..
            }
        ));
    }

    fn refusal(args: &[&str]) -> String {
        let mut all = vec!["hitme"];
        all.extend_from_slice(args);
        Config::try_parse_checked(all).unwrap_err().to_string()
    }

    #[test]
    fn mistakes_are_told_in_words_with_what_to_do() {
        let typo = refusal(&["--rate-limt", "3/s"]);
        assert!(
            typo.contains("tip: a similar argument exists: '--rate-limit'"),
            "{typo}"
        );
        for (url, said) in [
            ("junk", "it is not a URL"),
            ("http://127.0.0.1:6379", "http:// is not a Redis scheme"),
            (
                "redis://127.0.0.1:6379/x",
                "its path /x is not a database number",
            ),
            ("redis+unix://", "it names no socket path"),
        ] {
            let err = refusal(&["--redis-url", url]);
            assert!(
                err.contains(said) && err.contains("redis://127.0.0.1:6379"),
                "{url}: {err}"
            );
        }
        for url in [
            "redis://127.0.0.1:6379",
            "rediss://:pw@h:1/2",
            "redis+unix:///run/r.sock",
        ] {
            assert!(
                Config::try_parse_checked(["hitme", "--redis-url", url]).is_ok(),
                "{url}"
            );
        }
        for sites in ["", ",,", " , "] {
            let err = refusal(&["--sites", sites]);
            assert!(err.contains("--sites names no host"), "{sites:?}: {err}");
        }
        let err = refusal(&["--visit-window", "2h"]);
        assert!(
            err.contains("--visit-window applies only with --visits"),
            "{err}"
        );
        assert!(Config::try_parse_checked(["hitme", "--visits", "--visit-window", "2h"]).is_ok());
        let err = refusal(&["--max-sources", "10"]);
        assert!(
            err.contains("--max-sources applies only with --sources"),
            "{err}"
        );
        let err = refusal(&["--referrer-spam-file", "spam.txt"]);
        assert!(
            err.contains("--referrer-spam-file applies only with --sources"),
            "{err}"
        );
        let err = refusal(&["--sources", "--max-sources", "0"]);
        assert!(err.contains("--max-sources"), "{err}");
        assert!(Config::try_parse_checked(["hitme", "--sources", "--max-sources", "10"]).is_ok());
    }

    #[test]
    fn tokens_must_be_too_long_to_guess() {
        let short = Config::try_parse_checked(["hitme", "--read-token", "abc"]).unwrap();
        assert_eq!(
            short.read_token().unwrap_err(),
            "the token of --read-token is 3 characters; use at least 16, e.g. from `openssl rand -hex 32`"
        );
        let long =
            Config::try_parse_checked(["hitme", "--admin-token", "0123456789abcdef"]).unwrap();
        assert_eq!(
            long.admin_token().unwrap().as_deref(),
            Some("0123456789abcdef")
        );
    }

    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(
            redact("redis://:s3cret@127.0.0.1:6380/2"),
            "redis://:***@127.0.0.1:6380/2"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert!(!redact("not a url :s3cret@x").contains("s3cret"));
        assert_eq!(redact("127.0.0.1:7000"), "127.0.0.1:7000");
    }
}
