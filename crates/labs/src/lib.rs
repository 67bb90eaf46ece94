//! The `labs` binary as a library, so that tests drive exactly what `main` runs.
//!
//! [`cli`] declares every subcommand and setting (each flag also reads an environment
//! variable; `labs --help` lists them), [`settings`] turns them into checked values (and
//! refuses development secrets in production), [`production`] refuses the settings production
//! must not run with (weak costs, insecure cookies, proxies that trust everyone), [`app`]
//! assembles the HTTP application for the roles asked for, and [`commands`] runs each
//! subcommand.

pub mod app;
pub mod cli;
pub mod commands;
pub mod production;
pub mod settings;
