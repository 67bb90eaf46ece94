//! Logging set-up: JSON lines in production, readable lines in development.
//!
//! Logs go to stdout and nowhere else: collecting, buffering and shipping them is the job of
//! the platform's agent (Docker's log driver, a fluent-bit DaemonSet), which survives our
//! crashes and never blocks us. See docs/LOGGING.md.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// JSON in production, text in development.
    Auto,
    /// One JSON object per line, for log collectors.
    Json,
    /// Readable lines, for a terminal.
    Text,
}

/// Logging settings, shared by every subcommand.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Logging")]
pub struct LogConfig {
    /// Which events to log, as a `tracing` filter: `info`, `debug`, `info,sqlx=debug`, ...
    /// The queue library's own per-job lines are at `oxana=info` (ours carry the same facts).
    #[arg(
        long = "log",
        env = "LABS_LOG",
        default_value = "info,oxana=warn",
        global = true
    )]
    pub filter: String,

    /// Log line format.
    #[arg(long, env = "LABS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto, global = true)]
    pub log_format: LogFormat,
}

/// Installs the global subscriber and a panic hook that logs panics as events.
///
/// Errors only when the filter does not parse; a second call in the same process (tests) is
/// a no-op.
pub fn init(config: &LogConfig, production: bool) -> Result<(), String> {
    let filter = EnvFilter::try_new(&config.filter)
        .map_err(|e| format!("LABS_LOG is not a valid log filter ({e})"))?;
    let json = match config.log_format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => production,
    };
    let registry = tracing_subscriber::registry().with(filter);
    let installed = if json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init()
    } else {
        registry.with(tracing_subscriber::fmt::layer()).try_init()
    };
    if installed.is_ok() {
        install_panic_hook();
    }
    Ok(())
}

/// Panics become one error event, inside the span of the request that panicked (so with its
/// request id), instead of free text on stderr that a log collector cannot parse.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("<non-string panic payload>");
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(
            panic.message = message,
            panic.location = location,
            "panicked"
        );
    }));
}
