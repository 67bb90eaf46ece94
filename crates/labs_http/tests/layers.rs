//! The middleware stack and the extractors, driven through a router of test routes wrapped
//! in exactly the layers production uses. No database: nothing here touches one.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use axum::routing::{get, post};
use labs_http::extract::{Json, Path, Query};
use labs_http::{HttpConfig, Problem, layers};
use labs_testkit::Answer;
use serde::Deserialize;

fn config() -> HttpConfig {
    HttpConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        metrics_bind: "127.0.0.1:0".parse().unwrap(),
        root_path: "/api".to_owned(),
        request_timeout: Duration::from_millis(300),
        body_limit: 1024,
        cors_origins: vec!["https://app.example.com".to_owned()],
        shutdown_timeout: Duration::from_secs(1),
        header_read_timeout: Duration::from_secs(10),
        ready_timeout: Duration::from_secs(1),
        docs: true,
        hsts_max_age: Duration::from_secs(365 * 24 * 3600),
        hsts_include_subdomains: true,
        production: false,
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateThing {
    name: String,
    colour: Colour,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
enum Colour {
    Red,
    Blue,
}

#[derive(Debug, Deserialize)]
struct Paging {
    #[expect(dead_code, reason = "only its parsing is under test")]
    limit: u32,
    #[expect(dead_code, reason = "only its parsing is under test")]
    #[serde(default)]
    offset: u32,
}

fn app() -> Router {
    app_with(&config())
}

fn app_with(config: &HttpConfig) -> Router {
    let routes = Router::new()
        .route(
            "/things",
            post(|Json(thing): Json<CreateThing>| async move {
                format!("{} {:?}", thing.name, thing.colour)
            }),
        )
        .route(
            "/things/{id}",
            get(|Path(id): Path<u32>| async move { id.to_string() }),
        )
        .route("/list", get(|Query(_paging): Query<Paging>| async { "ok" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route(
            "/panic",
            get(|| async {
                let words: Vec<&str> = Vec::new();
                // Indexing past the end: the kind of bug a handler really has.
                words[3]
            }),
        )
        .route("/big", get(|| async { "x".repeat(10_000) }))
        .route(
            "/own-csp",
            get(|| async {
                (
                    [(header::CONTENT_SECURITY_POLICY, "script-src 'self'")],
                    "page",
                )
            }),
        );
    layers::apply(routes, config)
}

/// The problem document of an error answer, checked against the rules every error follows.
fn problem(answer: &Answer) -> Problem {
    assert_eq!(
        answer.header("content-type"),
        "application/problem+json",
        "an error must be problem+json"
    );
    let problem: Problem = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(problem.status, answer.status.as_u16());
    assert_eq!(problem.kind, format!("urn:labs:problem:{}", problem.code));
    assert_eq!(
        problem.request_id.as_deref(),
        answer
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        "the body quotes the request id of the header"
    );
    problem
}

async fn send(request: Request<Body>) -> Answer {
    labs_testkit::send(&app(), request).await
}

async fn get_answer(uri: &str) -> Answer {
    labs_testkit::get(&app(), uri).await
}

fn post_json(uri: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

#[tokio::test]
async fn a_valid_body_reaches_the_handler() {
    let answer = send(post_json("/things", r#"{"name":"kite","colour":"red"}"#)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, b"kite Red");
}

#[tokio::test]
async fn malformed_json_is_a_400_problem() {
    let answer = send(post_json("/things", r#"{"name": "kite", "#)).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let problem = problem(&answer);
    assert_eq!(problem.code, "malformed-body");
    assert_eq!(located(&problem), [("", "malformed-json")]);
}

/// The `errors` of a problem, as (pointer, code).
fn located(problem: &Problem) -> Vec<(&str, &str)> {
    problem
        .errors
        .iter()
        .map(|e| (e.pointer.as_str(), e.code.as_str()))
        .collect()
}

#[tokio::test]
async fn a_wrong_type_is_a_422_problem_naming_the_field() {
    let answer = send(post_json("/things", r#"{"name": 7, "colour": "red"}"#)).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    let problem = problem(&answer);
    assert_eq!(problem.code, "invalid-body");
    assert!(problem.detail.contains("name"), "{}", problem.detail);
    assert_eq!(located(&problem), [("/name", "invalid-type")]);
}

#[tokio::test]
async fn every_failing_field_of_a_body_is_located_not_only_the_first() {
    let answer = send(post_json(
        "/things",
        r#"{"name": 7, "colour": "green", "size": 3}"#,
    ))
    .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    let problem = problem(&answer);
    assert_eq!(
        located(&problem),
        [
            ("/colour", "invalid-value"),
            ("/name", "invalid-type"),
            ("/size", "unknown-field")
        ]
    );
    assert!(
        problem.detail.starts_with("3 fields are invalid"),
        "{}",
        problem.detail
    );
    let missing = problem_of(&send(post_json("/things", "{}")).await);
    assert_eq!(
        located(&missing),
        [("/colour", "missing"), ("/name", "missing")]
    );
    // The wire format: a list of objects, each with a pointer, a code and a detail.
    let raw: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(raw["errors"][2]["pointer"], "/size");
    assert!(
        raw["errors"][2]["detail"]
            .as_str()
            .unwrap()
            .contains("size")
    );
}

#[tokio::test]
async fn a_key_given_twice_is_refused_not_read_as_the_last() {
    let answer = send(post_json(
        "/things",
        r#"{"name": "kite", "name": "other", "colour": "red"}"#,
    ))
    .await;
    let problem = problem_of(&answer);
    assert_eq!(located(&problem), [("", "duplicate-field")]);
}

fn problem_of(answer: &Answer) -> Problem {
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    problem(answer)
}

#[tokio::test]
async fn a_body_that_is_not_an_object_is_a_422_problem() {
    // serde would build the struct from an array of its fields in order.
    let answer = send(post_json("/things", r#"["kite", "red"]"#)).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    let refused = problem(&answer);
    assert_eq!(refused.detail, "The body must be a JSON object.");
    assert_eq!(located(&refused), [("", "not-an-object")]);
    let vendor_type = Request::post("/things")
        .header(
            header::CONTENT_TYPE,
            "application/vnd.labs+json; charset=utf-8",
        )
        .body(Body::from(r#"{"name":"kite","colour":"red"}"#))
        .unwrap();
    assert_eq!(send(vendor_type).await.status, StatusCode::OK);
}

#[tokio::test]
async fn deeply_nested_json_is_a_4xx_problem_not_a_stack_overflow() {
    // serde_json stops at 128 levels, long before the stack is in danger (and within the
    // body limit of these tests).
    for body in [
        "[".repeat(600),
        format!("{}{}", r#"{"a":"#.repeat(150), "1"),
    ] {
        let answer = send(post_json("/things", &body)).await;
        assert!(
            [StatusCode::BAD_REQUEST, StatusCode::UNPROCESSABLE_ENTITY].contains(&answer.status),
            "{}",
            answer.status
        );
        assert!(["malformed-body", "invalid-body"].contains(&problem(&answer).code.as_str()));
    }
}

#[tokio::test]
async fn an_unknown_enum_value_is_a_422_problem() {
    let answer = send(post_json(
        "/things",
        r#"{"name": "kite", "colour": "green"}"#,
    ))
    .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(problem(&answer).detail.contains("green"));
}

#[tokio::test]
async fn a_missing_content_type_is_a_415_problem() {
    let request = Request::post("/things")
        .body(Body::from(r#"{"name":"kite","colour":"red"}"#))
        .unwrap();
    let answer = send(request).await;
    assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(problem(&answer).code, "unsupported-media-type");
}

fn oversized_body() -> String {
    let name = "x".repeat(2048);
    format!(r#"{{"name":"{name}","colour":"red"}}"#)
}

#[tokio::test]
async fn an_oversized_body_announced_by_content_length_is_a_413_problem() {
    let body = oversized_body();
    let request = Request::post("/things")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .unwrap();
    let answer = send(request).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(problem(&answer).code, "payload-too-large");
}

#[tokio::test]
async fn an_oversized_body_without_content_length_is_a_413_problem() {
    // No Content-Length header: the limit is enforced while the body is read.
    let answer = send(post_json("/things", &oversized_body())).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(problem(&answer).code, "payload-too-large");
}

// Validation failures of the path and the query get the body's status, 422 (they were 400):
// one status for every validation failure (docs/API-CONVENTIONS.md).
#[tokio::test]
async fn a_bad_path_parameter_is_a_422_problem_naming_it() {
    let answer = get_answer("/things/not-a-number").await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    let problem = problem(&answer);
    assert_eq!(problem.code, "invalid-path");
    assert_eq!(located(&problem), [("id", "invalid-value")]);
}

#[tokio::test]
async fn every_bad_query_parameter_is_a_422_problem_naming_it() {
    let answer = get_answer("/list?limit=-3&offset=x").await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    let problem = problem(&answer);
    assert_eq!(problem.code, "invalid-query");
    assert_eq!(
        located(&problem),
        [("limit", "invalid-value"), ("offset", "invalid-value")]
    );
    let missing = problem_of(&get_answer("/list").await);
    assert_eq!(located(&missing), [("limit", "missing")]);
}

#[tokio::test]
async fn a_wrong_method_is_a_405_problem_that_keeps_allow() {
    let answer = send(Request::delete("/things/3").body(Body::empty()).unwrap()).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(problem(&answer).code, "method-not-allowed");
    let allow = answer.headers.get(header::ALLOW).unwrap().to_str().unwrap();
    assert!(allow.contains("GET"), "{allow}");
}

#[tokio::test]
async fn an_unknown_route_is_a_404_problem() {
    let answer = get_answer("/nowhere").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(problem(&answer).code, "not-found");
}

#[tokio::test]
async fn a_slow_request_is_cut_off_with_a_503_problem() {
    let started = std::time::Instant::now();
    let answer = get_answer("/slow").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(problem(&answer).code, "timeout");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the 5 s handler was not cut off"
    );
}

#[tokio::test]
async fn a_panicking_handler_is_a_500_problem_without_details() {
    let answer = get_answer("/panic").await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    let problem = problem(&answer);
    assert_eq!(problem.code, "internal");
    assert!(
        !problem.detail.contains("index out of bounds"),
        "{}",
        problem.detail
    );
}

#[tokio::test]
async fn a_well_formed_request_id_from_the_proxy_is_kept() {
    let request = Request::get("/nowhere")
        .header("x-request-id", "proxy-id-42")
        .body(Body::empty())
        .unwrap();
    let answer = send(request).await;
    assert_eq!(answer.headers.get("x-request-id").unwrap(), "proxy-id-42");
    assert_eq!(problem(&answer).request_id.as_deref(), Some("proxy-id-42"));
}

#[tokio::test]
async fn a_malformed_request_id_is_replaced_by_a_uuid() {
    let request = Request::get("/things/1")
        .header("x-request-id", "has spaces and {braces}")
        .body(Body::empty())
        .unwrap();
    let answer = send(request).await;
    let id = answer
        .headers
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(uuid_like(id), "{id}");
}

#[tokio::test]
async fn every_answer_gets_a_request_id() {
    let answer = get_answer("/things/1").await;
    assert_eq!(answer.status, StatusCode::OK);
    let id = answer
        .headers
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(uuid_like(id), "{id}");
}

fn uuid_like(id: &str) -> bool {
    id.len() == 36 && id.chars().filter(|c| *c == '-').count() == 4
}

#[tokio::test]
async fn large_answers_are_gzipped_for_clients_that_accept_it() {
    let request = Request::get("/big")
        .header(header::ACCEPT_ENCODING, "gzip")
        .body(Body::empty())
        .unwrap();
    let answer = send(request).await;
    assert_eq!(
        answer.headers.get(header::CONTENT_ENCODING).unwrap(),
        "gzip"
    );
    assert!(answer.body.len() < 1000, "{} bytes", answer.body.len());
}

#[tokio::test]
async fn refusing_every_encoding_is_a_406_problem() {
    let request = Request::get("/big")
        .header(header::ACCEPT_ENCODING, "identity;q=0")
        .body(Body::empty())
        .unwrap();
    let answer = send(request).await;
    assert_eq!(answer.status, StatusCode::NOT_ACCEPTABLE);
    assert_eq!(problem(&answer).code, "not-acceptable");
}

#[tokio::test]
async fn a_configured_origin_passes_cors_preflight_with_credentials() {
    let request = Request::builder()
        .method(Method::OPTIONS)
        .uri("/things")
        .header(header::ORIGIN, "https://app.example.com")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .body(Body::empty())
        .unwrap();
    let answer = send(request).await;
    assert!(answer.status.is_success(), "{}", answer.status);
    assert_eq!(
        answer
            .headers
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .unwrap(),
        "https://app.example.com"
    );
    assert_eq!(
        answer
            .headers
            .get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
            .unwrap(),
        "true"
    );
}

#[tokio::test]
async fn another_origin_gets_no_cors_headers() {
    let request = Request::get("/things/1")
        .header(header::ORIGIN, "https://evil.example.net")
        .body(Body::empty())
        .unwrap();
    let answer = send(request).await;
    assert!(
        answer
            .headers
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_none()
    );
}

/// The headers every answer carries (outside production, so no HSTS).
fn assert_security_headers(answer: &Answer) {
    assert_eq!(
        answer.header("x-content-type-options"),
        "nosniff",
        "{}",
        answer.status
    );
    assert_eq!(answer.header("referrer-policy"), "no-referrer");
    assert_eq!(answer.header("x-frame-options"), "DENY");
    assert_eq!(
        answer.header("content-security-policy"),
        "default-src 'none'; frame-ancestors 'none'"
    );
    assert!(answer.headers.get("strict-transport-security").is_none());
}

#[tokio::test]
async fn every_kind_of_answer_carries_the_security_headers() {
    let preflight = Request::builder()
        .method(Method::OPTIONS)
        .uri("/things")
        .header(header::ORIGIN, "https://app.example.com")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .body(Body::empty())
        .unwrap();
    let refused_encoding = Request::get("/big")
        .header(header::ACCEPT_ENCODING, "identity;q=0")
        .body(Body::empty())
        .unwrap();
    let cases = [
        (
            Request::get("/things/1").body(Body::empty()).unwrap(),
            StatusCode::OK,
        ),
        (
            Request::get("/nowhere").body(Body::empty()).unwrap(),
            StatusCode::NOT_FOUND,
        ),
        (
            Request::delete("/things/3").body(Body::empty()).unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            post_json("/things", &oversized_body()),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (post_json("/things", "{"), StatusCode::BAD_REQUEST),
        (
            Request::get("/panic").body(Body::empty()).unwrap(),
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
        (
            Request::get("/slow").body(Body::empty()).unwrap(),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        (refused_encoding, StatusCode::NOT_ACCEPTABLE),
        (preflight, StatusCode::OK),
    ];
    for (request, status) in cases {
        let uri = request.uri().clone();
        let answer = send(request).await;
        assert_eq!(answer.status, status, "{uri}");
        assert_security_headers(&answer);
    }
}

#[tokio::test]
async fn hsts_is_sent_in_production_only() {
    let mut production = config();
    production.production = true;
    let answer = labs_testkit::get(&app_with(&production), "/nowhere").await;
    assert_eq!(
        answer.header("strict-transport-security"),
        "max-age=31536000; includeSubDomains"
    );

    production.hsts_include_subdomains = false;
    production.hsts_max_age = Duration::from_secs(600);
    let answer = labs_testkit::get(&app_with(&production), "/things/1").await;
    assert_eq!(answer.header("strict-transport-security"), "max-age=600");

    production.hsts_max_age = Duration::ZERO;
    let answer = labs_testkit::get(&app_with(&production), "/things/1").await;
    assert!(answer.headers.get("strict-transport-security").is_none());

    // Outside production, whatever the max-age.
    let answer = get_answer("/things/1").await;
    assert!(answer.headers.get("strict-transport-security").is_none());
}

#[tokio::test]
async fn a_page_with_a_csp_of_its_own_keeps_it() {
    let answer = get_answer("/own-csp").await;
    assert_eq!(
        answer.header("content-security-policy"),
        "script-src 'self'"
    );
    assert_eq!(answer.header("x-content-type-options"), "nosniff");
    assert_eq!(answer.header("x-frame-options"), "DENY");
}
