use std::process::ExitCode;

use hitme::start::{self, RedisDown};

/// tiny_http logs accept errors itself, including the expected one at shutdown; HitMe logs
/// the ones that matter.
const DEFAULT_LOG_FILTER: &str = "info,tiny_http=off";

fn main() -> ExitCode {
    let config = hitme::Config::try_parse_checked(std::env::args_os()).unwrap_or_else(|e| e.exit());
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(DEFAULT_LOG_FILTER))
        .init();
    if let Some(tool) = &config.tool {
        let ran = start::app(&config, RedisDown::Fail)
            .map_err(|e| e.to_string())
            .and_then(|app| hitme::transfer::run(tool, &app));
        return match ran {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hitme: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match start::run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
