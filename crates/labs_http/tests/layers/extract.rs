//! The extractors, through the same layers: a body, a path and a query are read or refused with
//! a problem naming each failing field (malformed JSON, wrong types, keys twice, nesting too
//! deep, an unknown enum value, no content type, a body over the limit).

use crate::{get_answer, oversized_body, post_json, problem, send};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use labs_http::Problem;
use labs_testkit::Answer;

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
