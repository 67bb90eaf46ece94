//! Typed request helpers: a request through the router in process (no socket), read whole.

use axum::body::Body;
use axum::http::Request;
use labs_http::HttpApp;
use labs_testkit::{Answer, send};
use serde_json::Value;

use crate::TestApp;

/// `method path` through `app` with a JSON `body` (if any) and `headers`.
pub async fn call(
    app: &HttpApp,
    method: &str,
    path: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let body = match body {
        Some(body) => {
            request = request.header("content-type", "application/json");
            Body::from(body.to_string())
        }
        None => Body::empty(),
    };
    send(app, request.body(body).expect("a valid request")).await
}

impl TestApp {
    /// `method path` with a JSON `body` (if any) and `headers`.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        call(self.app(), method, path, body, headers).await
    }

    /// `request` as it is (a form, raw bytes, odd headers).
    pub async fn send(&self, request: Request<Body>) -> Answer {
        send(self.app(), request).await
    }

    /// `GET path`, anonymously.
    pub async fn get(&self, path: &str) -> Answer {
        self.call("GET", path, None, &[]).await
    }

    /// `GET path` with the access token `token`.
    pub async fn get_as(&self, path: &str, token: &str) -> Answer {
        let bearer = format!("Bearer {token}");
        self.call("GET", path, None, &[("authorization", &bearer)])
            .await
    }

    /// `POST path` with the JSON `body`, anonymously.
    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.call("POST", path, Some(body), &[]).await
    }

    /// `method path` with the access token `token` and a JSON `body` (if any).
    pub async fn call_as(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Answer {
        let bearer = format!("Bearer {token}");
        self.call(method, path, body, &[("authorization", &bearer)])
            .await
    }

    /// Logs in with a password; the token response (its status asserted).
    pub async fn login(&self, email: &str, password: &str) -> Value {
        let answer = self
            .post(
                "/api/auth/token",
                serde_json::json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(
            answer.status,
            axum::http::StatusCode::OK,
            "login: {}",
            answer.text()
        );
        answer.json()
    }
}
