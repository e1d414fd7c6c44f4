use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let config = hitme::Config::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .init();
    match hitme::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
