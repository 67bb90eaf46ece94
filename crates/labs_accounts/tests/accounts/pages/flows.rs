//! The two flows the emailed links start: the verification link opens a form that confirms the
//! address, the reset link one that sets a new password; a GET spends nothing, a POST goes
//! through the API's own protocol.

use super::{
    NEW_PASSWORD, PASSWORD, SAME_ORIGIN, assert_page, emailed_link, login, path_of, roomy_app,
    submit, token_of,
};
use axum::http::StatusCode;
use serde_json::json;
use sqlx::PgPool;

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn the_verification_link_opens_a_form_that_confirms_the_address(db: PgPool) {
    let app = roomy_app(db.clone());
    let signup = app
        .call(
            "POST",
            "/api/auth/signup",
            Some(json!({"email": "ada@example.com", "password": PASSWORD})),
            &[],
        )
        .await;
    assert_eq!(signup.status, StatusCode::ACCEPTED, "{}", signup.text());
    let link = emailed_link(&db, "ada@example.com", "verify-email").await;
    // With no LABS_APP_URL the link opens this service's own page, under the root path.
    assert!(
        link.starts_with("http://localhost:8080/api/verify-email?token="),
        "{link}"
    );
    let token = token_of(&link);

    // Opening the link (twice: a mail scanner first) shows the form and spends nothing.
    for _ in 0..2 {
        let page = app.get(path_of(&link)).await;
        assert_page(&page, StatusCode::OK, "Confirm your email address");
        let html = page.text();
        assert!(
            html.contains(&format!(
                r#"<input type="hidden" name="token" value="{token}">"#
            )),
            "{html}"
        );
        assert!(
            html.contains(r#"<form method="post" action="verify-email">"#),
            "{html}"
        );
        assert!(
            html.contains(r#"name="password" type="password""#),
            "{html}"
        );
    }

    // A wrong password: 401, the form again with why.
    let wrong = submit(
        &app,
        "/api/verify-email",
        &[("token", token), ("password", "not the password at all")],
        SAME_ORIGIN,
    )
    .await;
    assert_page(
        &wrong,
        StatusCode::UNAUTHORIZED,
        "This is not the password the account was created with",
    );
    assert!(
        wrong.text().contains(token),
        "the form again, with its token"
    );
    assert!(wrong.headers.get("www-authenticate").is_none());
    // No password: 422, the form again.
    let empty = submit(
        &app,
        "/api/verify-email",
        &[("token", token), ("password", "")],
        SAME_ORIGIN,
    )
    .await;
    assert_page(
        &empty,
        StatusCode::UNPROCESSABLE_ENTITY,
        "Type the password you chose when you signed up.",
    );
    assert_eq!(
        login(&app, "ada@example.com", PASSWORD).await.status,
        StatusCode::FORBIDDEN,
        "not verified yet"
    );

    let confirmed = submit(
        &app,
        "/api/verify-email",
        &[("token", token), ("password", PASSWORD)],
        SAME_ORIGIN,
    )
    .await;
    assert_page(&confirmed, StatusCode::OK, "Address confirmed");
    let tokens = login(&app, "ada@example.com", PASSWORD).await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.text());

    // The link is spent: a clear page, 401 like the API's `invalid-token`, no form.
    let again = submit(
        &app,
        "/api/verify-email",
        &[("token", token), ("password", PASSWORD)],
        SAME_ORIGIN,
    )
    .await;
    assert_page(
        &again,
        StatusCode::UNAUTHORIZED,
        "This link is invalid, expired or already used",
    );
    assert!(!again.text().contains("<form"), "{}", again.text());
    // The signup's confirmation is sent.
    app.drain().await;
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn the_reset_link_opens_a_form_that_sets_a_new_password(db: PgPool) {
    let app = roomy_app(db.clone());
    labs_testapp::insert_user_with_password(&db, "ada@example.com", PASSWORD, false, true).await;
    let asked = app
        .call(
            "POST",
            "/api/auth/password-reset",
            Some(json!({"email": "ada@example.com"})),
            &[],
        )
        .await;
    assert_eq!(asked.status, StatusCode::ACCEPTED, "{}", asked.text());
    let link = emailed_link(&db, "ada@example.com", "reset-password").await;
    assert!(
        link.starts_with("http://localhost:8080/api/reset-password?token="),
        "{link}"
    );
    let token = token_of(&link);

    let page = app.get(path_of(&link)).await;
    assert_page(&page, StatusCode::OK, "Choose a new password");
    assert!(page.text().contains(r#"action="reset-password""#));
    assert!(page.text().contains(r#"autocomplete="new-password""#));

    // Too short, or two different passwords: 422, the form again; the link still holds.
    let short = submit(
        &app,
        "/api/reset-password",
        &[
            ("token", token),
            ("newPassword", "short"),
            ("confirmPassword", "short"),
        ],
        SAME_ORIGIN,
    )
    .await;
    assert_page(
        &short,
        StatusCode::UNPROCESSABLE_ENTITY,
        "Choose a password of 8 to 128 characters.",
    );
    assert!(short.text().contains(token));
    let differ = submit(
        &app,
        "/api/reset-password",
        &[
            ("token", token),
            ("newPassword", NEW_PASSWORD),
            ("confirmPassword", "a new password, long enougH"),
        ],
        SAME_ORIGIN,
    )
    .await;
    assert_page(
        &differ,
        StatusCode::UNPROCESSABLE_ENTITY,
        "The two passwords differ",
    );

    let changed = submit(
        &app,
        "/api/reset-password",
        &[
            ("token", token),
            ("newPassword", NEW_PASSWORD),
            ("confirmPassword", NEW_PASSWORD),
        ],
        SAME_ORIGIN,
    )
    .await;
    assert_page(&changed, StatusCode::OK, "Password changed");
    assert_eq!(
        login(&app, "ada@example.com", NEW_PASSWORD).await.status,
        StatusCode::OK
    );
    assert_eq!(
        login(&app, "ada@example.com", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );

    let again = submit(
        &app,
        "/api/reset-password",
        &[
            ("token", token),
            ("newPassword", PASSWORD),
            ("confirmPassword", PASSWORD),
        ],
        SAME_ORIGIN,
    )
    .await;
    assert_page(
        &again,
        StatusCode::UNAUTHORIZED,
        "This link is invalid, expired or already used",
    );
    assert_eq!(
        login(&app, "ada@example.com", NEW_PASSWORD).await.status,
        StatusCode::OK
    );
    // The reset's emails are sent.
    app.drain().await;
}
