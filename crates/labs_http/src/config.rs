//! Settings of the HTTP listener and its middleware.

use std::net::SocketAddr;
use std::time::Duration;

/// How this process serves HTTP.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "HTTP")]
pub struct HttpConfig {
    /// Address to listen on. Containers set `0.0.0.0:8080`.
    #[arg(long, env = "LABS_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// Address of the Prometheus metrics listener (`/metrics`), separate from the API so that
    /// the public proxy never exposes it. Containers set `0.0.0.0:9090`.
    #[arg(long, env = "LABS_METRICS_BIND", default_value = "127.0.0.1:9090")]
    pub metrics_bind: SocketAddr,

    /// Path prefix the reverse proxy publishes the API under. Requests are answered both with
    /// and without it, so it works whether the proxy strips the prefix or forwards it; the
    /// OpenAPI `servers` entry and the docs UI use it. `/` for none.
    #[arg(long, env = "LABS_ROOT_PATH", default_value = "/api", value_parser = parse_root_path)]
    pub root_path: String,

    /// Longest time a request may take, body included, before it is answered 503.
    #[arg(long, env = "LABS_REQUEST_TIMEOUT", default_value = "15s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,

    /// Largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, env = "LABS_BODY_LIMIT", default_value_t = 1024 * 1024)]
    pub body_limit: usize,

    /// Origins allowed to call the API from a browser (CORS), comma-separated, e.g.
    /// `https://app.example.com`. Empty: no cross-origin access. `*`: any origin, without
    /// credentials.
    #[arg(long, env = "LABS_CORS_ORIGINS", value_delimiter = ',', num_args = 0.., value_parser = parse_cors_origin)]
    pub cors_origins: Vec<String>,

    /// After SIGTERM or SIGINT: how long in-flight requests (and, in a worker, running jobs)
    /// may take to finish before they are cut off. Keep it under the orchestrator's grace period.
    #[arg(long, env = "LABS_SHUTDOWN_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,

    /// How long a client may take to send a request's headers before it is disconnected
    /// (slow clients, slowloris).
    #[arg(long, env = "LABS_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,

    /// Deadline for each dependency check of the readiness endpoint.
    #[arg(long, env = "LABS_READY_TIMEOUT", default_value = "1s", value_parser = humantime::parse_duration)]
    pub ready_timeout: Duration,

    /// Serve the interactive API docs (Swagger UI) at `/docs`. `false`: `/docs` answers 404;
    /// `/openapi.json` stays, since API clients and code generators need it.
    #[arg(long, env = "LABS_DOCS", default_value_t = true, action = clap::ArgAction::Set)]
    pub docs: bool,

    /// `max-age` of the `Strict-Transport-Security` header sent in production (browsers then
    /// refuse plain HTTP to this host for that long). `0s`: no HSTS header.
    #[arg(long, env = "LABS_HSTS_MAX_AGE", default_value = "365d", value_parser = humantime::parse_duration)]
    pub hsts_max_age: Duration,

    /// Add `includeSubDomains` to the HSTS header: every subdomain of this host must then
    /// serve HTTPS too. Turn off when a subdomain still serves plain HTTP.
    #[arg(long, env = "LABS_HSTS_INCLUDE_SUBDOMAINS", default_value_t = true, action = clap::ArgAction::Set)]
    pub hsts_include_subdomains: bool,

    /// Whether this process runs in production: set by the binary from `LABS_ENV`, not a
    /// setting of its own. HSTS is sent only in production, so that a developer's browser
    /// does not learn to refuse plain HTTP to `localhost`.
    #[arg(skip)]
    pub production: bool,
}

/// Normalises a root path to `""` (none) or `/segment[/segment…]` without a trailing slash.
pub fn parse_root_path(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim().trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    if !trimmed.starts_with('/') {
        return Err(format!("the root path must start with `/`, got `{raw}`"));
    }
    let valid = trimmed
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.'));
    if !valid || trimmed.contains("//") {
        return Err(format!(
            "the root path may only hold letters, digits, `-`, `_`, `.` and single `/`, got `{raw}`"
        ));
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::parse_root_path;

    #[test]
    fn root_paths_are_normalised_and_bad_ones_rejected() {
        assert_eq!(parse_root_path("/api").unwrap(), "/api");
        assert_eq!(parse_root_path("/api/").unwrap(), "/api");
        assert_eq!(parse_root_path("/").unwrap(), "");
        assert_eq!(parse_root_path("").unwrap(), "");
        assert_eq!(parse_root_path("/v1/api").unwrap(), "/v1/api");
        assert!(parse_root_path("api").is_err());
        assert!(parse_root_path("/a//b").is_err());
        assert!(parse_root_path("/a?b").is_err());
    }
}

/// Checks one configured CORS origin: `scheme://host[:port]`, or `*`.
pub fn parse_cors_origin(raw: &str) -> Result<String, String> {
    let origin = raw.trim();
    if origin == "*" || origin.is_empty() {
        return Ok(origin.to_owned());
    }
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or_else(|| format!("a CORS origin starts with http:// or https://, got `{raw}`"))?;
    let well_formed = !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if !well_formed {
        return Err(format!(
            "a CORS origin is `scheme://host[:port]` with no path, got `{raw}`"
        ));
    }
    Ok(origin.to_owned())
}

#[cfg(test)]
mod cors_tests {
    use super::parse_cors_origin;

    #[test]
    fn cors_origins_must_be_bare_origins() {
        assert_eq!(
            parse_cors_origin("https://app.example.com").unwrap(),
            "https://app.example.com"
        );
        assert_eq!(
            parse_cors_origin("http://localhost:5173").unwrap(),
            "http://localhost:5173"
        );
        assert_eq!(parse_cors_origin("*").unwrap(), "*");
        assert!(parse_cors_origin("app.example.com").is_err());
        assert!(parse_cors_origin("https://app.example.com/path").is_err());
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::parse_cors_origin;
    use super::parse_root_path;

    proptest! {
        /// Any setting: accepted in normal form or refused with a message, never a panic.
        #[test]
        fn root_paths_are_total_and_idempotent(raw in ".{0,60}") {
            if let Ok(path) = parse_root_path(&raw) {
                prop_assert_eq!(parse_root_path(&path), Ok(path.clone()));
                prop_assert!(path.is_empty() || (path.starts_with('/') && !path.ends_with('/')));
            }
        }

        #[test]
        fn cors_origins_never_panic(raw in ".{0,80}") {
            let _ = parse_cors_origin(&raw);
        }
    }
}
