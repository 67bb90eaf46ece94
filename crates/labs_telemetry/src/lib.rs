//! Logs and traces, for every role and command.
//!
//! - [`logs`]: the `tracing` subscriber: JSON lines (or readable text) on stdout, a panic hook,
//!   and, when `LABS_OTLP_ENDPOINT` is set, an OpenTelemetry layer that exports spans.
//! - [`trace`]: W3C trace context: read from `traceparent`, made when absent, recorded as the
//!   `trace_id` of request and job spans (so every log line carries it), and carried from the
//!   request that enqueues a job to the worker that runs it.
//!
//! A crate of its own because both the HTTP crates and the job runtime need it, and neither may
//! depend on the other.

mod json;
pub mod logs;
pub mod trace;
mod writer;

pub use logs::{LogConfig, LogFormat, Telemetry};
pub use trace::TraceContext;
