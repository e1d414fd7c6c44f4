use std::process::ExitCode;

use hitme::start::{self, RedisDown};

/// tiny_http logs accept errors itself, including the expected one at shutdown; HitMe logs
/// the ones that matter.
const DEFAULT_LOG_FILTER: &str = "info,tiny_http=off";

/// A tool (`export`, `import`) reports its own progress and its one error; the store's
/// warnings, meant for a server's log, would only say it twice.
const TOOL_LOG_FILTER: &str = "error,tiny_http=off";

fn main() -> ExitCode {
    let config = hitme::Config::try_parse_checked(std::env::args_os()).unwrap_or_else(|e| e.exit());
    let filter = match config.tool {
        Some(_) => TOOL_LOG_FILTER,
        None => DEFAULT_LOG_FILTER,
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(filter)).init();
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
