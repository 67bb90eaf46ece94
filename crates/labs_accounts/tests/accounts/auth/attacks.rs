//! Tokens nobody issued (forged, expired, foreign, badly made) are refused, credential
//! endpoints are rate limited per account and per IP, and a session counts only for its own
//! account.

use labs_testapp::TestApp;
use std::time::Duration;

use super::{PASSWORD, access, get_as, login, post, user};
use axum::http::StatusCode;
use labs_domain::SessionId;
use labs_testapp::insert_user;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

/// Signs `claims` with `header` using the development key (a token from a holder of our key,
/// but with the properties a test wants).
fn forge(claims: &Value) -> String {
    let encoding =
        jsonwebtoken::EncodingKey::from_ed_der(&pkcs8_der(labs_auth::config::DEV_JWT_SIGNING_KEY));
    let keys = labs_auth::jwt::JwtKeys::ed25519(
        labs_auth::config::DEV_JWT_SIGNING_KEY,
        "",
        labs_auth::jwt::TokenPolicy {
            issuer: "labs".into(),
            audience: "labs-api".into(),
            ttl: Duration::from_secs(900),
        },
    )
    .unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(keys.kid().to_owned());
    jsonwebtoken::encode(&header, claims, &encoding).unwrap()
}

fn pkcs8_der(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn forged_expired_and_foreign_tokens_are_refused(db: PgPool) {
    let app = TestApp::new(db.clone());
    user(&db, "ada@example.com", false, true).await;
    let good = access(&login(&app, "ada@example.com").await);
    let parts: Vec<&str> = good.split('.').collect();
    let claims: Value = {
        use base64::Engine;
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(parts[1])
                .unwrap(),
        )
        .unwrap()
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let with = |changes: Value| {
        let mut claims = claims.clone();
        for (key, value) in changes.as_object().unwrap() {
            claims[key] = value.clone();
        }
        claims
    };
    let header_none = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let mut tampered = good.clone();
    tampered.replace_range(good.len() - 4.., "AAAA");
    let hs256 = {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = jsonwebtoken::decode_header(&good).unwrap().kid;
        jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(b"guessed secret of 32 bytes......"),
        )
        .unwrap()
    };
    let cases = [
        ("valid", good.clone(), StatusCode::OK),
        (
            "alg none",
            format!("{header_none}.{}.", parts[1]),
            StatusCode::UNAUTHORIZED,
        ),
        ("tampered signature", tampered, StatusCode::UNAUTHORIZED),
        (
            "changed claims",
            format!(
                "{}.{}.{}",
                parts[0],
                b64(with(json!({"sub": Uuid::now_v7()})).to_string().as_bytes()),
                parts[2]
            ),
            StatusCode::UNAUTHORIZED,
        ),
        ("another algorithm", hs256, StatusCode::UNAUTHORIZED),
        (
            "expired",
            forge(&with(json!({"iat": now - 3600, "exp": now - 1800}))),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "wrong audience",
            forge(&with(json!({"aud": "another-api"}))),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "wrong issuer",
            forge(&with(json!({"iss": "someone-else"}))),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "garbage",
            "not-a-token".to_owned(),
            StatusCode::UNAUTHORIZED,
        ),
    ];
    for (name, token, expected) in cases {
        let answer = get_as(&app, "/api/auth/me", &token).await;
        assert_eq!(answer.status, expected, "{name}: {}", answer.text());
        if expected == StatusCode::UNAUTHORIZED {
            assert_eq!(
                answer.header("content-type"),
                "application/problem+json",
                "{name}"
            );
        }
    }
    let no_token = app.call("GET", "/api/auth/me", None, &[]).await;
    assert_eq!(no_token.status, StatusCode::UNAUTHORIZED);
    assert_eq!(no_token.json()["code"], "not-authenticated");

    // The published key set verifies our tokens and names their key.
    let jwks = app
        .call("GET", "/api/.well-known/jwks.json", None, &[])
        .await
        .json();
    let kid = jsonwebtoken::decode_header(&good).unwrap().kid.unwrap();
    assert_eq!(jwks["keys"][0]["kid"], kid);
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    assert!(jwks["keys"][0].get("d").is_none(), "no private part");
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn credential_endpoints_are_rate_limited_per_account_and_per_ip(db: PgPool) {
    let app = TestApp::builder(db.clone())
        .settings(&[
            "--rate-limit-failures-per-client",
            "3/1m",
            "--rate-limit-per-ip",
            "6/1m",
        ])
        .spawn();
    user(&db, "ada@example.com", false, true).await;
    for _ in 0..3 {
        let answer = post(
            &app,
            "/api/auth/token",
            json!({"email": "ada@example.com", "password": "wrong password"}),
        )
        .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    }
    let limited = post(
        &app,
        "/api/auth/token",
        json!({"email": "ada@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.json()["code"], "rate-limited");
    let retry_after: u64 = limited.header("retry-after").parse().unwrap();
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    // Another account from the same IP still has budget, until the IP's runs out.
    let other = post(
        &app,
        "/api/auth/token",
        json!({"email": "bob@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(other.status, StatusCode::UNAUTHORIZED);
    for email in ["c@example.com", "d@example.com"] {
        post(
            &app,
            "/api/auth/token",
            json!({"email": email, "password": PASSWORD}),
        )
        .await;
    }
    let by_ip = post(
        &app,
        "/api/auth/token",
        json!({"email": "e@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(by_ip.status, StatusCode::TOO_MANY_REQUESTS);
    // Each family has its own budget.
    let reset = post(
        &app,
        "/api/auth/password-reset",
        json!({"email": "ada@example.com"}),
    )
    .await;
    assert_eq!(reset.status, StatusCode::ACCEPTED);
    // What the accepted requests emailed is sent.
    app.drain().await;
}

/// The session check answers only for the session's own account: a token whose subject is
/// another account (which only a forged signature could produce) finds no one.
#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn a_session_counts_only_for_its_own_account(db: PgPool) {
    let ada = insert_user(&db, "ada@example.com").await;
    let bob = insert_user(&db, "bob@example.com").await;
    let session = SessionId::generate();
    let expires = time::OffsetDateTime::now_utc() + Duration::from_secs(3600);
    labs_accounts::db::credentials::start_session(&db, session, ada, 0, b"refresh-hash", expires)
        .await
        .unwrap();
    let owner = labs_accounts::db::users::by_live_session(&db, ada, session)
        .await
        .unwrap();
    assert_eq!(owner.map(|user| user.id), Some(ada));
    let other = labs_accounts::db::users::by_live_session(&db, bob, session)
        .await
        .unwrap();
    assert!(other.is_none(), "{other:?}");
}
