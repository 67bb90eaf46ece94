#![doc = include_str!("../README.md")]

mod context;
mod job;
pub mod jobs;
pub mod outbox;
mod periodic;
mod queue;
mod registry;
mod relay;
mod runtime;

pub use context::Context;
pub use job::{Handler, Job, JobError, backoff};
pub use periodic::Periodic;
pub use queue::{DeadJob, JobQueue, JobsConfig, JobsError, QueueDepth, QueueStats};
pub use registry::Registry;
pub use relay::{Relay, RelayError};
pub use runtime::{Runtime, RuntimeConfig, supervise};
