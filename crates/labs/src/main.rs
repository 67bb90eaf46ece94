//! `labs`: one binary, several roles. See `labs --help` and the README.

use std::process::ExitCode;

use clap::Parser;
use labs::cli::Cli;
use labs::settings;

#[tokio::main]
async fn main() -> ExitCode {
    settings::load_dotenv();
    let cli = Cli::parse();
    if let Err(message) = labs_http::telemetry::init(&cli.log, cli.env.is_production()) {
        return fail(&message);
    }
    match labs::commands::run(cli, settings::shutdown_on_signal()).await {
        Ok(code) => code,
        Err(error) => fail(&format!("{error:#}")),
    }
}

fn fail(message: &str) -> ExitCode {
    // A fatal error is for the operator reading the terminal or the pod's last words.
    #[expect(
        clippy::print_stderr,
        reason = "the process is about to exit; stderr is where that is said"
    )]
    {
        eprintln!("error: {message}");
    }
    ExitCode::FAILURE
}
