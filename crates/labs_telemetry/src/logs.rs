//! Logging set-up: JSON lines in production, readable lines in development; spans exported
//! over OTLP when an endpoint is configured.
//!
//! Logs go to stdout and nowhere else: collecting, buffering and shipping them is the job of
//! the platform's agent (Docker's log driver, a fluent-bit DaemonSet), which survives our
//! crashes and never blocks us. See docs/LOGGING.md.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
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

    /// OTLP/HTTP endpoint to export traces to, e.g. `http://otel-collector:4318/v1/traces`.
    /// Unset: no export (trace ids are still in every log line).
    #[arg(long, env = "LABS_OTLP_ENDPOINT", global = true)]
    pub otlp_endpoint: Option<String>,

    /// The `service.name` of exported spans.
    #[arg(
        long,
        env = "LABS_OTLP_SERVICE_NAME",
        default_value = "labs",
        global = true
    )]
    pub otlp_service_name: String,
}

/// Keeps the log writer and the span exporter alive; [`Telemetry::shutdown`] flushes what is
/// buffered.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    writer: Option<crate::writer::WriterGuard>,
}

impl Telemetry {
    /// Flushes and stops the exporter (if any) and the log writer. Call it before the process
    /// exits.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            // The batch processor's thread does a blocking export: keep it off the runtime.
            let _ = std::thread::spawn(move || provider.shutdown()).join();
        }
        // Dropping the guard writes the lines still queued.
        drop(self.writer);
    }
}

fn exporter(config: &LogConfig) -> Result<Option<SdkTracerProvider>, String> {
    let Some(endpoint) = &config.otlp_endpoint else {
        return Ok(None);
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint.clone())
        .build()
        .map_err(|e| format!("LABS_OTLP_ENDPOINT cannot be used ({e})"))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(config.otlp_service_name.clone())
        .build();
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build(),
    ))
}

/// Bytes of log lines the writer may have pending before a logging thread waits for it (about
/// 2,500 request lines; what that bounds the writer's memory to: `crate::writer`).
const LOG_PENDING_LIMIT: usize = 1024 * 1024;

/// Installs the global subscriber (with span export when configured) and a panic hook that
/// logs panics as events.
///
/// Errors when the filter does not parse or the OTLP endpoint cannot be used; a second call in
/// the same process (tests) is a no-op.
pub fn init(config: &LogConfig, production: bool) -> Result<Telemetry, String> {
    let filter = EnvFilter::try_new(&config.filter)
        .map_err(|e| format!("LABS_LOG is not a valid log filter ({e})"))?;
    let json = match config.log_format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => production,
    };
    let provider = exporter(config)?;
    let otel = provider
        .as_ref()
        .map(|provider| tracing_opentelemetry::layer().with_tracer(provider.tracer("labs")));
    // A dedicated writer thread, so that no request waits on a `write(2)`: one `write(2)` per
    // batch of lines, never a line held back while idle, not lossy, and bounded (a writer that
    // falls behind makes loggers wait). See `crate::writer`. Stdout as it is: its line
    // buffering writes a batch that ends with a newline in one call.
    let (stdout, writer) = crate::writer::spawn(std::io::stdout(), LOG_PENDING_LIMIT)
        .map_err(|e| format!("cannot start the log writer thread ({e})"))?;
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let installed = if json {
        // Our own JSON layer, same lines as `fmt::layer().json().flatten_event(true)
        // .with_current_span(true)`, for less work per line (see `crate::json`).
        registry
            .with(crate::json::JsonLines::new(stdout))
            .try_init()
    } else {
        registry
            .with(tracing_subscriber::fmt::layer().with_writer(stdout))
            .try_init()
    };
    if installed.is_ok() {
        install_panic_hook();
        if provider.is_some() {
            crate::trace::set_exporting();
        }
    }
    Ok(Telemetry {
        provider,
        writer: Some(writer),
    })
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
