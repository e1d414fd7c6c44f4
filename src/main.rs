use std::process::ExitCode;

/// tiny_http logs accept errors itself, including the expected one at shutdown; HitMe logs
/// the ones that matter.
const DEFAULT_LOG_FILTER: &str = "info,tiny_http=off";

fn main() -> ExitCode {
    let config = hitme::Config::try_parse_checked(std::env::args_os()).unwrap_or_else(|e| e.exit());
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(DEFAULT_LOG_FILTER))
        .init();
    if let Some(tool) = &config.tool {
        return match hitme::run_tool(&config, tool) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hitme: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match hitme::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
