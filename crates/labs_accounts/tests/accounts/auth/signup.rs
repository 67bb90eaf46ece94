//! Signing up: the whole way from signup through the emailed link to login, refresh and
//! logout, and the purge of accounts nobody verified.

use labs_testapp::TestApp;
use std::time::Duration;

use super::{PASSWORD, access, get_as, link_token, login, post, user};
use axum::http::StatusCode;
use labs_domain::{SessionId, UserId};
use labs_jobs::Handler;
use serde_json::json;
use sqlx::PgPool;

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn signup_verification_login_refresh_and_logout_end_to_end(db: PgPool) {
    let app = TestApp::builder(db.clone()).smtp().spawn();

    let answer = post(
        &app,
        "/api/auth/signup",
        json!({"email": "Ada@Example.com", "password": PASSWORD, "fullName": "Ada"}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text());
    let message = app.next_email().await;
    assert!(message.contains("To: ada@example.com"), "{message}");
    assert!(
        message.contains("Subject: Confirm your email address"),
        "{message}"
    );
    assert!(
        message.contains("http://localhost:8080/api/verify-email?token="),
        "{message}"
    );
    let token = link_token(&message, "verify-email");

    // Not verified yet: the right password is not enough.
    let early = post(
        &app,
        "/api/auth/token",
        json!({"email": "ada@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(early.status, StatusCode::FORBIDDEN);
    assert_eq!(early.json()["code"], "email-not-verified");

    // The link alone is not enough: the page asks for the signup's password.
    let bare = post(&app, "/api/auth/verify", json!({"token": token})).await;
    assert_eq!(
        bare.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        bare.text()
    );
    let verified = post(
        &app,
        "/api/auth/verify",
        json!({"token": token, "password": PASSWORD}),
    )
    .await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.text());
    assert_eq!(verified.json()["emailVerified"], true);
    let again = post(
        &app,
        "/api/auth/verify",
        json!({"token": token, "password": PASSWORD}),
    )
    .await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED, "single use");
    assert_eq!(again.json()["code"], "invalid-token");

    let tokens = login(&app, "ADA@example.com").await;
    assert_eq!(tokens["token_type"], "bearer");
    assert_eq!(tokens["expires_in"], 900);
    let me = get_as(&app, "/api/auth/me", &access(&tokens)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json()["email"], "ada@example.com");
    assert_eq!(me.json()["fullName"], "Ada");
    assert!(me.json().get("passwordHash").is_none());

    // Rotation: each refresh token works once and gives a new pair.
    let first_refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let rotated = post(
        &app,
        "/api/auth/refresh",
        json!({"refreshToken": first_refresh}),
    )
    .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text());
    let rotated = rotated.json();
    assert_ne!(rotated["refresh_token"], first_refresh);
    assert_eq!(
        get_as(&app, "/api/auth/me", &access(&rotated)).await.status,
        StatusCode::OK
    );

    // Reuse of the old one: the whole family is revoked, the new tokens too.
    let reuse = post(
        &app,
        "/api/auth/refresh",
        json!({"refreshToken": first_refresh}),
    )
    .await;
    assert_eq!(reuse.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reuse.header("www-authenticate"), "Bearer");
    let after = post(
        &app,
        "/api/auth/refresh",
        json!({"refreshToken": rotated["refresh_token"]}),
    )
    .await;
    assert_eq!(
        after.status,
        StatusCode::UNAUTHORIZED,
        "the stolen family is dead"
    );
    let me = get_as(&app, "/api/auth/me", &access(&rotated)).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    assert_eq!(me.json()["code"], "session-ended");

    // Logout ends one session; logout everywhere ends all.
    let one = login(&app, "ada@example.com").await;
    let two = login(&app, "ada@example.com").await;
    let three = login(&app, "ada@example.com").await;
    let out = app
        .call(
            "POST",
            "/api/auth/logout",
            Some(json!({})),
            &[("authorization", &format!("Bearer {}", access(&one)))],
        )
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert_eq!(
        get_as(&app, "/api/auth/me", &access(&one)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get_as(&app, "/api/auth/me", &access(&two)).await.status,
        StatusCode::OK
    );
    let everywhere = post(
        &app,
        "/api/auth/logout",
        json!({"refreshToken": two["refresh_token"], "everywhere": true}),
    )
    .await;
    assert_eq!(everywhere.status, StatusCode::NO_CONTENT);
    for tokens in [&two, &three] {
        assert_eq!(
            get_as(&app, "/api/auth/me", &access(tokens)).await.status,
            StatusCode::UNAUTHORIZED
        );
        let refresh = post(
            &app,
            "/api/auth/refresh",
            json!({"refreshToken": tokens["refresh_token"]}),
        )
        .await;
        assert_eq!(refresh.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.emails_sent().await, 1, "one email: the verification");
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn accounts_nobody_verified_are_purged_after_their_time(db: PgPool) {
    let old_unverified = user(&db, "old-unverified@example.com", false, false).await;
    let new_unverified = user(&db, "new-unverified@example.com", false, false).await;
    let old_verified = user(&db, "old-verified@example.com", false, true).await;
    // Never verified, but in use (unverified accounts may log in where
    // LABS_REQUIRE_VERIFIED_EMAIL=false), or an admin's: kept.
    let in_use = user(&db, "in-use@example.com", false, false).await;
    let in_use_session = SessionId::generate();
    let expires = time::OffsetDateTime::now_utc() + Duration::from_secs(3600);
    labs_accounts::db::credentials::start_session(
        &db,
        in_use_session,
        in_use,
        0,
        b"in-use",
        expires,
    )
    .await
    .unwrap();
    let admin = user(&db, "unverified-admin@example.com", true, false).await;
    // An old account whose address an admin changed: unverified now, but claimed long ago.
    let changed = user(&db, "changed@example.com", false, true).await;
    let changes = labs_accounts::db::users::UserChanges {
        email: Some("changed-again@example.com"),
        ..Default::default()
    };
    let after = labs_accounts::db::users::update(&db, changed, &changes)
        .await
        .unwrap()
        .unwrap();
    assert!(
        after.email_verified_at.is_none(),
        "a new address is unverified"
    );
    sqlx::query("UPDATE users SET created_at = now() - interval '8 days' WHERE id <> $1")
        .bind(new_unverified.as_uuid())
        .execute(&db)
        .await
        .unwrap();

    let app = TestApp::new(db.clone());
    labs_accounts::PurgeExpiredCredentials::default()
        .handle(app.worker())
        .await
        .unwrap();

    let left: Vec<UserId> = sqlx::query_scalar("SELECT id FROM users ORDER BY id")
        .fetch_all(&db)
        .await
        .unwrap()
        .into_iter()
        .map(UserId::from_uuid)
        .collect();
    assert!(!left.contains(&old_unverified), "7 days unverified: purged");
    for kept in [new_unverified, old_verified, changed, in_use, admin] {
        assert!(left.contains(&kept), "{left:?}");
    }
}
