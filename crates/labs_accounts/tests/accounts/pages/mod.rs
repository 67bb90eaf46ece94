//! The pages the emailed links open (`labs_accounts::pages`), in process on a fresh database:
//! the links the API writes point at them, a GET shows a form and spends nothing, a POST
//! verifies or resets through the API's own protocol, every bad link or form is a 4xx page,
//! a cross-site post is refused, and the headers hold. The same flows in a real browser, from
//! a real worker's email:
//! `process::browser::emailed_links_open_pages_that_verify_and_reset_in_a_browser`. This file
//! holds the helpers; the flows are in `flows`, the refusals and headers in `defences`.

use axum::http::StatusCode;
use labs_testapp::TestApp;
use labs_testkit::Answer;
use serde_json::{Value, json};
use sqlx::PgPool;

mod defences;
mod flows;

const PASSWORD: &str = "correct horse battery staple";
const NEW_PASSWORD: &str = "a new password, long enough";

/// What a browser sends with a form of the page itself: `Sec-Fetch-Site: same-origin`, and
/// `Origin: null` (the pages' `no-referrer` policy makes a form's origin opaque).
const SAME_ORIGIN: &[(&str, &str)] = &[("sec-fetch-site", "same-origin"), ("origin", "null")];

/// The API with budgets above what a test makes.
fn roomy_app(db: PgPool) -> TestApp {
    TestApp::builder(db).roomy().spawn()
}

/// POSTs `fields` form-encoded, as a browser submits a page's form.
async fn submit(
    app: &TestApp,
    path: &str,
    fields: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Answer {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    raw_post(
        app,
        path,
        "application/x-www-form-urlencoded",
        body,
        headers,
    )
    .await
}

async fn raw_post(
    app: &TestApp,
    path: &str,
    content_type: &str,
    body: String,
    headers: &[(&str, &str)],
) -> Answer {
    let mut request = axum::http::Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", content_type);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    app.send(request.body(axum::body::Body::from(body)).unwrap())
        .await
}

async fn login(app: &TestApp, email: &str, password: &str) -> Answer {
    app.call(
        "POST",
        "/api/auth/token",
        Some(json!({"email": email, "password": password})),
        &[],
    )
    .await
}

/// The link of the newest email queued to `to` whose link opens `page` (from the outbox: no
/// worker runs in these tests).
async fn emailed_link(db: &PgPool, to: &str, page: &str) -> String {
    let payloads: Vec<Value> = sqlx::query_scalar(
        "SELECT payload FROM job_outbox WHERE job_name = 'send_email' ORDER BY id DESC",
    )
    .fetch_all(db)
    .await
    .unwrap();
    let marker = format!("/{page}?token=");
    payloads
        .iter()
        .filter(|payload| payload.to_string().contains(&format!("\"{to}\"")))
        .find_map(|payload| {
            let text = payload.to_string();
            let start = text.find("http")?;
            let link: String = text[start..].chars().take_while(|c| *c != '"').collect();
            link.contains(&marker).then_some(link)
        })
        .unwrap_or_else(|| panic!("no {page} link queued to {to}: {payloads:?}"))
}

/// The path and query of a link (the in-process router takes no origin).
fn path_of(link: &str) -> &str {
    let after_scheme = link.split_once("://").unwrap().1;
    &after_scheme[after_scheme.find('/').unwrap()..]
}

fn token_of(link: &str) -> &str {
    link.split_once("token=").unwrap().1
}

fn assert_page(answer: &Answer, status: StatusCode, says: &str) {
    assert_eq!(answer.status, status, "{}", answer.text());
    assert_eq!(answer.header("content-type"), "text/html; charset=utf-8");
    assert!(
        answer.text().contains(says),
        "{says:?} not in {}",
        answer.text()
    );
}
