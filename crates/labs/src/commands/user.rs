//! `user`: creates an administrator, or promotes the account that has the address.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use secrecy::ExposeSecret;

use super::stores::{database_url, pool};
use crate::cli::{Environment, UserCommand};

pub(super) async fn user(env: Environment, command: UserCommand) -> anyhow::Result<ExitCode> {
    let UserCommand::CreateAdmin {
        email,
        password,
        pg,
        keys,
    } = command;
    let email = labs_domain::Email::parse(&email).context("--email is not a valid address")?;
    let db = pool(&database_url(env, &pg)?, &pg)?;
    let mut stdout = std::io::stdout().lock();
    let promote = labs_accounts::db::users::UserChanges {
        is_admin: Some(true),
        is_active: Some(true),
        ..Default::default()
    };
    if let Some(found) =
        labs_accounts::db::users::credentials(&db, Some(email.as_str()), None).await?
    {
        // The operator vouches for the address, not for whoever signed it up: an account
        // nobody verified loses what its signup set (a pre-hijacked account must not become
        // the attacker's admin account).
        let mut tx = db.begin().await?;
        let claimed = labs_accounts::db::users::claim(&mut tx, found.user.id, false).await?;
        labs_accounts::db::users::update(&mut *tx, found.user.id, &promote).await?;
        tx.commit().await?;
        writeln!(stdout, "{email} is now an administrator")?;
        if claimed.is_some_and(|claimed| claimed.first) {
            writeln!(
                stdout,
                "it had never been verified, so the password and sessions its signup set were \
                 discarded: choose a password with a password reset"
            )?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (password, generated) = match password {
        Some(password) => (password.expose_secret().to_owned(), false),
        None => (
            labs_auth::token::OpaqueToken::generate()
                .as_str()
                .to_owned(),
            true,
        ),
    };
    let password = labs_domain::Password::new(password).context("LABS_ADMIN_PASSWORD")?;
    if env.is_production() {
        crate::production::refuse(&crate::production::key_setting_problems(&keys))?;
    }
    // Only the hasher's parameters matter here; no other key is needed to create an account.
    let hasher = labs_auth::PasswordHasher::new(
        keys.argon2_memory_kib,
        keys.argon2_iterations,
        keys.argon2_parallelism,
    )?;
    let hash = hasher.hash(password.expose())?;
    let new = labs_accounts::db::users::NewUser {
        id: labs_domain::UserId::generate(),
        email: email.as_str(),
        full_name: None,
        password_hash: Some(&hash),
        is_admin: true,
        verified: true,
    };
    labs_accounts::db::users::insert(&db, &new)
        .await?
        .context("the account was created concurrently; run the command again")?;
    writeln!(stdout, "created administrator {email}")?;
    if generated {
        writeln!(stdout, "password (shown once): {}", password.expose())?;
    }
    Ok(ExitCode::SUCCESS)
}
