//! `openapi`: prints the OpenAPI document.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::OpenapiArgs;

pub(super) fn openapi(args: &OpenapiArgs) -> anyhow::Result<ExitCode> {
    let document = labs_api::openapi(&args.root_path).to_pretty_json()?;
    writeln!(std::io::stdout().lock(), "{document}")?;
    Ok(ExitCode::SUCCESS)
}
