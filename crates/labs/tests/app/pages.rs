//! The pages the emailed links open (`labs_accounts::pages`), in process on a fresh database:
//! the links the API writes point at them, a GET shows a form and spends nothing, a POST
//! verifies or resets through the API's own protocol, every bad link or form is a 4xx page,
//! a cross-site post is refused, and the headers hold. The same flows in a real browser, from
//! a real worker's email: `process::emailed_links_open_pages_that_verify_and_reset_in_a_browser`.

use crate::common::{auth_app, call};
use axum::Router;
use axum::http::StatusCode;
use labs_db::PgPool;
use labs_testkit::Answer;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";
const NEW_PASSWORD: &str = "a new password, long enough";

/// What a browser sends with a form of the page itself: `Sec-Fetch-Site: same-origin`, and
/// `Origin: null` (the pages' `no-referrer` policy makes a form's origin opaque).
const SAME_ORIGIN: &[(&str, &str)] = &[("sec-fetch-site", "same-origin"), ("origin", "null")];

/// The API with budgets above what a test makes.
fn roomy_app(db: PgPool) -> Router {
    auth_app(
        db,
        &[
            "--rate-limit-per-account",
            "100/1m",
            "--rate-limit-per-ip",
            "100/1m",
        ],
    )
}

/// POSTs `fields` form-encoded, as a browser submits a page's form.
async fn submit(
    app: &Router,
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
    app: &Router,
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
    labs_testkit::send(app, request.body(axum::body::Body::from(body)).unwrap()).await
}

async fn get(app: &Router, path: &str) -> Answer {
    call(app, "GET", path, None, &[]).await
}

async fn login(app: &Router, email: &str, password: &str) -> Answer {
    call(
        app,
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

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn the_verification_link_opens_a_form_that_confirms_the_address(db: PgPool) {
    let app = roomy_app(db.clone());
    let signup = call(
        &app,
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
        let page = get(&app, path_of(&link)).await;
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
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn the_reset_link_opens_a_form_that_sets_a_new_password(db: PgPool) {
    let app = roomy_app(db.clone());
    crate::common::insert_user_with_password(&db, "ada@example.com", PASSWORD, false, true).await;
    let asked = call(
        &app,
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

    let page = get(&app, path_of(&link)).await;
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
}

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
            &get(&app, path).await,
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
    crate::common::insert_user_with_password(&db, "ada@example.com", PASSWORD, false, true).await;
    call(
        &app,
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
        let page = get(&app, &path).await;
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
    let css = get(&app, "/api/pages.css").await;
    assert_eq!(css.status, StatusCode::OK);
    assert_eq!(css.header("content-type"), "text/css; charset=utf-8");
    assert!(css.text().contains("main {"), "{}", css.text());

    // HTML for people, not API operations.
    let spec = get(&app, "/api/openapi.json").await.json();
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
    let app = roomy_app(down);
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
