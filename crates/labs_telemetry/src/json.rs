//! JSON log lines, written by a layer of our own: the same lines as tracing-subscriber's JSON
//! formatter as configured before (`json().flatten_event(true).with_current_span(true)`), for a
//! fraction of the work.
//!
//! One line per event: `timestamp` (RFC 3339, UTC, microseconds), `level`, the event's fields
//! (`message` among them) at the top level, `target`, and `span`: the name and fields of the
//! event's span, when it has one. Values are typed as tracing-subscriber types them: integers,
//! floats (`null` when not finite) and booleans as JSON numbers and booleans, strings as
//! strings, anything formatted with `?` or `%` (errors too) as the string it formats to.
//!
//! Why not tracing-subscriber's formatter: it renders a span's fields to a JSON string when the
//! span opens, re-parses and re-renders that string whenever a field is recorded later (every
//! request records its `trace_id`), and parses it again into a map for every event inside the
//! span; it also builds the timestamp through `fmt::Write` and the line through serde. On
//! `GET /api/ext/echo` that was most of the request's own CPU (docs/PERFORMANCE.md). Here a
//! span's fields are rendered once each and kept rendered; an event writes straight into a
//! reused buffer. The tests below check, on the same events, that both formatters give the
//! same JSON objects.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// The layer: JSON lines to `make_writer`, one `write` call per line.
pub(crate) struct JsonLines<W> {
    make_writer: W,
}

impl<W> JsonLines<W> {
    pub(crate) fn new(make_writer: W) -> Self {
        Self { make_writer }
    }
}

/// A span's fields, rendered once as the JSON members they will be in every line of the span
/// (`"name":value,` each, in the order they were first recorded), in one string: a span costs
/// one buffer, not one per field.
#[derive(Debug)]
struct SpanFields {
    rendered: String,
    /// Where each field's member starts and ends in `rendered`, to replace a value recorded
    /// again (rare: a field set after the span opened is usually `Empty` until then).
    members: Vec<(&'static str, std::ops::Range<usize>)>,
}

impl Default for SpanFields {
    /// Sized for a request's span (five fields, about 200 bytes), so that it is not regrown.
    fn default() -> Self {
        Self {
            rendered: String::with_capacity(256),
            members: Vec::with_capacity(8),
        }
    }
}

impl SpanFields {
    /// Renders field `name` with `render` (which writes the value), replacing an earlier value.
    fn set(&mut self, name: &'static str, render: impl FnOnce(&mut String)) {
        let start = self.rendered.len();
        write_str(&mut self.rendered, name);
        self.rendered.push(':');
        render(&mut self.rendered);
        self.rendered.push(',');
        let end = self.rendered.len();
        if let Some(index) = self.members.iter().position(|(known, _)| *known == name) {
            // Move the new member into the old one's place; the ones after it shift.
            let new = self.rendered.split_off(start);
            let old = self.members[index].1.clone();
            self.rendered.replace_range(old.clone(), &new);
            let shift = new.len() as isize - old.len() as isize;
            self.members[index].1 = old.start..old.start + new.len();
            for (_, range) in &mut self.members[index + 1..] {
                *range = range.start.saturating_add_signed(shift)
                    ..range.end.saturating_add_signed(shift);
            }
        } else {
            self.members.push((name, start..end));
        }
    }
}

/// Records a span's fields into [`SpanFields`], as tracing-subscriber's `JsonFields` does:
/// `log.*` metadata skipped, a raw identifier's `r#` dropped.
struct SpanVisitor<'a>(&'a mut SpanFields);

impl SpanVisitor<'_> {
    fn rendered(&mut self, field: &Field, render: impl FnOnce(&mut String)) {
        let name = field.name();
        if name.starts_with("log.") {
            return;
        }
        let name = name.strip_prefix("r#").unwrap_or(name);
        self.0.set(name, render);
    }
}

impl Visit for SpanVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.rendered(field, |out| write_f64(out, value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.rendered(field, |out| write_integer(out, value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.rendered(field, |out| write_integer(out, value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.rendered(field, |out| {
            out.push_str(if value { "true" } else { "false" });
        });
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.rendered(field, |out| write_str(out, value));
    }
    fn record_bytes(&mut self, field: &Field, value: &[u8]) {
        // As serde_json renders a byte slice: an array of numbers.
        self.rendered(field, |out| {
            out.push('[');
            for (i, byte) in value.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_integer(out, *byte);
            }
            out.push(']');
        });
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.rendered(field, |out| write_debug(out, value));
    }
}

/// Writes an event's fields as `,"name":value` pairs, as tracing-serde does (no renaming).
struct EventVisitor<'a>(&'a mut String);

impl EventVisitor<'_> {
    fn key(&mut self, field: &Field) {
        self.0.push(',');
        write_str(self.0, field.name());
        self.0.push(':');
    }
}

impl Visit for EventVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        write_f64(self.0, value);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        write_integer(self.0, value);
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        write_integer(self.0, value);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        self.0.push_str(if value { "true" } else { "false" });
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        write_str(self.0, value);
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.key(field);
        write_debug(self.0, value);
    }
}

impl<S, W> Layer<S> for JsonLines<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = SpanFields::default();
        attrs.record(&mut SpanVisitor(&mut fields));
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<SpanFields>() {
            values.record(&mut SpanVisitor(fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        thread_local! {
            static LINE: RefCell<String> = RefCell::new(String::with_capacity(512));
        }
        // An event logged while this thread is already writing one (a field's `Debug` that
        // logs) takes a buffer of its own rather than the one in use.
        let write = |line: &mut String| {
            line.clear();
            self.format(event, &ctx, line);
            let meta = event.metadata();
            let _ = self
                .make_writer
                .make_writer_for(meta)
                .write_all(line.as_bytes());
        };
        LINE.with(|cell| match cell.try_borrow_mut() {
            Ok(mut line) => write(&mut line),
            Err(_) => write(&mut String::new()),
        });
    }
}

impl<W> JsonLines<W> {
    fn format<S>(&self, event: &Event<'_>, ctx: &Context<'_, S>, line: &mut String)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        // Events from the `log` crate (bridged by tracing-log) name their real target here.
        let normalized = tracing_log::NormalizeEvent::normalized_metadata(event);
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        line.push_str("{\"timestamp\":\"");
        write_timestamp(line, SystemTime::now());
        line.push_str("\",\"level\":\"");
        line.push_str(level_name(*meta.level()));
        line.push('"');
        event.record(&mut EventVisitor(line));
        line.push_str(",\"target\":");
        write_str(line, meta.target());
        if let Some(span) = ctx.event_span(event) {
            line.push_str(",\"span\":{");
            let extensions = span.extensions();
            if let Some(fields) = extensions.get::<SpanFields>() {
                line.push_str(&fields.rendered);
            }
            line.push_str("\"name\":");
            write_str(line, span.name());
            line.push('}');
        }
        line.push_str("}\n");
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => "INFO",
        Level::WARN => "WARN",
        Level::ERROR => "ERROR",
    }
}

/// A JSON string, escaped as serde_json escapes: `"`, `\\` and control characters.
fn write_str(out: &mut String, value: &str) {
    out.push('"');
    let bytes = value.as_bytes();
    let mut plain = 0;
    while let Some(i) = next_escape(bytes, plain) {
        // Escaped bytes are ASCII, so `i` is a character boundary.
        out.push_str(&value[plain..i]);
        match bytes[i] {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            byte => {
                let _ = write!(out, "\\u{byte:04x}");
            }
        }
        plain = i + 1;
    }
    out.push_str(&value[plain..]);
    out.push('"');
}

/// The index of the first byte at or after `from` that a JSON string must escape.
///
/// Eight bytes at a time while none of them does (most text: messages, ids, paths), one at a
/// time from the word that has one. A byte-at-a-time loop was the line's most expensive part
/// after the allocator (docs/PERFORMANCE.md).
fn next_escape(bytes: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(word) = bytes.get(i..i + 8) {
        let Ok(word) = <[u8; 8]>::try_from(word) else {
            break;
        };
        if word_needs_escape(u64::from_le_bytes(word)) {
            break;
        }
        i += 8;
    }
    let rest = bytes.get(i..)?;
    rest.iter()
        .position(|&byte| needs_escape(byte))
        .map(|at| i + at)
}

/// Whether any byte of `word` needs escaping: one under 0x20, a `"` or a `\\`. The classic
/// bit tricks ("has a byte less than n", valid for n <= 128, and "has a zero byte" on the word
/// XORed with the byte searched for): exact, no false positives.
#[inline]
fn word_needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    let quote = has_zero(word ^ (ONES * u64::from(b'"')));
    let backslash = has_zero(word ^ (ONES * u64::from(b'\\')));
    control | quote | backslash != 0
}

/// The bytes a JSON string must escape. (The bytes of a multi-byte UTF-8 character are all
/// 0x80 or above, so a byte test is a character test.)
#[inline]
fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// What `{:?}` gives, as a JSON string. Formatted straight into the line when it needs no
/// escaping (the usual case: messages, ids, routes), through a scratch string otherwise.
fn write_debug(out: &mut String, value: &dyn std::fmt::Debug) {
    out.push('"');
    let start = out.len();
    let _ = write!(out, "{value:?}");
    if next_escape(&out.as_bytes()[start..], 0).is_some() {
        let formatted = out.split_off(start);
        out.pop();
        write_str(out, &formatted);
    } else {
        out.push('"');
    }
}

/// A float as serde_json writes it, with the formatter serde_json uses (zmij: the shortest
/// form that reads back as the same number), and `null` when it is not finite, as serde_json
/// does.
fn write_f64(out: &mut String, value: f64) {
    if value.is_finite() {
        out.push_str(zmij::Buffer::new().format_finite(value));
    } else {
        out.push_str("null");
    }
}

/// An integer as serde_json writes it, with the formatter serde_json uses (itoa): a tenth of
/// the work of `write!`.
fn write_integer(out: &mut String, value: impl itoa::Integer) {
    out.push_str(itoa::Buffer::new().format(value));
}

/// `2026-11-28T01:08:27.528598Z`: RFC 3339 in UTC with microseconds, as tracing-subscriber's
/// default timer writes it.
fn write_timestamp(out: &mut String, now: SystemTime) {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
    let of_day = seconds % 86_400;
    // Digits placed by hand: `write!` with seven padded numbers cost more than the rest of
    // the line's fixed parts together.
    let mut text = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut value: u64| {
        for i in (at..at + width).rev() {
            text[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year.clamp(0, 9999) as u64);
    put(5, 2, u64::from(month));
    put(8, 2, u64::from(day));
    put(11, 2, of_day / 3600);
    put(14, 2, of_day / 60 % 60);
    put(17, 2, of_day % 60);
    put(20, 6, u64::from(since_epoch.subsec_micros()));
    // ASCII digits and separators.
    out.push_str(std::str::from_utf8(&text).unwrap_or_default());
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, <https://howardhinnant.github.io/date_algorithms.html>).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use proptest::prelude::*;
    use serde_json::Value;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// A writer that keeps what it is given, for both formatters.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Self;
        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    impl Captured {
        fn lines(&self) -> Vec<Value> {
            let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
            assert!(text.ends_with('\n') || text.is_empty(), "{text}");
            text.lines()
                .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
                .collect()
        }
    }

    /// Runs `emit` under both formatters at once and returns (ours, tracing-subscriber's) lines.
    fn both(emit: impl FnOnce()) -> (Vec<Value>, Vec<Value>) {
        let ours = Captured::default();
        let theirs = Captured::default();
        let subscriber = tracing_subscriber::registry()
            .with(JsonLines::new(ours.clone()))
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(theirs.clone()),
            );
        tracing::subscriber::with_default(subscriber, emit);
        (ours.lines(), theirs.lines())
    }

    /// The lines must be the same objects, timestamps aside; ours must be well formed and within
    /// a millisecond of theirs (both are taken for the same event).
    fn assert_same(ours: Vec<Value>, theirs: Vec<Value>) {
        assert_eq!(ours.len(), theirs.len());
        for (mut ours, mut theirs) in ours.into_iter().zip(theirs) {
            let our_time = ours.as_object_mut().unwrap().remove("timestamp").unwrap();
            let their_time = theirs.as_object_mut().unwrap().remove("timestamp").unwrap();
            let parse = |value: &Value| {
                time::OffsetDateTime::parse(
                    value.as_str().unwrap(),
                    &time::format_description::well_known::Rfc3339,
                )
                .unwrap()
            };
            let text = our_time.as_str().unwrap();
            assert_eq!(text.len(), "2026-11-28T01:08:27.528598Z".len(), "{text}");
            assert!(text.ends_with('Z'), "{text}");
            assert!(
                (parse(&our_time) - parse(&their_time)).abs() < time::Duration::milliseconds(50)
            );
            assert_eq!(ours, theirs);
        }
    }

    #[derive(Debug)]
    struct Failure;

    impl std::fmt::Display for Failure {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("it \"broke\"\n badly")
        }
    }

    impl std::error::Error for Failure {}

    #[test]
    fn lines_are_the_objects_tracing_subscriber_writes() {
        let (ours, theirs) = both(|| {
            tracing::info!("outside any span");
            let request = tracing::info_span!(
                "request",
                request_id = "abc-123",
                trace_id = tracing::field::Empty,
                method = %"GET",
                route = "/ext/echo",
                path = "/api/ext/echo"
            );
            request.record("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736");
            let _inside = request.enter();
            tracing::info!(status = 200_u16, duration_ms = 0.31, "request answered");
            tracing::warn!(
                error = &Failure as &(dyn std::error::Error + 'static),
                big = u128::MAX,
                negative = -5_i64,
                flag = true,
                list = ?vec!["a", "b\"c"],
                zero = 0.0_f64,
                whole = 3.0_f64,
                huge = 1e300_f64,
                tiny = 1e-300_f64,
                not_a_number = f64::NAN,
                infinite = f64::INFINITY,
                "a \"quoted\"\tmessage with\u{1}control\u{7f} and ünïcödé 👋"
            );
            let job = tracing::info_span!("job", job.name = "send_email", job.attempt = 2_u32);
            let _in_job = job.enter();
            tracing::error!(
                r#type = "raw",
                "nested: the innermost span is the one shown"
            );
            job.record("job.attempt", 3_u32);
            job.record("job.name", "a longer name, recorded again");
            job.record("job.attempt", 4_u32);
            tracing::debug!(parent: &request, "an explicit parent wins over the current span");
            tracing::info!("after a field was recorded again");
        });
        assert_eq!(ours.len(), 6);
        assert_eq!(
            ours[1]["span"]["trace_id"],
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(ours[5]["span"]["job.attempt"], 4);
        assert_eq!(ours[5]["span"]["job.name"], "a longer name, recorded again");
        assert_same(ours, theirs);
    }

    #[test]
    fn the_word_at_a_time_scan_finds_every_byte_that_needs_escaping() {
        // Every byte value, at every position of a string longer than two words, among bytes
        // next to the boundaries (0x1f/0x20, 0x21/0x22/0x23, 0x5b/0x5c/0x5d, 0x7f/0x80).
        let filler = [b' ', b'!', b'#', b'[', b']', 0x7f, 0xc3, b'a'];
        for byte in 0..=u8::MAX {
            for at in 0..19 {
                let mut bytes: Vec<u8> = (0..19).map(|i| filler[i % filler.len()]).collect();
                bytes[at] = byte;
                let expected = bytes.iter().position(|&b| needs_escape(b));
                assert_eq!(next_escape(&bytes, 0), expected, "byte {byte:#x} at {at}");
                for from in 0..=bytes.len() {
                    let expected = bytes[from..]
                        .iter()
                        .position(|&b| needs_escape(b))
                        .map(|i| from + i);
                    assert_eq!(next_escape(&bytes, from), expected, "{byte:#x} {at} {from}");
                }
            }
        }
        assert_eq!(next_escape(b"", 0), None);
        assert_eq!(next_escape(b"ab", 5), None);
    }

    #[test]
    fn days_become_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_790), (2026, 12, 3));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        let mut out = String::new();
        write_timestamp(
            &mut out,
            UNIX_EPOCH + std::time::Duration::from_micros(1_796_283_336_528_598),
        );
        assert_eq!(out, "2026-12-03T07:35:36.528598Z");
    }

    proptest! {
        #[test]
        fn any_text_gives_the_same_objects(
            message in any::<String>(),
            value in any::<String>(),
            span_value in any::<String>(),
            number in any::<f64>(),
            count in any::<i64>(),
        ) {
            let (ours, theirs) = both(|| {
                let span = tracing::info_span!("request", field = %span_value, later = tracing::field::Empty);
                span.record("later", value.as_str());
                let _inside = span.enter();
                tracing::info!(value = value.as_str(), debug = ?value, number, count, "{message}");
            });
            assert_same(ours, theirs);
        }
    }
}
