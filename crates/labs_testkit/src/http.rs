//! Requests through a router (or any service answering as one) in process, and their answers
//! read whole.

/// A response read whole, for assertions.
#[derive(Debug)]
pub struct Answer {
    pub status: axum::http::StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// A header's value (panics when it is missing).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .expect("a visible-ASCII header")
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `request` through `app` (in process, no socket) and reads the whole response.
pub async fn send<S>(app: &S, request: axum::http::Request<axum::body::Body>) -> Answer
where
    S: tower::Service<
            axum::http::Request<axum::body::Body>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone,
{
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let response = app
        .clone()
        .oneshot(request)
        .await
        .expect("the router is infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a readable body")
        .to_bytes()
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

/// `GET uri` through `app`.
pub async fn get(app: &axum::Router, uri: &str) -> Answer {
    let request = axum::http::Request::get(uri)
        .body(axum::body::Body::empty())
        .expect("a valid request");
    send(app, request).await
}
