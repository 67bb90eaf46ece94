//! Addresses at the API's edge: one the mailer cannot send to is refused at signup with a 422
//! problem, instead of being stored and its verification email retried for hours.

use axum::http::StatusCode;
use labs_testapp::TestApp;
use serde_json::json;
use sqlx::PgPool;

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn signup_refuses_addresses_the_mailer_cannot_send_to(db: PgPool) {
    let app = TestApp::new(db.clone());
    for unsendable in [
        "a..b@example.com",
        ".ada@example.com",
        "ada.@example.com",
        "x@[127.0.0.1]",
        "x@127.0.0.1",
        "\"ada\"@example.com",
    ] {
        let answer = app
            .call(
                "POST",
                "/api/auth/signup",
                Some(json!({"email": unsendable, "password": "correct horse battery staple"})),
                &[],
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{unsendable}"
        );
        assert_eq!(answer.header("content-type"), "application/problem+json");
        let problem = answer.json();
        assert_eq!(problem["status"], 422, "{problem}");
        assert!(
            problem.to_string().contains("email"),
            "the problem names the field: {problem}"
        );
    }
    assert_eq!(
        labs_accounts::db::users::count(&db).await.unwrap(),
        0,
        "nothing stored"
    );

    let sendable = app.call("POST",
        "/api/auth/signup",
        Some(json!({"email": "ada.lovelace@example.com", "password": "correct horse battery staple"})),
        &[],
    )
    .await;
    assert_eq!(sendable.status, StatusCode::ACCEPTED);
    // The accepted signup's confirmation is sent.
    app.drain().await;
}
