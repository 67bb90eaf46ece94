//! Logging in with a code sent by email: each code works once, and five wrong tries lock it.

use super::{access, code_in, get_as, post, user};
use axum::http::StatusCode;
use labs_testapp::TestApp;
use serde_json::json;
use sqlx::PgPool;

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn email_codes_log_in_once_and_lock_after_five_wrong_tries(db: PgPool) {
    // The lock, not the rate limit, is under test: budgets above the attempts made here.
    let app = TestApp::builder(db.clone()).roomy().smtp().spawn();
    user(&db, "ada@example.com", false, false).await;

    // Unknown address: same answer, no account, no email.
    let unknown = post(
        &app,
        "/api/auth/otp",
        json!({"email": "nobody@example.com"}),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::ACCEPTED);
    assert!(
        labs_accounts::db::users::credentials(&db, Some("nobody@example.com"), None)
            .await
            .unwrap()
            .is_none()
    );

    let known = post(&app, "/api/auth/otp", json!({"email": "ada@example.com"})).await;
    assert_eq!(known.json(), unknown.json());
    let message = app.next_email().await;
    assert!(
        message.contains("To: ada@example.com") && message.contains("Subject: Your login code"),
        "{message}"
    );
    let code = code_in(&message);
    let wrong = if code == "000000" { "000001" } else { "000000" };
    for _ in 0..5 {
        let answer = post(
            &app,
            "/api/auth/otp/verify",
            json!({"email": "ada@example.com", "code": wrong}),
        )
        .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(answer.json()["code"], "invalid-code");
    }
    let locked = post(
        &app,
        "/api/auth/otp/verify",
        json!({"email": "ada@example.com", "code": code}),
    )
    .await;
    assert_eq!(
        locked.status,
        StatusCode::UNAUTHORIZED,
        "locked after 5 wrong tries, even with the right code"
    );

    post(&app, "/api/auth/otp", json!({"email": "ada@example.com"})).await;
    let code = code_in(&app.next_email().await);
    let answer = post(
        &app,
        "/api/auth/otp/verify",
        json!({"email": "ada@example.com", "code": code}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let me = get_as(&app, "/api/auth/me", &access(&answer.json()))
        .await
        .json();
    assert_eq!(me["emailVerified"], true, "a code login proves the address");
    let replay = post(
        &app,
        "/api/auth/otp/verify",
        json!({"email": "ada@example.com", "code": code}),
    )
    .await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED, "single use");

    // Expired codes are refused.
    post(&app, "/api/auth/otp", json!({"email": "ada@example.com"})).await;
    let code = code_in(&app.next_email().await);
    sqlx::query("UPDATE email_otps SET expires_at = now() - interval '1 second'")
        .execute(&db)
        .await
        .unwrap();
    let expired = post(
        &app,
        "/api/auth/otp/verify",
        json!({"email": "ada@example.com", "code": code}),
    )
    .await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
}
