//! The request id: the header's name, the extension that carries it, and the id of the request
//! a task is serving (error bodies quote it). The middleware that sets it is in `layers`.

use std::future::Future;

use axum::http::HeaderName;

/// The request-id header, as proxies and our responses spell it.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served, in request extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

tokio::task_local! {
    static CURRENT_REQUEST_ID: String;
}

/// The id of the request this task is serving, if any: error bodies quote it.
pub fn current_request_id() -> Option<String> {
    CURRENT_REQUEST_ID.try_with(Clone::clone).ok()
}

/// Runs `serving` as the request `id`.
pub(crate) async fn within<F: Future>(id: String, serving: F) -> F::Output {
    CURRENT_REQUEST_ID.scope(id, serving).await
}

/// An id from outside ends up in logs and headers: accept only short, plain tokens.
pub(crate) fn is_acceptable(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'+' | b'=' | b'/')
        })
}

#[cfg(test)]
mod tests {
    use super::is_acceptable;

    #[test]
    fn only_plain_short_request_ids_are_kept() {
        assert!(is_acceptable("0193a5b2-6a9e-7c3d-8f21-4b5e6d7c8a90"));
        assert!(is_acceptable("Root=1-67891233-abcdef012345678912345678"));
        assert!(!is_acceptable(""));
        assert!(!is_acceptable("has space"));
        assert!(!is_acceptable("line\nbreak"));
        assert!(!is_acceptable(&"a".repeat(129)));
    }
}
