//! `labs`: one binary, several roles. See `labs --help` and the README.

use std::process::ExitCode;

use clap::Parser;
use labs::cli::Cli;
use labs::settings;

#[tokio::main]
async fn main() -> ExitCode {
    settings::load_dotenv();
    let cli = Cli::parse();
    let telemetry = match labs_telemetry::logs::init(&cli.log, cli.env.is_production()) {
        Ok(telemetry) => telemetry,
        Err(message) => return fail(&message),
    };
    let outcome = labs::commands::run(cli, settings::shutdown_on_signal()).await;
    telemetry.shutdown();
    match outcome {
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
