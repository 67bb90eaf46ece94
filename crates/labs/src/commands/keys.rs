//! `keys`: prints new key material, for the operator to store as a secret.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::{KeyKind, KeysCommand};

pub(super) fn keys(command: &KeysCommand) -> anyhow::Result<ExitCode> {
    let KeysCommand::Generate { kind, id } = command;
    let mut stdout = std::io::stdout().lock();
    match kind {
        KeyKind::Jwt => {
            let (private, public) = labs_auth::jwt::generate_ed25519_pem();
            writeln!(stdout, "# LABS_JWT_SIGNING_KEY\n{private}")?;
            writeln!(
                stdout,
                "# its public key, for LABS_JWT_RETIRED_KEYS after the next rotation\n{public}"
            )?;
        }
        KeyKind::Hs256 | KeyKind::CodeHash => {
            writeln!(stdout, "{}", labs_auth::config::generate_symmetric_key())?;
        }
        KeyKind::Totp => {
            writeln!(
                stdout,
                "{id}:{}",
                labs_auth::config::generate_symmetric_key()
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
