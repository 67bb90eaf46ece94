//! Every subcommand and setting of `labs`. Each flag also reads the environment variable
//! shown in `--help`; the doc comments here are that help.

use clap::{Args, Parser, Subcommand, ValueEnum};
use labs_db::{PgConfig, RedisConfig};
use labs_http::HttpConfig;
use labs_jobs::JobsConfig;
use labs_telemetry::LogConfig;
use labs_worker::email::MailConfig;

/// labs: a production-grade API server. One binary, several roles.
#[derive(Debug, Parser)]
#[command(name = "labs", version, propagate_version = true)]
pub struct Cli {
    /// Deployment environment. `development`: local defaults for every URL, `.env` is read,
    /// readable logs, migrations on start. `production`: every secret must be set explicitly
    /// (the process refuses to start otherwise), JSON logs.
    #[arg(long, env = "LABS_ENV", value_enum, default_value_t = Environment::Development, global = true)]
    pub env: Environment,

    #[command(flatten)]
    pub log: LogConfig,

    #[command(subcommand)]
    pub command: Command,
}

/// Where the process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Environment {
    Development,
    Production,
}

impl Environment {
    pub fn is_production(self) -> bool {
        self == Self::Production
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one or more roles in this process (all of them by default).
    Serve(Box<ServeArgs>),
    /// Apply pending database migrations, then exit.
    Migrate(MigrateArgs),
    /// Ask a running server whether it is ready: exit 0 if it is, 1 if not. For container
    /// health checks in images without curl.
    Healthcheck(HealthcheckArgs),
    /// Print the OpenAPI document (JSON) to stdout.
    Openapi(OpenapiArgs),
    /// Inspect and operate the job queue.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Email operations.
    #[command(subcommand)]
    Email(EmailCommand),
    /// Account operations.
    #[command(subcommand)]
    User(UserCommand),
    /// Key material for the credential settings.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Make `--email` an administrator: creates the account (verified) if it does not exist,
    /// with the password in `LABS_ADMIN_PASSWORD`, or a generated one printed once; promotes
    /// it if it does.
    CreateAdmin {
        /// The administrator's email address.
        #[arg(long)]
        email: String,
        /// The new account's password (ignored when the account exists). Unset: generated.
        #[arg(long = "password", env = "LABS_ADMIN_PASSWORD", hide_env_values = true)]
        password: Option<secrecy::SecretString>,
        #[command(flatten)]
        pg: PgConfig,
        #[command(flatten)]
        keys: labs_auth::KeyConfig,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print a new key, ready for its setting (see docs/SECURITY.md for rotation).
    Generate {
        #[arg(value_enum)]
        kind: KeyKind,
        /// For `totp`: the key id (0-255) to prefix, one above the current key's.
        #[arg(long, default_value_t = 1)]
        id: u8,
    },
}

/// What key to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyKind {
    /// An Ed25519 signing key for LABS_JWT_SIGNING_KEY (and its public key, for
    /// LABS_JWT_RETIRED_KEYS at the next rotation).
    Jwt,
    /// A shared secret for LABS_JWT_SIGNING_KEY with LABS_JWT_ALGORITHM=hs256.
    Hs256,
    /// An entry for LABS_TOTP_ENCRYPTION_KEYS.
    Totp,
    /// A key for LABS_CODE_HASH_KEY.
    CodeHash,
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Print where the jobs are (queued, in flight, scheduled, retrying, dead, in the outbox) as JSON.
    Stats(QueueArgs),
    /// Print the most recent dead jobs (failed their last attempt) as JSON.
    Dead {
        /// How many to show.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[command(flatten)]
        queue: QueueArgs,
    },
    /// Put every dead job back on its queue, attempts reset.
    RetryDead(QueueArgs),
}

#[derive(Debug, Subcommand)]
pub enum EmailCommand {
    /// Queue a test message to `--to`, sent by a worker like any other email.
    Test {
        /// Recipient.
        #[arg(long)]
        to: String,
        /// Who asks (shown in the message).
        #[arg(long, default_value = "an operator")]
        requested_by: String,
        #[command(flatten)]
        queue: QueueArgs,
    },
}

/// What a command needs to reach the queue (and the outbox).
#[derive(Debug, Args)]
pub struct QueueArgs {
    #[command(flatten)]
    pub redis: RedisConfig,

    #[command(flatten)]
    pub jobs: JobsConfig,

    #[command(flatten)]
    pub pg: PgConfig,
}

/// A part of the service that a process can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub enum Role {
    /// The public JSON API, its docs and health endpoints.
    Api,
    /// The features' webhook receivers (`/hooks/…`), deployed and scaled on their own.
    Hooks,
    /// Background jobs from the Redis queue.
    Worker,
    /// Periodic jobs (run exactly one).
    Scheduler,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self
            .to_possible_value()
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default();
        f.write_str(&name)
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Roles to run, comma-separated (`api,hooks`). Default: every role, the monolith a
    /// newcomer runs first; production runs one deployment per role.
    #[arg(long = "role", env = "LABS_ROLES", value_enum, value_delimiter = ',')]
    pub roles: Vec<Role>,

    /// Apply pending migrations before serving. Default: on in development, off in
    /// production, where `labs migrate` runs as its own step before a release.
    #[arg(long, env = "LABS_MIGRATE_ON_START", value_parser = clap::builder::BoolishValueParser::new())]
    pub migrate_on_start: Option<bool>,

    #[command(flatten)]
    pub http: HttpConfig,

    #[command(flatten)]
    pub pg: PgConfig,

    #[command(flatten)]
    pub redis: RedisConfig,

    #[command(flatten)]
    pub jobs: JobsConfig,

    #[command(flatten)]
    pub mail: MailConfig,

    #[command(flatten)]
    pub purge: labs_accounts::PurgeConfig,

    #[command(flatten)]
    pub auth: labs_accounts::AuthConfig,

    /// The settings of every feature in the service's list (labs_features).
    #[command(flatten)]
    pub features: labs_features::Settings,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub pg: PgConfig,
}

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// URL to ask (plain `http://` only). Default: readiness on the address `LABS_BIND` names.
    #[arg(long, env = "LABS_HEALTHCHECK_URL")]
    pub url: Option<String>,

    /// The address the server listens on, used to build the default URL.
    #[arg(long, env = "LABS_BIND", default_value = "127.0.0.1:8080")]
    pub bind: std::net::SocketAddr,

    /// How long to wait for the answer.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct OpenapiArgs {
    /// Root path to publish the document under (its `servers` entry).
    #[arg(long, env = "LABS_ROOT_PATH", default_value = "/api", value_parser = labs_http::config::parse_root_path)]
    pub root_path: String,
}
