//! The docs UI's security headers and the `LABS_DOCS` switch, over the real API router.

use axum::http::StatusCode;
use labs_testapp::TestApp;
use sqlx::PgPool;

/// The docs' policy: Swagger UI's own files and its logo's `<style>` (by hash), `data:` icons,
/// fetches to this origin, no framing.
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'sha256-RL3ie0nH+Lzz2YNqQN83mnU0J1ot4QL7b99vMdIX99w='; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'none'";

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn the_docs_pages_carry_their_own_strict_csp(db: PgPool) {
    let app = TestApp::new(db);
    for path in [
        "/api/docs",
        "/api/docs/",
        "/api/docs/swagger-initializer.js",
        "/api/docs/swagger-ui-bundle.js",
    ] {
        let answer = app.get(path).await;
        assert!(!answer.status.is_server_error(), "{path}");
        let csp = answer.header("content-security-policy");
        assert_eq!(csp, DOCS_CSP, "{path}");
        assert!(!csp.contains("unsafe"), "{path}");
        assert_eq!(answer.header("x-frame-options"), "DENY");
        assert_eq!(answer.header("x-content-type-options"), "nosniff");
    }
    // The index loads scripts from files only (an inline script would need 'unsafe-inline').
    let index = app.get("/api/docs/").await.text();
    assert!(!index.contains("<script>"), "{index}");
    // No badge from swagger.io's validator: the CSP would block it, and it leaks the spec URL.
    let initializer = app.get("/api/docs/swagger-initializer.js").await.text();
    assert!(
        initializer.contains(r#""validatorUrl": "none""#),
        "{initializer}"
    );
    // The spec and the API are API answers, with the API's policy.
    for path in ["/api/openapi.json", "/api/"] {
        let answer = app.get(path).await;
        assert_eq!(
            answer.header("content-security-policy"),
            "default-src 'none'; frame-ancestors 'none'",
            "{path}"
        );
    }
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn with_docs_off_the_ui_is_gone_but_the_spec_stays(db: PgPool) {
    let app = TestApp::builder(db).http(|http| http.docs = false).spawn();
    for path in [
        "/api/docs",
        "/api/docs/",
        "/api/docs/swagger-initializer.js",
    ] {
        let answer = app.get(path).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(answer.header("content-type"), "application/problem+json");
    }
    let spec = app.get("/api/openapi.json").await;
    assert_eq!(spec.status, StatusCode::OK);
    assert_eq!(spec.json()["openapi"], "3.1.0");
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn the_style_hash_in_the_docs_csp_is_that_of_the_served_swagger_ui(db: PgPool) {
    use base64::Engine;
    let app = TestApp::new(db);
    let preset = app
        .get("/api/docs/swagger-ui-standalone-preset.js")
        .await
        .text();
    // Every `<style>` element Swagger UI renders (React's `createElement("style", null, css)`).
    let marker = r#""style",null,""#;
    let hashes: Vec<String> = preset
        .match_indices(marker)
        .map(|(at, _)| {
            let css = &preset[at + marker.len()..];
            let css = &css[..css.find('"').unwrap()];
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, css.as_bytes());
            let hash = base64::engine::general_purpose::STANDARD.encode(digest.as_ref());
            format!("'sha256-{hash}'")
        })
        .collect();
    assert_eq!(
        hashes.len(),
        1,
        "Swagger UI's inline styles changed: {hashes:?}"
    );
    let csp = app.get("/api/docs/").await;
    let csp = csp.header("content-security-policy");
    assert!(
        csp.contains(&hashes[0]),
        "update DOCS_CSP in crates/labs_api/src/docs.rs to {}",
        hashes[0]
    );
}
