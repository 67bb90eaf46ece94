//! Passwords: a reset, a rehash of a hash made with old parameters (and never over a
//! password replaced meanwhile), and the fresh login, session ends and emails of security
//! changes.

use super::{PASSWORD, access, get_as, link_token, login, post, turn_totp_on, user};
use axum::http::StatusCode;
use labs_domain::UserId;
use labs_testapp::TestApp;
use serde_json::json;
use sqlx::PgPool;

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn a_password_reset_sets_the_password_and_ends_every_session(db: PgPool) {
    let app = TestApp::builder(db.clone()).smtp().spawn();
    user(&db, "ada@example.com", false, true).await;
    let before = login(&app, "ada@example.com").await;

    let unknown = post(
        &app,
        "/api/auth/password-reset",
        json!({"email": "nobody@example.com"}),
    )
    .await;
    let known = post(
        &app,
        "/api/auth/password-reset",
        json!({"email": "ada@example.com"}),
    )
    .await;
    assert_eq!(known.status, StatusCode::ACCEPTED);
    assert_eq!(known.json(), unknown.json());
    let token = link_token(&app.next_email().await, "reset-password");

    let answer = post(
        &app,
        "/api/auth/password-reset/confirm",
        json!({"token": token, "newPassword": "a brand new passphrase"}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.text());
    let reused = post(
        &app,
        "/api/auth/password-reset/confirm",
        json!({"token": token, "newPassword": "yet another passphrase"}),
    )
    .await;
    assert_eq!(reused.status, StatusCode::UNAUTHORIZED, "single use");

    assert_eq!(
        get_as(&app, "/api/auth/me", &access(&before)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let refresh = post(
        &app,
        "/api/auth/refresh",
        json!({"refreshToken": before["refresh_token"]}),
    )
    .await;
    assert_eq!(refresh.status, StatusCode::UNAUTHORIZED);
    let old = post(
        &app,
        "/api/auth/token",
        json!({"email": "ada@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    let new = post(
        &app,
        "/api/auth/token",
        json!({"email": "ada@example.com", "password": "a brand new passphrase"}),
    )
    .await;
    assert_eq!(new.status, StatusCode::OK);
    assert!(
        app.next_email()
            .await
            .contains("Subject: Your password was changed")
    );
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn a_login_rehashes_a_password_made_with_old_parameters(db: PgPool) {
    let app = TestApp::new(db.clone());
    let weak = labs_auth::PasswordHasher::new(1024, 1, 1)
        .unwrap()
        .hash(PASSWORD)
        .unwrap();
    let new = labs_accounts::db::users::NewUser {
        id: UserId::generate(),
        email: "ada@example.com",
        full_name: None,
        password_hash: Some(&weak),
        is_admin: false,
        verified: true,
    };
    labs_accounts::db::users::insert(&db, &new).await.unwrap();
    login(&app, "ada@example.com").await;
    let stored: String = sqlx::query_scalar("SELECT password_hash FROM users")
        .fetch_one(&db)
        .await
        .unwrap();
    assert!(
        stored.starts_with("$argon2id$v=19$m=12288,t=3,p=1$"),
        "{stored}"
    );
    login(&app, "ada@example.com").await;
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn security_changes_need_a_fresh_login_end_other_sessions_and_are_emailed(db: PgPool) {
    let app = TestApp::builder(db.clone()).roomy().smtp().spawn();
    user(&db, "ada@example.com", false, true).await;
    let here = login(&app, "ada@example.com").await;
    let elsewhere = login(&app, "ada@example.com").await;
    let bearer = format!("Bearer {}", access(&here));
    let auth = [("authorization", bearer.as_str())];

    let refreshed = post(
        &app,
        "/api/auth/refresh",
        json!({"refreshToken": elsewhere["refresh_token"]}),
    )
    .await
    .json();
    let stale = format!("Bearer {}", access(&refreshed));
    let change = json!({"currentPassword": PASSWORD, "newPassword": "a brand new passphrase"});
    let not_fresh = app
        .call(
            "POST",
            "/api/auth/password",
            Some(change.clone()),
            &[("authorization", &stale)],
        )
        .await;
    assert_eq!(not_fresh.status, StatusCode::FORBIDDEN);
    assert_eq!(not_fresh.json()["code"], "fresh-login-required");
    let wrong = json!({"currentPassword": "not it", "newPassword": "a brand new passphrase"});
    let refused = app
        .call("POST", "/api/auth/password", Some(wrong), &auth)
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let missing = json!({"newPassword": "a brand new passphrase"});
    let refused = app
        .call("POST", "/api/auth/password", Some(missing), &auth)
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);

    let changed = app
        .call("POST", "/api/auth/password", Some(change), &auth)
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{}", changed.text());
    let message = app.next_email().await;
    assert!(
        message.contains("Subject: Your password was changed"),
        "{message}"
    );
    assert_eq!(
        get_as(&app, "/api/auth/me", &access(&here)).await.status,
        StatusCode::OK,
        "this session goes on"
    );
    assert_eq!(
        get_as(&app, "/api/auth/me", &access(&refreshed))
            .await
            .status,
        StatusCode::UNAUTHORIZED,
        "the other session ended"
    );
    let old = json!({"email": "ada@example.com", "password": PASSWORD});
    assert_eq!(
        post(&app, "/api/auth/token", old).await.status,
        StatusCode::UNAUTHORIZED
    );

    let secret = turn_totp_on(&app, &bearer).await;
    // A code of the next step: the confirmation used the current one.
    let next_code = |secret: &str| {
        let python = labs_testkit::test_python();
        let output = std::process::Command::new(python)
            .args([
                "-c",
                "import pyotp, sys, time; print(pyotp.TOTP(sys.argv[1]).at(time.time() + 30))",
                secret,
            ])
            .output()
            .unwrap();
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    let codes = app
        .call(
            "POST",
            "/api/auth/totp/recovery-codes",
            Some(json!({"code": next_code(&secret)})),
            &auth,
        )
        .await;
    assert_eq!(codes.status, StatusCode::OK, "{}", codes.text());
    let message = app.next_email().await;
    assert!(
        message.contains("Subject: New recovery codes were made"),
        "{message}"
    );
    let recovery = codes.json()["recoveryCodes"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let off = app
        .call(
            "POST",
            "/api/auth/totp/disable",
            Some(json!({"code": recovery})),
            &auth,
        )
        .await;
    assert_eq!(off.status, StatusCode::NO_CONTENT, "{}", off.text());
    let message = app.next_email().await;
    assert!(
        message.contains("Subject: Two-factor authentication was turned off"),
        "{message}"
    );
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn a_rehash_never_writes_back_a_password_replaced_meanwhile(db: PgPool) {
    let id = user(&db, "ada@example.com", false, true).await;
    let read = labs_accounts::db::users::credentials(&db, None, Some(id))
        .await
        .unwrap()
        .unwrap()
        .password_hash
        .unwrap();
    // A reset commits between the login's check and its rehash.
    let changes = labs_accounts::db::users::UserChanges {
        password_hash: Some("$argon2id$the-new-password"),
        ..Default::default()
    };
    labs_accounts::db::users::update(&db, id, &changes)
        .await
        .unwrap();
    let rehashed =
        labs_accounts::db::users::rehash_password(&db, id, &read, "$argon2id$the-old-one")
            .await
            .unwrap();
    assert!(!rehashed);
    let stored = labs_accounts::db::users::credentials(&db, None, Some(id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.password_hash.as_deref(),
        Some("$argon2id$the-new-password")
    );
    assert_eq!(
        stored.credentials_epoch, 1,
        "a new password moves the version on"
    );
}
