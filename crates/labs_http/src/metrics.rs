//! Prometheus metrics: the process-wide recorder, the HTTP middleware that counts and times
//! every request, and `/metrics`, served on its own listener (`LABS_METRICS_BIND`) so that it
//! is never reachable through the public proxy path.
//!
//! Names follow Prometheus conventions (`labs_` prefix, `_total` counters, `_seconds`
//! histograms). Every label has a bounded set of values: the matched route template (never the
//! raw path), a known method or `OTHER`, the status code, a job's type name.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, State};
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use labs_db::Db;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets (seconds) of every `_seconds` histogram: 1 ms to 30 s.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// How often histogram samples are folded into their buckets (see [`install`]).
const UPKEEP_EVERY: Duration = Duration::from_secs(1);

/// Installs the process-wide recorder once and returns its handle (later calls get the same).
///
/// The recorder keeps every histogram sample (one per request) in a queue until an upkeep folds
/// them into the buckets. With `install_recorder` that upkeep is ours to run: left to the
/// scrapes, the queue grew by about 10 MiB per half-million requests between two of them (and
/// without bound with no scraper at all). A thread of its own runs it every [`UPKEEP_EVERY`],
/// so the queue holds at most a second of samples.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), BUCKETS)
                .and_then(PrometheusBuilder::install_recorder)
                // Only fails if another recorder was installed first, which nothing else does.
                .unwrap_or_else(|error| panic!("cannot install the metrics recorder: {error}"));
            let _ = RECORDER_INSTALLED.set(());
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("metrics-upkeep".to_owned())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_EVERY);
                        upkeep.run_upkeep();
                    }
                });
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start the metrics upkeep thread");
            }
            handle
        })
        .clone()
}

/// What became of one webhook delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// Verified and stored with its job.
    Accepted,
    /// Verified, and received before: acknowledged without a second job.
    Duplicate,
    /// Refused (signature missing, wrong or stale; body not an event).
    Rejected,
}

/// Counts one delivery to a webhook receiver of the hooks role:
/// `labs_webhook_events_total{provider, outcome}`. Every receiver counts through this one
/// function, so that the `LabsWebhooksRejected` alert and the dashboard's panel hold for any
/// provider a feature adds (`provider`: the fixed name of the sender, never input).
pub fn webhook_event(provider: &'static str, outcome: WebhookOutcome) {
    let outcome = match outcome {
        WebhookOutcome::Accepted => "accepted",
        WebhookOutcome::Duplicate => "duplicate",
        WebhookOutcome::Rejected => "rejected",
    };
    metrics::counter!("labs_webhook_events_total", "provider" => provider, "outcome" => outcome)
        .increment(1);
}

/// `/metrics`: samples what is read at scrape time (the database pool), then renders.
pub fn router(handle: PrometheusHandle, db: Db) -> Router {
    Router::new()
        .route("/metrics", get(render))
        .with_state((handle, db))
}

async fn render(State((handle, db)): State<(PrometheusHandle, Db)>) -> Response {
    let size = db.size() as f64;
    let idle = db.num_idle() as f64;
    metrics::gauge!("labs_db_pool_connections", "state" => "idle").set(idle);
    metrics::gauge!("labs_db_pool_connections", "state" => "in_use").set((size - idle).max(0.0));
    metrics::gauge!("labs_db_pool_max_connections").set(db.max_connections() as f64);
    handle.run_upkeep();
    let mut response = handle.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// Counts and times one request by method, matched route and status, and tracks how many are
/// in flight: [`RequestMetrics::start`] when it arrives (after routing, so that the route is
/// known), [`RequestMetrics::finish`] with its status. Dropped unfinished (the client went away
/// and the request's future with it), it leaves the in-flight gauge and counts nothing. Used
/// by the request scope in `crate::layers`, outside the panic catcher (so a panic is counted
/// as the 500 it becomes).
pub(crate) struct RequestMetrics {
    /// A clone of the matched path shares its string: no allocation per request.
    route: Option<MatchedPath>,
    method: &'static str,
    started: Instant,
    _in_flight: InFlight,
}

impl RequestMetrics {
    pub(crate) fn start<B>(req: &axum::http::Request<B>) -> Self {
        Self {
            route: req.extensions().get::<MatchedPath>().cloned(),
            method: method_label(req.method()),
            started: Instant::now(),
            _in_flight: InFlight::enter(),
        }
    }

    pub(crate) fn finish(self, status: axum::http::StatusCode) {
        let (requests, duration) = series(
            self.route
                .as_ref()
                .map_or("<unmatched>", MatchedPath::as_str),
            self.method,
            status.as_u16(),
        );
        requests.increment(1);
        duration.record(self.started.elapsed().as_secs_f64());
    }
}

/// The request counter and duration histogram of one (route, method, status).
type Series = (metrics::Counter, metrics::Histogram);

/// Handles registered once per (route, method, status) and reused: building the labels and
/// looking the series up on every request (allocations and hashing) was a visible part of a
/// request's cost. The key set is bounded like the labels are (routes are templates).
fn series(route: &str, method: &'static str, status: u16) -> Series {
    type Table =
        std::sync::RwLock<std::collections::HashMap<String, Vec<((&'static str, u16), Series)>>>;
    static TABLE: std::sync::OnceLock<Table> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(Table::default);
    let find = |entries: &Vec<((&'static str, u16), Series)>| {
        entries
            .iter()
            .find(|(key, _)| *key == (method, status))
            .map(|(_, series)| series.clone())
    };
    if let Some(found) = table
        .read()
        .ok()
        .and_then(|table| table.get(route).and_then(find))
    {
        return found;
    }
    let labels = [
        ("method", method.to_owned()),
        ("route", route.to_owned()),
        ("status", status.to_string()),
    ];
    let created: Series = (
        metrics::counter!("labs_http_requests_total", &labels),
        metrics::histogram!("labs_http_request_duration_seconds", &labels),
    );
    if let Ok(mut table) = table.write() {
        let entries = table.entry(route.to_owned()).or_default();
        if find(entries).is_none() {
            entries.push(((method, status), created.clone()));
        }
    }
    created
}

/// Methods are client-chosen tokens: anything unusual is `OTHER`, so the label stays bounded.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// The in-flight gauge, decremented when the request ends however it ends (a client that
/// disconnects drops the request's future, and this guard with it).
struct InFlight;

impl InFlight {
    fn enter() -> Self {
        in_flight_gauge().increment(1.0);
        Self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        in_flight_gauge().decrement(1.0);
    }
}

/// The in-flight gauge's handle, looked up once the recorder is installed (before that, a
/// handle would be a no-op one for good) instead of twice per request.
fn in_flight_gauge() -> metrics::Gauge {
    static GAUGE: OnceLock<metrics::Gauge> = OnceLock::new();
    if let Some(gauge) = GAUGE.get() {
        return gauge.clone();
    }
    let gauge = metrics::gauge!("labs_http_requests_in_flight");
    if RECORDER_INSTALLED.get().is_some() {
        let _ = GAUGE.set(gauge.clone());
    }
    gauge
}

/// Set once [`install`] has installed the recorder.
static RECORDER_INSTALLED: OnceLock<()> = OnceLock::new();

#[cfg(test)]
mod tests {
    use super::method_label;
    use axum::http::Method;

    #[test]
    fn unusual_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "OTHER");
    }
}
