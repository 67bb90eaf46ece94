//! W3C trace context (<https://www.w3.org/TR/trace-context/>) and its propagation.
//!
//! Every request and every job runs in a span with a `trace_id` field, so every log line of it
//! carries the trace id. The id comes from the caller's `traceparent` header when it sent a
//! valid one (the proxy, another service), otherwise it is new. While a request or job runs,
//! [`current`] gives its context, which the job queue and the outbox store with each job they
//! enqueue; the worker then runs the job in the same trace, as a child of the enqueuing span.
//!
//! With OTLP export on, the spans are OpenTelemetry spans too: [`adopt`] makes them children
//! of the remote parent, and the trace id logged is OpenTelemetry's. With export off, nothing
//! here costs more than formatting a few ids.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Set once OTLP export is installed.
static EXPORTING: AtomicBool = AtomicBool::new(false);

pub(crate) fn set_exporting() {
    EXPORTING.store(true, Ordering::Relaxed);
}

/// Whether spans are exported (LABS_OTLP_ENDPOINT is set).
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// A position in a trace: the trace, the span, and whether it is sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub sampled: bool,
}

impl TraceContext {
    /// A new trace (a root span).
    pub fn new_root() -> Self {
        let random = uuid::Uuid::new_v4().into_bytes();
        Self {
            trace_id: random,
            span_id: new_span_id(),
            sampled: true,
        }
    }

    /// A new span in this trace.
    pub fn child(self) -> Self {
        Self {
            span_id: new_span_id(),
            ..self
        }
    }

    /// Parses a `traceparent` header: `00-<32 hex>-<16 hex>-<2 hex>`. Invalid values (wrong
    /// length, upper case, all-zero ids, version `ff`) are ignored, as the spec says.
    pub fn parse(header: &str) -> Option<Self> {
        let header = header.trim();
        let mut parts = header.split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let lower_hex = |text: &str, len: usize| {
            text.len() == len
                && text
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if !lower_hex(version, 2)
            || version == "ff"
            || !lower_hex(trace, 32)
            || !lower_hex(span, 16)
            || !lower_hex(flags, 2)
        {
            return None;
        }
        // Version 00 has exactly four fields; later versions may append more.
        if version == "00" && parts.next().is_some() {
            return None;
        }
        let trace_id: [u8; 16] = decode_hex(trace)?.try_into().ok()?;
        let span_id: [u8; 8] = decode_hex(span)?.try_into().ok()?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        let flags = decode_hex(flags)?[0];
        Some(Self {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }

    /// The `traceparent` header value.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            hex(&self.trace_id),
            hex(&self.span_id),
            u8::from(self.sampled)
        )
    }

    /// The trace id in lower-case hex, as logged.
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    fn otel_parent(self) -> opentelemetry::Context {
        let flags = if self.sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        let remote = SpanContext::new(
            TraceId::from_bytes(self.trace_id),
            SpanId::from_bytes(self.span_id),
            flags,
            true,
            TraceState::default(),
        );
        opentelemetry::Context::new().with_remote_span_context(remote)
    }
}

fn new_span_id() -> [u8; 8] {
    let random = uuid::Uuid::new_v4().into_bytes();
    let mut id = [0; 8];
    id.copy_from_slice(&random[..8]);
    id
}

fn hex(bytes: &[u8]) -> String {
    Hex(bytes).to_string()
}

/// Bytes as lower-case hex, written where they are displayed.
struct Hex<'a>(&'a [u8]);

impl std::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut text = [0_u8; 64];
        for chunk in self.0.chunks(32) {
            f.write_str(hex_into(chunk, &mut text))?;
        }
        Ok(())
    }
}

/// `bytes` as lower-case hex in `text`, which must hold two bytes per byte (the rest is
/// ignored).
fn hex_into<'t>(bytes: &[u8], text: &'t mut [u8]) -> &'t str {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let text = &mut text[..2 * bytes.len()];
    for (pair, &byte) in text.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
    // Hex digits are ASCII.
    std::str::from_utf8(text).unwrap_or_default()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Places `span` in the trace of `parent` (or a new trace), records its `trace_id` field (the
/// span must declare `trace_id = tracing::field::Empty`), and returns the span's own context,
/// for [`within`].
pub fn adopt(span: &tracing::Span, parent: Option<TraceContext>) -> TraceContext {
    let mut own = parent.map_or_else(TraceContext::new_root, TraceContext::child);
    if exporting() {
        if let Some(parent) = parent {
            // Fails only when the span is disabled or already started: then it stays a root.
            let _ = span.set_parent(parent.otel_parent());
        }
        let context = span.context();
        let exported = context.span().span_context().clone();
        if exported.is_valid() {
            own = TraceContext {
                trace_id: exported.trace_id().to_bytes(),
                span_id: exported.span_id().to_bytes(),
                sampled: exported.is_sampled(),
            };
        }
    }
    // Recorded as text from a buffer on the stack: no string made per request, and a `&str`
    // is copied as it is where a `Display` value would go through the formatting machinery.
    let mut text = [0_u8; 32];
    span.record("trace_id", hex_into(&own.trace_id, &mut text));
    own
}

tokio::task_local! {
    static CURRENT: TraceContext;
}

/// Runs `future` with `context` as the current trace context.
pub async fn within<F: Future>(context: TraceContext, future: F) -> F::Output {
    CURRENT.scope(context, future).await
}

/// The trace context of the request or job this task is running, if any.
pub fn current() -> Option<TraceContext> {
    CURRENT.try_with(|context| *context).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_rejects_what_the_spec_rejects() {
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let context = TraceContext::parse(header).unwrap();
        assert_eq!(context.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(context.sampled);
        assert_eq!(context.traceparent(), header);
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad:?}");
        }
        let future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more";
        assert!(!TraceContext::parse(future).unwrap().sampled);
    }

    #[test]
    fn children_keep_the_trace_and_change_the_span() {
        let root = TraceContext::new_root();
        let child = root.child();
        assert_eq!(child.trace_id, root.trace_id);
        assert_ne!(child.span_id, root.span_id);
        assert_ne!(TraceContext::new_root().trace_id, root.trace_id);
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn arbitrary_headers_never_panic(header in ".{0,120}") {
            let _ = TraceContext::parse(&header);
        }

        #[test]
        fn every_context_round_trips(trace_id in any::<[u8; 16]>(), span_id in any::<[u8; 8]>(), sampled in any::<bool>()) {
            prop_assume!(trace_id != [0; 16] && span_id != [0; 8]);
            let context = TraceContext { trace_id, span_id, sampled };
            prop_assert_eq!(TraceContext::parse(&context.traceparent()), Some(context));
        }
    }
}
