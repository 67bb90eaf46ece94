//! What the pages refuse and the headers they carry: every bad link or form is a 4xx page, a
//! cross-site post is refused and spends nothing, the CSP and security headers hold, and a
//! database outage is a 503 page with the request id.

use super::{
    NEW_PASSWORD, PASSWORD, SAME_ORIGIN, assert_page, emailed_link, login, raw_post, roomy_app,
    submit, token_of,
};
use axum::http::StatusCode;
use labs_testapp::TestApp;
use serde_json::json;
use sqlx::PgPool;

/// Bad links and bad forms: each a 4xx HTML page that says what is wrong, never a 500.
#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn bad_links_and_bad_forms_are_4xx_pages(db: PgPool) {
    let app = roomy_app(db);
    let unknown = "A".repeat(43);
    for path in [
        "/api/verify-email",
        "/api/verify-email?token=",
        "/api/verify-email?token=cut%20short",
        "/api/reset-password?tok=x",
        "/api/reset-password?token=%3Cscript%3E",
    ] {
        assert_page(
            &app.get(path).await,
            StatusCode::BAD_REQUEST,
            "This link is incomplete",
        );
    }
    for page in ["/api/verify-email", "/api/reset-password"] {
        // No token in the form.
        let no_token = submit(&app, page, &[("password", PASSWORD)], SAME_ORIGIN).await;
        assert_page(
            &no_token,
            StatusCode::BAD_REQUEST,
            "This link is incomplete",
        );
        // JSON, or a multipart form, instead of the page's form.
        let json = raw_post(
            &app,
            page,
            "application/json",
            format!(r#"{{"token":"{unknown}"}}"#),
            SAME_ORIGIN,
        )
        .await;
        assert_page(
            &json,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "takes its own HTML form",
        );
        let multipart = raw_post(
            &app,
            page,
            "multipart/form-data; boundary=x",
            "--x--".to_owned(),
            SAME_ORIGIN,
        )
        .await;
        assert_page(
            &multipart,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "takes its own HTML form",
        );
        // A field twice.
        let twice = raw_post(
            &app,
            page,
            "application/x-www-form-urlencoded",
            format!("token={unknown}&token={unknown}"),
            SAME_ORIGIN,
        )
        .await;
        assert!(twice.status.is_client_error(), "{}", twice.status);
        assert_eq!(twice.header("content-type"), "text/html; charset=utf-8");
    }
    // A token of the right shape that was never issued: the API's 401, as a page.
    let verify = submit(
        &app,
        "/api/verify-email",
        &[("token", &unknown), ("password", PASSWORD)],
        SAME_ORIGIN,
    )
    .await;
    assert_page(
        &verify,
        StatusCode::UNAUTHORIZED,
        "This link is invalid, expired or already used",
    );
    let reset = submit(
        &app,
        "/api/reset-password",
        &[
            ("token", &unknown),
            ("newPassword", NEW_PASSWORD),
            ("confirmPassword", NEW_PASSWORD),
        ],
        SAME_ORIGIN,
    )
    .await;
    assert_page(
        &reset,
        StatusCode::UNAUTHORIZED,
        "This link is invalid, expired or already used",
    );
    // No new password at all.
    let missing = submit(
        &app,
        "/api/reset-password",
        &[("token", &unknown)],
        SAME_ORIGIN,
    )
    .await;
    assert_page(
        &missing,
        StatusCode::UNPROCESSABLE_ENTITY,
        "Choose a password of 8 to 128",
    );
}

/// A form posted from another site is refused (the API's origin rule) with a page, before the
/// link is touched; the page's own post, and a client without a browser's headers, pass.
#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn a_cross_site_form_post_is_refused_and_spends_nothing(db: PgPool) {
    let app = roomy_app(db.clone());
    labs_testapp::insert_user_with_password(&db, "ada@example.com", PASSWORD, false, true).await;
    app.call(
        "POST",
        "/api/auth/password-reset",
        Some(json!({"email": "ada@example.com"})),
        &[],
    )
    .await;
    let link = emailed_link(&db, "ada@example.com", "reset-password").await;
    let fields = [
        ("token", token_of(&link)),
        ("newPassword", NEW_PASSWORD),
        ("confirmPassword", NEW_PASSWORD),
    ];

    for forged in [
        &[
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://evil.example"),
        ][..],
        &[
            ("sec-fetch-site", "same-site"),
            ("origin", "https://evil.example.com"),
        ][..],
        // A browser without Fetch Metadata, from another origin.
        &[
            ("origin", "https://evil.example"),
            ("host", "localhost:8080"),
        ][..],
    ] {
        let refused = submit(&app, "/api/reset-password", &fields, forged).await;
        assert_page(&refused, StatusCode::FORBIDDEN, "sent from another site");
        assert_eq!(
            refused.header("content-security-policy"),
            labs_accounts::pages::PAGES_CSP
        );
    }
    assert_eq!(
        login(&app, "ada@example.com", PASSWORD).await.status,
        StatusCode::OK,
        "the forged posts changed nothing"
    );

    let changed = submit(&app, "/api/reset-password", &fields, SAME_ORIGIN).await;
    assert_page(&changed, StatusCode::OK, "Password changed");
    // The signup's confirmation is sent.
    app.drain().await;
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn the_pages_carry_their_csp_and_the_security_headers(db: PgPool) {
    let app = roomy_app(db);
    let token = "A".repeat(43);
    // Under the root path and without it (a proxy that strips it), as every route.
    for path in [
        format!("/api/verify-email?token={token}"),
        format!("/reset-password?token={token}"),
    ] {
        let page = app.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert_eq!(
            page.header("content-security-policy"),
            labs_accounts::pages::PAGES_CSP
        );
        assert_eq!(page.header("x-content-type-options"), "nosniff");
        assert_eq!(page.header("referrer-policy"), "no-referrer");
        assert_eq!(page.header("x-frame-options"), "DENY");
        assert_eq!(page.header("cache-control"), "no-store");
        let html = page.text();
        // Nothing the CSP would block: no script, no inline style, one stylesheet beside the
        // page (relative, so under any root path), forms to this origin.
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("style="), "{html}");
        assert!(!html.contains("<style"), "{html}");
        assert!(
            html.contains(r#"<link rel="stylesheet" href="pages.css">"#),
            "{html}"
        );
        assert!(
            html.contains(r#"<meta name="referrer" content="no-referrer">"#),
            "{html}"
        );
    }
    let css = app.get("/api/pages.css").await;
    assert_eq!(css.status, StatusCode::OK);
    assert_eq!(css.header("content-type"), "text/css; charset=utf-8");
    assert!(css.text().contains("main {"), "{}", css.text());

    // HTML for people, not API operations.
    let spec = app.get("/api/openapi.json").await.json();
    let paths = spec["paths"].as_object().unwrap();
    assert!(
        paths
            .keys()
            .all(|path| !path.contains("verify-email") && !path.contains("reset-password")),
        "{:?}",
        paths.keys()
    );
}

/// A database that does not answer: the form's post is a 503 page that says so and shows the
/// request id to quote, not a problem document and not the form.
#[tokio::test]
async fn a_database_outage_is_a_503_page_with_the_request_id() {
    let closed = labs_testkit::free_port();
    let url = secrecy::SecretString::from(format!("postgres://postgres@127.0.0.1:{closed}/x"));
    let config = labs_db::PgConfig {
        database_url: None,
        db_max_connections: 1,
        db_acquire_timeout: std::time::Duration::from_secs(1),
        db_statement_timeout: std::time::Duration::from_secs(2),
    };
    let down = labs_db::pg::connect_lazy(&url, &config).unwrap();
    let app = TestApp::builder(down).roomy().without_worker().spawn();
    let answer = submit(
        &app,
        "/api/verify-email",
        &[("token", &"A".repeat(43)), ("password", PASSWORD)],
        &[
            ("sec-fetch-site", "same-origin"),
            ("x-request-id", "pages-outage-1"),
        ],
    )
    .await;
    assert_page(&answer, StatusCode::SERVICE_UNAVAILABLE, "pages-outage-1");
    assert!(!answer.text().contains("<form"), "{}", answer.text());
}
