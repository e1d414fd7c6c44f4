//! From flags to built parts. Everything HitMe shares between requests (the [`App`]) is made
//! here, once, from a [`Config`]; the server's socket too. `main`, the tools and the tests all
//! start this way, and a start that cannot go on ends in a [`StartError`] saying what to
//! change. Adding a flag touches `config.rs` (the flag), [`app`] here (what it builds) and the
//! module that uses it.

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::http::access::{AdminAccess, ReadAccess};
use crate::http::bots::Bots;
use crate::http::canonical::UrlRules;
use crate::http::rate_limit::RateLimiter;
use crate::http::{self, App};
use crate::metrics::Metrics;
use crate::serve::acceptor::Acceptor;
use crate::serve::{self, listener, Threads};
use crate::sources::Sources;
use crate::store::settings::{self, Refusal};
use crate::store::{self, HitStore};
use crate::top::Rankings;
use crate::visits::Visits;

/// Why HitMe could not start (or, serving, could not go on), in words that say what to change.
#[derive(Debug)]
pub enum StartError {
    /// The listening address cannot be used (`--listen`).
    Listen(String),
    /// Redis cannot be used as configured (`--redis-url`, `--redis-cluster`, its CA file),
    /// or, for a tool, does not answer.
    Redis(String),
    /// The calendar recorded under `--key-prefix` is not this HitMe's.
    Calendar(String),
    /// A file a flag names cannot be read (`--read-token-file`, `--admin-token-file`,
    /// `--referrer-spam-file`).
    File(String),
    /// The system refused a thread or the signal handler.
    System(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Listen(m)
            | StartError::Redis(m)
            | StartError::Calendar(m)
            | StartError::File(m)
            | StartError::System(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for StartError {}

/// What to do when Redis does not answer at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisDown {
    /// Start anyway (the server answers 503 meanwhile) and check the calendar once Redis
    /// answers, stopping HitMe then on a mismatch.
    CheckLater,
    /// Fail now: a tool has nothing to do without Redis.
    Fail,
}

/// Builds what every worker shares from `config`: the store (its calendar checked against the
/// one recorded in Redis), the rankings, the metrics and the request policies.
pub fn app(config: &Config, redis_down: RedisDown) -> Result<App, StartError> {
    let metrics = Metrics::new();
    let opened =
        store::open(&config.store_config(), metrics.store_counters()).map_err(StartError::Redis)?;
    let store: Arc<dyn HitStore> = opened.store.into();
    check_calendar(&store, config, redis_down)?;
    Ok(App {
        store,
        rankings: Rankings::new(),
        pool: opened.pool,
        calendar: config.calendar(),
        url_rules: UrlRules::dropping(&config.drop_query_params),
        cors: config.cors_origins.clone(),
        metrics,
        keep_alive: http::keep_alive_header(config.client_timeout()),
        sites: config.sites.clone(),
        proxies: config.trusted_proxies.clone(),
        limiter: config.rate_limit.map(RateLimiter::new),
        bots: Bots::new(config.count_bots),
        access: ReadAccess::new(
            config.read_token().map_err(StartError::File)?,
            config.public_counts,
        ),
        visits: config.visits.then(Visits::default),
        admin: AdminAccess::new(config.admin_token().map_err(StartError::File)?),
        kept_rankings: config.kept(),
        sources: match config.sources {
            true => {
                let sources =
                    Sources::new(config.referrer_spam_file.as_deref()).map_err(StartError::File)?;
                log::info!(
                    "counting sources; {} referrer spam hosts are not counted",
                    sources.spam_hosts()
                );
                Some(sources)
            }
            false => None,
        },
    })
}

/// The server's socket (`--listen`), with the open-file limit raised for many clients.
pub fn acceptor(config: &Config) -> Result<Arc<Acceptor>, StartError> {
    match listener::raise_open_file_limit() {
        Ok(limit) => log::debug!("open-file limit: {limit}"),
        Err(e) => {
            log::warn!("could not raise the open-file limit ({e}); many clients may exhaust it")
        }
    }
    let socket = listener::bind(&config.listen, config.reuse_port).map_err(StartError::Listen)?;
    let addr = socket
        .local_addr()
        .map_err(|e| StartError::Listen(e.to_string()))?;
    if !addr.ip().is_loopback() && config.sites.all() {
        log::warn!(
            "listening on {addr}, beyond this machine, and counting every host's URLs: anyone can fill Redis with junk; name your sites with --sites (see the README, \"Running HitMe on the internet\")"
        );
    }
    let acceptor = Acceptor::new(socket, config.client_timeout()).map_err(StartError::Listen)?;
    Ok(Arc::new(acceptor))
}

/// The threads `config` asks for.
pub fn threads(config: &Config) -> Threads {
    Threads {
        workers: config.threads() as usize,
        reads: config.read_threads as usize,
        read_queue: Duration::from_millis(config.read_queue_ms),
    }
}

/// Runs HitMe as `config` says until SIGINT or SIGTERM (then returns `Ok` once in-flight
/// requests are answered) or until it cannot go on.
pub fn run(config: &Config) -> Result<(), StartError> {
    let app = Arc::new(app(config, RedisDown::CheckLater)?);
    let acceptor = acceptor(config)?;
    stop_on_signals(&acceptor)?;
    let addr = acceptor
        .local_addr()
        .map_err(|e| StartError::Listen(e.to_string()))?;
    log::info!(
        "hitme listening on http://{} (threads {}, read threads {}, redis pool {}, redis {})",
        addr,
        config.threads(),
        config.read_threads,
        config.pool_size(),
        config.redis_description(),
    );
    serve::run(app, acceptor, threads(config))
        .map_err(|e| StartError::System(format!("cannot start a thread: {e}")))?;
    log::info!("stopped");
    Ok(())
}

/// Stops `acceptor` (and so the server) on SIGINT or SIGTERM.
fn stop_on_signals(acceptor: &Arc<Acceptor>) -> Result<(), StartError> {
    let acceptor = acceptor.clone();
    ctrlc::set_handler(move || {
        // A Ctrl-C under scripts/run comes twice: from the terminal and from the script.
        if !acceptor.is_stopping() {
            log::info!("stopping: no new connections; finishing requests in flight");
        }
        acceptor.stop();
    })
    .map_err(|e| StartError::System(format!("cannot install the SIGINT/SIGTERM handler: {e}")))
}

/// How often the recorded settings are asked for again while Redis does not answer.
const SETTINGS_RETRY: Duration = Duration::from_millis(500);

/// Checks this HitMe's calendar (and in cluster mode whether it keeps rankings) against the
/// one recorded under its key prefix (recording it on a first start): a mismatch stops HitMe
/// before it counts anything.
fn check_calendar(
    store: &Arc<dyn HitStore>,
    config: &Config,
    redis_down: RedisDown,
) -> Result<(), StartError> {
    let calendar = config.calendar();
    let mut settings = vec![
        ("time_zone", calendar.zone_name().to_string()),
        ("week_start", calendar.week_start.name().to_string()),
    ];
    // In cluster mode rankings are kept in shards a hit writes after its counts: a HitMe
    // that kept none would leave them short, unseen (a standalone Redis shows it by the
    // bucket's number of URLs). An export writes nothing, so it neither records nor needs it.
    let writes = !matches!(config.tool, Some(crate::config::Tool::Export { .. }));
    if config.redis_cluster.is_some() && writes {
        let kept = if config.rankings { "on" } else { "off" };
        settings.push(("rankings", kept.to_string()));
    }
    let prefix = config.key_prefix.clone();
    let check = {
        let store = store.clone();
        move || {
            let settings: Vec<(&str, &str)> =
                settings.iter().map(|(n, v)| (*n, v.as_str())).collect();
            settings::check(&prefix, &settings, |s| store.claim_settings(s))
        }
    };
    match check() {
        Ok(()) => Ok(()),
        Err(Refusal::Mismatch(message)) => Err(StartError::Calendar(message)),
        Err(Refusal::Unavailable(e)) if redis_down == RedisDown::Fail => {
            Err(StartError::Redis(format!(
                "cannot reach Redis at {}: {}",
                config.redis_description(),
                e.message()
            )))
        }
        Err(Refusal::Unavailable(e)) => {
            log::warn!(
                "cannot check the calendar recorded under --key-prefix {} yet ({}); checking again once Redis answers",
                config.key_prefix,
                e.message()
            );
            std::thread::Builder::new()
                .name("hitme-settings".into())
                .spawn(move || loop {
                    std::thread::sleep(SETTINGS_RETRY);
                    match check() {
                        Ok(()) => return,
                        Err(Refusal::Unavailable(_)) => continue,
                        Err(Refusal::Mismatch(message)) => {
                            log::error!("{message}");
                            std::process::exit(2);
                        }
                    }
                })
                .map(drop)
                .map_err(|e| StartError::System(format!("cannot start a thread: {e}")))
        }
    }
}
