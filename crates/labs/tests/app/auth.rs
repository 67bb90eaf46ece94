//! Authentication over HTTP, against a fresh database per test, the real Redis, and (where an
//! email matters) a real SMTP server fed by the real worker: every flow end to end, and the
//! attacks each defence exists for.

use std::time::Duration;

use crate::common::{TRUSTED_ORIGIN, auth_app, call, insert_user, job_queue};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use labs_db::PgPool;
use labs_domain::{SessionId, UserId};
use labs_jobs::Handler;
use labs_jobs::jobs::RelayOutbox;
use labs_testkit::{Answer, SmtpServer, send, shared_redis_url, unique_name};
use labs_worker::WorkerContext;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const PASSWORD: &str = "correct horse battery staple";

async fn post(app: &Router, path: &str, body: Value) -> Answer {
    call(app, "POST", path, Some(body), &[]).await
}

async fn get_as(app: &Router, path: &str, token: &str) -> Answer {
    call(
        app,
        "GET",
        path,
        None,
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await
}

/// An account made directly in the database, with [`PASSWORD`].
async fn user(db: &PgPool, email: &str, admin: bool, verified: bool) -> UserId {
    crate::common::insert_user_with_password(db, email, PASSWORD, admin, verified).await
}

/// The API with budgets above what a test makes: for tests of something else than the limits.
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

async fn login(app: &Router, email: &str) -> Value {
    let answer = post(
        app,
        "/api/auth/token",
        json!({"email": email, "password": PASSWORD}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    answer.json()
}

fn access(tokens: &Value) -> String {
    tokens["access_token"].as_str().unwrap().to_owned()
}

/// The real worker, sending through a real SMTP server, with the outbox relayed as the
/// scheduler does (here every 100 ms).
struct Mail {
    smtp: SmtpServer,
    stop: CancellationToken,
    seen: std::sync::Mutex<Vec<String>>,
}

impl Mail {
    fn start(db: &PgPool) -> Self {
        let smtp = SmtpServer::start();
        let mailer = crate::common::mailer(Some(smtp.port));
        let ctx = WorkerContext::new(
            db.clone(),
            job_queue(&shared_redis_url(), &unique_name("mail")),
            mailer,
        );
        let stop = CancellationToken::new();
        let config = labs_jobs::RuntimeConfig {
            concurrency: 2,
            drain: Duration::from_secs(2),
        };
        tokio::spawn(labs_worker::run_worker(ctx.clone(), config, stop.clone()));
        let relay_stop = stop.clone();
        tokio::spawn(async move {
            while !relay_stop.is_cancelled() {
                let _ = RelayOutbox::default().handle(&ctx).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Self {
            smtp,
            stop,
            seen: std::sync::Mutex::default(),
        }
    }

    /// Waits for a message not returned before, and returns it decoded. (Polls with async
    /// sleeps: the worker runs on this test's runtime. The SMTP server's maildir has no order,
    /// so "new" is "not seen", and each test reads a message before causing the next.)
    async fn next(&self) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let new = {
                let mut seen = self.seen.lock().unwrap();
                let new = self.smtp.messages().into_iter().find(|m| !seen.contains(m));
                if let Some(new) = &new {
                    seen.push(new.clone());
                }
                new
            };
            if let Some(new) = new {
                return crate::common::decode_quoted_printable(&new);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no new email within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn count(&self) -> usize {
        self.smtp.messages().len()
    }
}

impl Drop for Mail {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The token of the first `<page>?token=` link in `message`.
fn link_token(message: &str, page: &str) -> String {
    let marker = format!("/{page}?token=");
    let start = message
        .find(&marker)
        .unwrap_or_else(|| panic!("no {page} link in {message}"))
        + marker.len();
    message[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

/// The current TOTP code for a base32 secret, from pyotp (an independent implementation).
fn pyotp_now(secret: &str) -> String {
    let python = labs_testkit::test_python();
    let output = std::process::Command::new(python)
        .args([
            "-c",
            "import pyotp, sys; print(pyotp.TOTP(sys.argv[1]).now())",
            secret,
        ])
        .output()
        .expect("pyotp runs (scripts/python-tools.sh installs it)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn signup_verification_login_refresh_and_logout_end_to_end(db: PgPool) {
    let app = auth_app(db.clone(), &[]);
    let mail = Mail::start(&db);

    let answer = post(
        &app,
        "/api/auth/signup",
        json!({"email": "Ada@Example.com", "password": PASSWORD, "fullName": "Ada"}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text());
    let message = mail.next().await;
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
    let out = call(
        &app,
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
    assert_eq!(mail.count(), 1, "one email: the verification");
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn signup_with_a_taken_email_tells_the_owner_not_the_visitor(db: PgPool) {
    let app = auth_app(db.clone(), &[]);
    let mail = Mail::start(&db);
    user(&db, "ada@example.com", false, true).await;
    let taken = post(
        &app,
        "/api/auth/signup",
        json!({"email": "ada@example.com", "password": "another password"}),
    )
    .await;
    let fresh = post(
        &app,
        "/api/auth/signup",
        json!({"email": "bob@example.com", "password": "another password"}),
    )
    .await;
    assert_eq!(taken.status, StatusCode::ACCEPTED);
    assert_eq!(taken.json(), fresh.json(), "the same answer either way");
    let messages = [mail.next().await, mail.next().await];
    let to_ada = messages
        .iter()
        .find(|m| m.contains("To: ada@example.com"))
        .unwrap();
    assert!(to_ada.contains("You already have an account"), "{to_ada}");
    assert!(to_ada.contains("/reset-password?token="), "{to_ada}");
    let users = labs_accounts::db::users::count(&db).await.unwrap();
    assert_eq!(users, 2);

    let short = post(
        &app,
        "/api/auth/signup",
        json!({"email": "c@example.com", "password": "short"}),
    )
    .await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(short.header("content-type"), "application/problem+json");
    let long = post(
        &app,
        "/api/auth/signup",
        json!({"email": "c@example.com", "password": "x".repeat(100_000)}),
    )
    .await;
    assert_eq!(long.status, StatusCode::UNPROCESSABLE_ENTITY);
    let bad_email = post(
        &app,
        "/api/auth/signup",
        json!({"email": "not-an-email", "password": PASSWORD}),
    )
    .await;
    assert_eq!(bad_email.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Found by schemathesis: Postgres text cannot hold NUL, so a name with one must be a 422,
    // not a failed INSERT.
    let nul = post(
        &app,
        "/api/auth/signup",
        json!({"email": "d@example.com", "password": PASSWORD, "fullName": "a\u{0}b"}),
    )
    .await;
    assert_eq!(nul.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(nul.json()["errors"][0]["pointer"], "/fullName");
    assert_eq!(nul.json()["errors"][0]["code"], "control-characters");

    // Every failing field at once, each located and named by its rule: not only the first.
    let everything_wrong = post(
        &app,
        "/api/auth/signup",
        json!({"email": "not-an-email", "password": "short", "fullName": "x".repeat(201), "age": 3}),
    )
    .await;
    assert_eq!(everything_wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    let problem = everything_wrong.json();
    assert_eq!(problem["code"], "invalid-body");
    let located: Vec<(&str, &str)> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["pointer"].as_str().unwrap(), e["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        located,
        [
            ("/age", "unknown-field"),
            ("/email", "invalid-email"),
            ("/fullName", "too-long"),
            ("/password", "too-short"),
        ],
        "{problem}"
    );
    let nothing = post(&app, "/api/auth/signup", json!({})).await;
    assert_eq!(nothing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(nothing.json()["errors"][0]["pointer"], "/email");
    assert_eq!(nothing.json()["errors"][1]["pointer"], "/password");
    assert_eq!(nothing.json()["errors"][1]["code"], "missing");
    // Nothing of it was stored.
    assert_eq!(labs_accounts::db::users::count(&db).await.unwrap(), 2);
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn an_unknown_email_and_a_wrong_password_look_the_same(db: PgPool) {
    let app = auth_app(db.clone(), &[]);
    user(&db, "ada@example.com", false, true).await;
    let mut bodies = Vec::new();
    for (email, password) in [
        ("ada@example.com", "wrong password"),
        ("nobody@example.com", PASSWORD),
        ("not an email", PASSWORD),
    ] {
        let answer = post(
            &app,
            "/api/auth/token",
            json!({"email": email, "password": password}),
        )
        .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        let mut body = answer.json();
        body.as_object_mut().unwrap().remove("requestId");
        bodies.push(body);
    }
    assert_eq!(bodies[0], bodies[1]);
    assert_eq!(bodies[0], bodies[2]);
    assert_eq!(bodies[0]["code"], "invalid-credentials");
    // The same time too: the unknown email is checked against a decoy hash. (Timing is
    // measured in bench/, not asserted here; see docs/SECURITY.md.)

    let huge = post(
        &app,
        "/api/auth/token",
        json!({"email": "ada@example.com", "password": "x".repeat(100_000)}),
    )
    .await;
    assert_eq!(
        huge.status,
        StatusCode::UNAUTHORIZED,
        "over-long input is refused before hashing"
    );

    // The OAuth 2.0 password form (the docs' Authorize button) works too.
    let form = Request::post("/api/auth/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(format!(
            "grant_type=password&username=ada%40example.com&password={}",
            PASSWORD.replace(' ', "+")
        )))
        .unwrap();
    let answer = send(&app, form).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert!(answer.json()["access_token"].is_string());
}

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
    let app = auth_app(db.clone(), &[]);
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
    let no_token = call(&app, "GET", "/api/auth/me", None, &[]).await;
    assert_eq!(no_token.status, StatusCode::UNAUTHORIZED);
    assert_eq!(no_token.json()["code"], "not-authenticated");

    // The published key set verifies our tokens and names their key.
    let jwks = call(&app, "GET", "/api/.well-known/jwks.json", None, &[])
        .await
        .json();
    let kid = jsonwebtoken::decode_header(&good).unwrap().kid.unwrap();
    assert_eq!(jwks["keys"][0]["kid"], kid);
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    assert!(jwks["keys"][0].get("d").is_none(), "no private part");
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn email_codes_log_in_once_and_lock_after_five_wrong_tries(db: PgPool) {
    // The lock, not the rate limit, is under test: budgets above the attempts made here.
    let app = roomy_app(db.clone());
    let mail = Mail::start(&db);
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
    let message = mail.next().await;
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
    let code = code_in(&mail.next().await);
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
    let code = code_in(&mail.next().await);
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

/// The 6-digit code on its own line of a login-code email.
fn code_in(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .find(|line| line.len() == 6 && line.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| panic!("no code in {message}"))
        .to_owned()
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn totp_enrolment_second_step_replay_recovery_and_disable(db: PgPool) {
    // This test makes more attempts than the default budgets allow.
    let app = roomy_app(db.clone());
    user(&db, "ada@example.com", false, true).await;
    let tokens = login(&app, "ada@example.com").await;
    let bearer = format!("Bearer {}", access(&tokens));
    let auth = [("authorization", bearer.as_str())];

    let enrolment = call(&app, "POST", "/api/auth/totp/enroll", None, &auth).await;
    assert_eq!(enrolment.status, StatusCode::OK, "{}", enrolment.text());
    let enrolment = enrolment.json();
    let secret = enrolment["secret"].as_str().unwrap().to_owned();
    assert!(
        enrolment["otpauthUri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/labs:ada@example.com?secret=")
    );
    assert!(enrolment["qrSvg"].as_str().unwrap().contains("<svg"));
    let stored: Vec<u8> = sqlx::query_scalar("SELECT totp_secret FROM users")
        .fetch_one(&db)
        .await
        .unwrap();
    assert!(
        !stored.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "sealed at rest"
    );

    let wrong = call(
        &app,
        "POST",
        "/api/auth/totp/confirm",
        Some(json!({"code": "000000"})),
        &auth,
    )
    .await;
    assert!(wrong.status == StatusCode::UNAUTHORIZED || pyotp_now(&secret) == "000000");
    let code = pyotp_now(&secret);
    let confirmed = call(
        &app,
        "POST",
        "/api/auth/totp/confirm",
        Some(json!({"code": code})),
        &auth,
    )
    .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.text());
    let recovery: Vec<String> =
        serde_json::from_value(confirmed.json()["recoveryCodes"].clone()).unwrap();
    assert_eq!(recovery.len(), 10);

    // The password step now gives a challenge, never tokens.
    let first = post(
        &app,
        "/api/auth/token",
        json!({"email": "ada@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(first.status, StatusCode::FORBIDDEN);
    let challenge = first.json();
    assert_eq!(challenge["code"], "mfa-required");
    assert!(challenge.get("access_token").is_none());
    assert_eq!(first.headers["content-type"], "application/problem+json");
    // The members the document's LoginRefused schema names, of its types.
    assert_eq!(challenge["expiresIn"], 300, "LABS_MFA_CHALLENGE_TTL: 5m");
    assert_eq!(challenge["setCookies"], false);
    let mfa_token = challenge["mfaToken"].as_str().unwrap().to_owned();

    // The code that confirmed enrolment was used: replaying it in its window is refused.
    let replay = post(
        &app,
        "/api/auth/totp/verify",
        json!({"mfaToken": mfa_token, "code": code}),
    )
    .await;
    assert_eq!(
        replay.status,
        StatusCode::UNAUTHORIZED,
        "replay within the window"
    );
    assert_eq!(replay.json()["code"], "invalid-code");

    // A recovery code works once.
    let by_recovery = post(
        &app,
        "/api/auth/totp/verify",
        json!({"mfaToken": mfa_token, "code": recovery[0].to_uppercase()}),
    )
    .await;
    assert_eq!(by_recovery.status, StatusCode::OK, "{}", by_recovery.text());
    let session = by_recovery.json();
    let spent = post(
        &app,
        "/api/auth/totp/verify",
        json!({"mfaToken": mfa_token, "code": recovery[1]}),
    )
    .await;
    assert_eq!(
        spent.status,
        StatusCode::UNAUTHORIZED,
        "the challenge is single use"
    );
    let again = post(
        &app,
        "/api/auth/token",
        json!({"email": "ada@example.com", "password": PASSWORD}),
    )
    .await
    .json();
    let reused = post(
        &app,
        "/api/auth/totp/verify",
        json!({"mfaToken": again["mfaToken"], "code": recovery[0]}),
    )
    .await;
    assert_eq!(
        reused.status,
        StatusCode::UNAUTHORIZED,
        "a recovery code is single use"
    );

    // Wrong codes exhaust the challenge after 5 tries.
    let challenge = post(
        &app,
        "/api/auth/token",
        json!({"email": "ada@example.com", "password": PASSWORD}),
    )
    .await
    .json();
    for _ in 0..5 {
        post(
            &app,
            "/api/auth/totp/verify",
            json!({"mfaToken": challenge["mfaToken"], "code": "abcde-fghjk"}),
        )
        .await;
    }
    let exhausted = post(
        &app,
        "/api/auth/totp/verify",
        json!({"mfaToken": challenge["mfaToken"], "code": recovery[2]}),
    )
    .await;
    assert_eq!(exhausted.json()["code"], "invalid-mfa-token");

    // Turning it off needs a fresh token: a refreshed one is not.
    let refreshed = post(
        &app,
        "/api/auth/refresh",
        json!({"refreshToken": session["refresh_token"]}),
    )
    .await
    .json();
    let stale = format!("Bearer {}", access(&refreshed));
    let refused = call(
        &app,
        "POST",
        "/api/auth/totp/disable",
        Some(json!({"code": recovery[3]})),
        &[("authorization", &stale)],
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.json()["code"], "fresh-login-required");
    let fresh = format!("Bearer {}", access(&session));
    let off = call(
        &app,
        "POST",
        "/api/auth/totp/disable",
        Some(json!({"code": recovery[3]})),
        &[("authorization", &fresh)],
    )
    .await;
    assert_eq!(off.status, StatusCode::NO_CONTENT, "{}", off.text());
    login(&app, "ada@example.com").await;
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn a_password_reset_sets_the_password_and_ends_every_session(db: PgPool) {
    let app = auth_app(db.clone(), &[]);
    let mail = Mail::start(&db);
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
    let token = link_token(&mail.next().await, "reset-password");

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
        mail.next()
            .await
            .contains("Subject: Your password was changed")
    );
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn browser_sessions_use_cookies_and_refuse_cross_origin_changes(db: PgPool) {
    let app = auth_app(db.clone(), &[]);
    user(&db, "ada@example.com", false, true).await;
    let answer = post(
        &app,
        "/api/auth/token",
        json!({"email": "ada@example.com", "password": PASSWORD, "setCookies": true}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    for token in ["refresh_token", "access_token"] {
        assert!(
            answer.json().get(token).is_none(),
            "{token} not readable by scripts: {}",
            answer.text()
        );
    }
    let cookies: Vec<&str> = answer
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    let access_cookie = cookies
        .iter()
        .find(|c| c.starts_with("__Host-labs_access="))
        .unwrap();
    let refresh_cookie = cookies
        .iter()
        .find(|c| c.starts_with("__Host-labs_refresh="))
        .unwrap();
    // `__Host-`: browsers take them only with `Secure`, `Path=/` and no `Domain`, so a
    // sibling subdomain cannot plant one.
    for cookie in [access_cookie, refresh_cookie] {
        for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/;"] {
            assert!(cookie.contains(attribute), "{cookie}");
        }
        assert!(!cookie.to_lowercase().contains("domain="), "{cookie}");
    }
    let jar = format!(
        "{}; {}",
        access_cookie.split(';').next().unwrap(),
        refresh_cookie.split(';').next().unwrap()
    );

    let me = call(&app, "GET", "/api/auth/me", None, &[("cookie", &jar)]).await;
    assert_eq!(me.status, StatusCode::OK);

    // A second cookie of the same name (planted by a sibling site with a wider Domain) is
    // refused, in either order, instead of letting the first one win.
    let planted = "__Host-labs_access=planted.by.another.site";
    for doubled in [format!("{planted}; {jar}"), format!("{jar}; {planted}")] {
        let answer = call(&app, "GET", "/api/auth/me", None, &[("cookie", &doubled)]).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text());
        assert_eq!(answer.json()["code"], "duplicate-cookie");
    }
    let two_headers = call(
        &app,
        "GET",
        "/api/auth/me",
        None,
        &[("cookie", jar.as_str()), ("cookie", planted)],
    )
    .await;
    assert_eq!(two_headers.status, StatusCode::BAD_REQUEST);

    // A cross-site page cannot make the browser refresh or log out with these cookies.
    let forged = [
        ("cookie", jar.as_str()),
        ("sec-fetch-site", "cross-site"),
        ("origin", "https://evil.example"),
    ];
    for path in ["/api/auth/refresh", "/api/auth/logout"] {
        let answer = call(&app, "POST", path, Some(json!({})), &forged).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(answer.json()["code"], "csrf");
        assert_eq!(answer.header("content-type"), "application/problem+json");
    }
    // A Bearer request from anywhere is unaffected (a forged form cannot send a header).
    let tokens = login(&app, "ada@example.com").await;
    let bearer = format!("Bearer {}", access(&tokens));
    let cross = [
        ("authorization", bearer.as_str()),
        ("sec-fetch-site", "cross-site"),
        ("origin", "https://evil.example"),
    ];
    let answer = call(&app, "POST", "/api/auth/logout", Some(json!({})), &cross).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);

    // Same origin and the trusted app origin pass; refresh by cookie rotates the cookies.
    let trusted = [
        ("cookie", jar.as_str()),
        ("sec-fetch-site", "same-site"),
        ("origin", TRUSTED_ORIGIN),
    ];
    let refreshed = call(&app, "POST", "/api/auth/refresh", Some(json!({})), &trusted).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.text());
    let new_refresh = refreshed
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("__Host-labs_refresh="))
        .unwrap();
    let jar = format!(
        "{}; {}",
        access_cookie.split(';').next().unwrap(),
        new_refresh.split(';').next().unwrap()
    );
    let same = [("cookie", jar.as_str()), ("sec-fetch-site", "same-origin")];
    let out = call(&app, "POST", "/api/auth/logout", Some(json!({})), &same).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.text());
    let cleared: Vec<&str> = out
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        cleared.iter().all(|c| c.contains("Max-Age=0")),
        "{cleared:?}"
    );
}

/// The session cookies of a fresh cookie login, as a `cookie` header.
async fn cookie_login(app: &Router, email: &str) -> String {
    let answer = post(
        app,
        "/api/auth/token",
        json!({"email": email, "password": PASSWORD, "setCookies": true}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    jar_of(&answer)
}

/// The `cookie` header a browser sends after `answer` set the session cookies.
fn jar_of(answer: &Answer) -> String {
    answer
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .filter(|pair| pair.starts_with("__Host-labs_"))
        .collect::<Vec<_>>()
        .join("; ")
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn refresh_and_logout_take_no_body(db: PgPool) {
    let app = auth_app(db.clone(), &[]);
    user(&db, "ada@example.com", false, true).await;
    let jar = cookie_login(&app, "ada@example.com").await;
    let same = |jar: &str| {
        [
            ("cookie", jar.to_owned()),
            ("sec-fetch-site", "same-origin".to_owned()),
        ]
    };
    let bare = |path: &'static str, jar: &str, content: Option<(&'static str, &'static str)>| {
        let mut request = Request::builder().method("POST").uri(path);
        for (name, value) in same(jar) {
            request = request.header(name, value);
        }
        let body = match content {
            Some((content_type, body)) => {
                request = request.header("content-type", content_type);
                Body::from(body)
            }
            None => Body::empty(),
        };
        let request = request.body(body).unwrap();
        let app = app.clone();
        async move { send(&app, request).await }
    };

    // A bare POST (no body, no Content-Type), as `fetch(url, {method: "POST"})` sends it.
    let refreshed = bare("/api/auth/refresh", &jar, None).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.text());
    let jar = jar_of(&refreshed);
    // The JSON `null` (what a generated client sends for "no body") is no body too.
    let refreshed = bare(
        "/api/auth/refresh",
        &jar,
        Some(("application/json", "null")),
    )
    .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.text());
    let jar = jar_of(&refreshed);
    // A body that is there must still be JSON.
    let wrong = bare(
        "/api/auth/refresh",
        &jar,
        Some(("text/plain", "refresh please")),
    )
    .await;
    assert_eq!(
        wrong.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "{}",
        wrong.text()
    );
    assert_eq!(wrong.headers["content-type"], "application/problem+json");
    // An empty HTML form post (which a cross-site page can send without a preflight) is no
    // JSON request, empty or not.
    let form = bare(
        "/api/auth/refresh",
        &jar,
        Some(("application/x-www-form-urlencoded", "")),
    )
    .await;
    assert_eq!(
        form.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "{}",
        form.text()
    );
    let wrong = bare("/api/auth/refresh", &jar, Some(("application/json", "[]"))).await;
    assert_eq!(
        wrong.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        wrong.text()
    );

    let out = bare("/api/auth/logout", &jar, None).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.text());
    let after = bare("/api/auth/refresh", &jar, None).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED, "the session ended");
    // No cookie and no body: 401, not 415.
    let nobody = bare("/api/auth/logout", "", None).await;
    assert_eq!(nobody.status, StatusCode::UNAUTHORIZED, "{}", nobody.text());
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn credential_endpoints_are_rate_limited_per_account_and_per_ip(db: PgPool) {
    let app = auth_app(
        db.clone(),
        &[
            "--rate-limit-failures-per-client",
            "3/1m",
            "--rate-limit-per-ip",
            "6/1m",
        ],
    );
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
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn the_users_api_is_for_admins_only(db: PgPool) {
    let app = auth_app(db.clone(), &[]);
    user(&db, "admin@example.com", true, true).await;
    let ada = user(&db, "ada@example.com", false, true).await;
    let admin = format!("Bearer {}", access(&login(&app, "admin@example.com").await));
    let plain = format!("Bearer {}", access(&login(&app, "ada@example.com").await));
    let as_admin = [("authorization", admin.as_str())];
    let as_ada = [("authorization", plain.as_str())];

    for (method, path) in [
        ("GET", "/api/users".to_owned()),
        ("GET", format!("/api/users/{ada}")),
        ("DELETE", format!("/api/users/{ada}")),
        ("GET", "/api/admin/jobs".to_owned()),
    ] {
        let answer = call(&app, method, &path, None, &as_ada).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(answer.json()["code"], "admin-only");
        let anonymous = call(&app, method, &path, None, &[]).await;
        assert_eq!(
            anonymous.status,
            StatusCode::UNAUTHORIZED,
            "{method} {path}"
        );
    }

    let created = call(
        &app,
        "POST",
        "/api/users",
        Some(json!({"email": "Bob@Example.com", "password": PASSWORD, "fullName": "Bob"})),
        &as_admin,
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let bob = created.json()["id"].as_str().unwrap().to_owned();
    let duplicate = call(
        &app,
        "POST",
        "/api/users",
        Some(json!({"email": "bob@example.com", "password": PASSWORD})),
        &as_admin,
    )
    .await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    assert_eq!(duplicate.json()["code"], "email-taken");

    let page = call(&app, "GET", "/api/users?offset=1&limit=1", None, &as_admin)
        .await
        .json();
    assert_eq!(page["total"], 3);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["email"], "ada@example.com");
    let past_the_end = call(
        &app,
        "GET",
        "/api/users?offset=100&limit=10",
        None,
        &as_admin,
    )
    .await
    .json();
    assert_eq!(past_the_end["items"], json!([]));
    assert_eq!(past_the_end["total"], 3);
    // A validation failure of the query: 422 (was 400), with every failing parameter named.
    let bad = call(
        &app,
        "GET",
        "/api/users?limit=1000&offset=2000000",
        None,
        &as_admin,
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let refused = bad.json();
    assert_eq!(refused["code"], "invalid-query");
    assert_eq!(refused["errors"][0]["pointer"], "limit");
    assert_eq!(refused["errors"][0]["code"], "out-of-range");
    assert_eq!(refused["errors"][1]["pointer"], "offset");

    let renamed = call(
        &app,
        "PATCH",
        &format!("/api/users/{bob}"),
        Some(json!({"fullName": "Robert", "isAdmin": true})),
        &as_admin,
    )
    .await;
    assert_eq!(renamed.status, StatusCode::OK);
    assert_eq!(renamed.json()["fullName"], "Robert");
    assert_eq!(renamed.json()["isAdmin"], true);
    assert_eq!(
        renamed.json()["emailVerified"],
        true,
        "same address: still verified"
    );
    // A new address is not verified by the admin who typed it: its owner proves it.
    let moved = call(
        &app,
        "PATCH",
        &format!("/api/users/{bob}"),
        Some(json!({"email": "robert@example.com"})),
        &as_admin,
    )
    .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.text());
    assert_eq!(moved.json()["email"], "robert@example.com");
    assert_eq!(moved.json()["emailVerified"], false);
    let clash = call(
        &app,
        "PATCH",
        &format!("/api/users/{bob}"),
        Some(json!({"email": "ada@example.com"})),
        &as_admin,
    )
    .await;
    assert_eq!(clash.status, StatusCode::CONFLICT);

    // Deactivating an account ends its sessions at once.
    let off = call(
        &app,
        "PATCH",
        &format!("/api/users/{ada}"),
        Some(json!({"isActive": false})),
        &as_admin,
    )
    .await;
    assert_eq!(off.status, StatusCode::OK);
    assert_eq!(
        call(&app, "GET", "/api/auth/me", None, &as_ada)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    let missing = Uuid::now_v7();
    for (method, body) in [
        ("GET", None),
        ("PATCH", Some(json!({"fullName": "x"}))),
        ("DELETE", None),
    ] {
        let answer = call(
            &app,
            method,
            &format!("/api/users/{missing}"),
            body,
            &as_admin,
        )
        .await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{method}");
    }
    // A validation failure of the path: 422 (was 400), naming the parameter.
    let not_an_id = call(&app, "GET", "/api/users/not-a-uuid", None, &as_admin).await;
    assert_eq!(not_an_id.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(not_an_id.json()["errors"][0]["pointer"], "id");
    let deleted = call(
        &app,
        "DELETE",
        &format!("/api/users/{bob}"),
        None,
        &as_admin,
    )
    .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        call(&app, "GET", &format!("/api/users/{bob}"), None, &as_admin)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let stats = call(&app, "GET", "/api/admin/jobs", None, &as_admin).await;
    assert_eq!(stats.status, StatusCode::OK, "{}", stats.text());
    assert!(stats.json()["outbox"].is_number());
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn a_login_rehashes_a_password_made_with_old_parameters(db: PgPool) {
    let app = auth_app(db.clone(), &[]);
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

// --- pre-hijacked accounts, address existence, attempt caps, sessions -----------------------

/// Turns TOTP on through the API for the caller of `bearer`; its base32 secret.
async fn turn_totp_on(app: &Router, bearer: &str) -> String {
    let auth = [("authorization", bearer)];
    let enrolment = call(app, "POST", "/api/auth/totp/enroll", None, &auth).await;
    assert_eq!(enrolment.status, StatusCode::OK, "{}", enrolment.text());
    let secret = enrolment.json()["secret"].as_str().unwrap().to_owned();
    let code = pyotp_now(&secret);
    let confirm = json!({"code": code});
    let confirmed = call(app, "POST", "/api/auth/totp/confirm", Some(confirm), &auth).await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.text());
    secret
}

/// What a stranger who signed up with someone else's address sets up before its owner
/// arrives: a password, a live session (possible where unverified accounts may log in), and
/// TOTP on top. Returns the stranger's tokens.
async fn pre_hijack(app: &Router, email: &str, password: &str) -> Value {
    let signup = json!({"email": email, "password": password});
    let answer = post(app, "/api/auth/signup", signup).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text());
    let login = json!({"email": email, "password": password});
    let tokens = post(app, "/api/auth/token", login).await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.text());
    let tokens = tokens.json();
    turn_totp_on(app, &format!("Bearer {}", access(&tokens))).await;
    tokens
}

/// After the owner took the address over: none of what the stranger set still works.
async fn assert_stranger_is_out(app: &Router, email: &str, password: &str, stranger: &Value) {
    let login = json!({"email": email, "password": password});
    let again = post(app, "/api/auth/token", login).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED, "{}", again.text());
    let me = get_as(app, "/api/auth/me", &access(stranger)).await;
    assert_eq!(
        me.status,
        StatusCode::UNAUTHORIZED,
        "the stranger's session ended"
    );
    let refresh = json!({"refreshToken": stranger["refresh_token"]});
    let refreshed = post(app, "/api/auth/refresh", refresh).await;
    assert_eq!(refreshed.status, StatusCode::UNAUTHORIZED);
}

const STRANGER_PASSWORD: &str = "the attacker chose this one";

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn an_email_code_login_discards_what_a_stranger_set_before_the_address_was_verified(
    db: PgPool,
) {
    // The weakest setting: unverified accounts may log in, so the stranger gets a session.
    let app = auth_app(db.clone(), &["--require-verified-email", "false"]);
    let mail = Mail::start(&db);
    let stranger = pre_hijack(&app, "victim@example.com", STRANGER_PASSWORD).await;
    let _verification_link = mail.next().await;

    // The address's owner logs in with a code sent to it: the first proof of control.
    post(
        &app,
        "/api/auth/otp",
        json!({"email": "victim@example.com"}),
    )
    .await;
    let code = code_in(&mail.next().await);
    let owner = post(
        &app,
        "/api/auth/otp/verify",
        json!({"email": "victim@example.com", "code": code}),
    )
    .await;
    assert_eq!(
        owner.status,
        StatusCode::OK,
        "no TOTP of the stranger's stands in the way: {}",
        owner.text()
    );
    let me = get_as(&app, "/api/auth/me", &access(&owner.json()))
        .await
        .json();
    assert_eq!(me["emailVerified"], true);
    assert_eq!(me["totpEnabled"], false);
    assert_stranger_is_out(&app, "victim@example.com", STRANGER_PASSWORD, &stranger).await;

    // A verified account keeps its credentials through later code logins.
    let owner_bearer = format!("Bearer {}", access(&owner.json()));
    let set = json!({"newPassword": PASSWORD});
    let changed = call(
        &app,
        "POST",
        "/api/auth/password",
        Some(set),
        &[("authorization", &owner_bearer)],
    )
    .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{}", changed.text());
    assert!(mail.next().await.contains("Your password was changed"));
    post(
        &app,
        "/api/auth/otp",
        json!({"email": "victim@example.com"}),
    )
    .await;
    let code = code_in(&mail.next().await);
    let verify = json!({"email": "victim@example.com", "code": code});
    assert_eq!(
        post(&app, "/api/auth/otp/verify", verify).await.status,
        StatusCode::OK
    );
    login(&app, "victim@example.com").await;
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn a_verification_link_needs_the_signup_password_and_a_reset_discards_the_strangers_totp(
    db: PgPool,
) {
    let app = auth_app(db.clone(), &["--require-verified-email", "false"]);
    let mail = Mail::start(&db);
    let stranger = pre_hijack(&app, "victim@example.com", STRANGER_PASSWORD).await;
    let token = link_token(&mail.next().await, "verify-email");

    // The owner follows the link but does not know the stranger's password: not verified.
    for _ in 0..4 {
        let guess = json!({"token": token, "password": "whatever the owner tries"});
        let answer = post(&app, "/api/auth/verify", guess).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.text());
        assert_eq!(answer.json()["code"], "invalid-credentials");
    }
    let bare = post(&app, "/api/auth/verify", json!({"token": token})).await;
    assert_eq!(bare.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Five attempts, then the link is dead even with the right password.
    let right = json!({"token": token, "password": STRANGER_PASSWORD});
    let dead = post(&app, "/api/auth/verify", right).await;
    assert_eq!(dead.status, StatusCode::UNAUTHORIZED);
    assert_eq!(dead.json()["code"], "invalid-token");
    let verified: Option<time::OffsetDateTime> =
        sqlx::query_scalar("SELECT email_verified_at FROM users")
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(verified.is_none());

    // Signing up again changes nothing of the account; the owner is mailed a reset link.
    let again = json!({"email": "victim@example.com", "password": PASSWORD, "fullName": "Owner"});
    assert_eq!(
        post(&app, "/api/auth/signup", again).await.status,
        StatusCode::ACCEPTED
    );
    let message = mail.next().await;
    assert!(message.contains("You already have an account"), "{message}");
    let owner_login = json!({"email": "victim@example.com", "password": PASSWORD});
    assert_eq!(
        post(&app, "/api/auth/token", owner_login.clone())
            .await
            .status,
        StatusCode::UNAUTHORIZED,
        "a second signup never sets the password"
    );
    let name: Option<String> = sqlx::query_scalar("SELECT full_name FROM users")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(name, None);

    // The reset link proves control: new password, and the stranger's TOTP and session go.
    let reset = link_token(&message, "reset-password");
    let confirm = json!({"token": reset, "newPassword": PASSWORD});
    let answer = post(&app, "/api/auth/password-reset/confirm", confirm).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.text());
    let owner = post(&app, "/api/auth/token", owner_login).await;
    assert_eq!(
        owner.status,
        StatusCode::OK,
        "no mfa-required: the stranger's TOTP is gone: {}",
        owner.text()
    );
    let me = get_as(&app, "/api/auth/me", &access(&owner.json()))
        .await
        .json();
    assert_eq!(me["emailVerified"], true);
    assert_stranger_is_out(&app, "victim@example.com", STRANGER_PASSWORD, &stranger).await;
    let codes: i64 = sqlx::query_scalar("SELECT count(*) FROM recovery_codes")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(codes, 0, "the stranger's recovery codes are gone too");
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn a_reset_keeps_the_totp_of_an_account_verified_before(db: PgPool) {
    // The discarding is for accounts nobody ever verified: a verified account's second factor
    // survives a reset (a mailbox alone must not switch it off).
    let app = auth_app(db.clone(), &[]);
    let mail = Mail::start(&db);
    user(&db, "ada@example.com", false, true).await;
    let tokens = login(&app, "ada@example.com").await;
    turn_totp_on(&app, &format!("Bearer {}", access(&tokens))).await;
    post(
        &app,
        "/api/auth/password-reset",
        json!({"email": "ada@example.com"}),
    )
    .await;
    let reset = link_token(&mail.next().await, "reset-password");
    let confirm = json!({"token": reset, "newPassword": "a brand new passphrase"});
    let answer = post(&app, "/api/auth/password-reset/confirm", confirm).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    let login = json!({"email": "ada@example.com", "password": "a brand new passphrase"});
    let answer = post(&app, "/api/auth/token", login).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.json()["code"], "mfa-required");
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

    let mailer = crate::common::mailer(None);
    let ctx = WorkerContext::new(
        db.clone(),
        job_queue(&shared_redis_url(), &unique_name("purge")),
        mailer,
    );
    labs_accounts::PurgeExpiredCredentials::default()
        .handle(&ctx)
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

/// Every SQL statement sqlx runs while `work` runs on this thread, in order. sqlx reports each
/// statement as a `sqlx::query` event (BEGIN excepted, which it sends ahead of the next one).
///
/// One process-wide subscriber, interested in `sqlx::query` alone, records into a buffer of
/// the thread that asked. Not a subscriber per test (`set_default`): tests run in parallel,
/// and each one's coming and going rebuilds tracing's global interest cache under the others,
/// which then miss events.
async fn statements_of<F: std::future::Future>(work: F) -> (F::Output, Vec<String>) {
    use std::cell::RefCell;
    use tracing::subscriber::Interest;
    use tracing_subscriber::layer::SubscriberExt;

    thread_local! {
        static CAPTURED: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
    }
    struct Sql(Option<String>, Option<String>);
    impl tracing::field::Visit for Sql {
        fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
            match field.name() {
                "summary" => self.0 = Some(value.to_owned()),
                "db.statement" if !value.is_empty() => self.1 = Some(value.to_owned()),
                _ => {}
            }
        }
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            self.record_str(field, format!("{value:?}").trim_matches('"'));
        }
    }
    struct Statements;
    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Statements {
        fn register_callsite(&self, metadata: &'static tracing::Metadata<'static>) -> Interest {
            if metadata.target() == "sqlx::query" {
                Interest::always()
            } else {
                Interest::never()
            }
        }
        fn enabled(
            &self,
            metadata: &tracing::Metadata<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) -> bool {
            metadata.target() == "sqlx::query"
        }
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            let mut sql = Sql(None, None);
            event.record(&mut sql);
            let text = sql.1.or(sql.0).unwrap_or_default();
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            CAPTURED.with(|captured| {
                if let Some(captured) = captured.borrow_mut().as_mut() {
                    captured.push(text);
                }
            });
        }
    }
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let subscriber = tracing_subscriber::registry().with(Statements);
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
    });
    CAPTURED.with(|captured| *captured.borrow_mut() = Some(Vec::new()));
    let output = work.await;
    let seen = CAPTURED.with(|captured| captured.borrow_mut().take().unwrap_or_default());
    (output, seen)
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn answers_about_an_address_run_the_same_statements_whether_or_not_it_has_an_account(
    db: PgPool,
) {
    let app = roomy_app(db.clone());
    user(&db, "verified@example.com", false, true).await;
    user(&db, "unverified@example.com", false, false).await;
    post(
        &app,
        "/api/auth/otp",
        json!({"email": "verified@example.com"}),
    )
    .await;
    let cases: [(&str, Value, Vec<Value>); 5] = [
        (
            "/api/auth/password-reset",
            json!({"email": "verified@example.com"}),
            vec![json!({"email": "nobody@example.com"})],
        ),
        (
            "/api/auth/otp",
            json!({"email": "verified@example.com"}),
            vec![json!({"email": "nobody@example.com"})],
        ),
        (
            // A live code (requested above), none (the unverified account), no account.
            "/api/auth/otp/verify",
            json!({"email": "verified@example.com", "code": "not a code"}),
            vec![
                json!({"email": "unverified@example.com", "code": "not a code"}),
                json!({"email": "nobody@example.com", "code": "not a code"}),
            ],
        ),
        (
            "/api/auth/verification",
            json!({"email": "unverified@example.com"}),
            vec![
                json!({"email": "verified@example.com"}),
                json!({"email": "nobody@example.com"}),
            ],
        ),
        (
            "/api/auth/signup",
            json!({"email": "verified@example.com", "password": PASSWORD}),
            vec![json!({"email": "new@example.com", "password": PASSWORD})],
        ),
    ];
    for (path, known, others) in cases {
        // Once first, so that no path pays a first statement preparation the other does not.
        post(&app, path, known.clone()).await;
        let (answer, expected) = statements_of(post(&app, path, known)).await;
        assert!(
            answer.status.is_success() || answer.status == StatusCode::UNAUTHORIZED,
            "{path}: {}",
            answer.text()
        );
        assert!(expected.len() >= 2, "{path}: {expected:?}");
        for other in others {
            post(&app, path, other.clone()).await;
            let (same, seen) = statements_of(post(&app, path, other.clone())).await;
            assert_eq!(same.status, answer.status, "{path} {other}");
            assert_eq!(seen, expected, "{path}: {other} runs other statements");
        }
    }
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn concurrent_wrong_codes_on_one_mfa_challenge_are_checked_at_most_five_times(db: PgPool) {
    // A pool as large as the burst, so that all of it reaches the database at once.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(12)
        .connect_with((*db.connect_options()).clone())
        .await
        .unwrap();
    let app = roomy_app(pool);
    user(&db, "ada@example.com", false, true).await;
    let tokens = login(&app, "ada@example.com").await;
    let secret = turn_totp_on(&app, &format!("Bearer {}", access(&tokens))).await;
    let first = post(
        &app,
        "/api/auth/token",
        json!({"email": "ada@example.com", "password": PASSWORD}),
    )
    .await;
    let mfa_token = first.json()["mfaToken"].as_str().unwrap().to_owned();
    let right = pyotp_now(&secret);
    let wrong = if right == "000000" {
        "000001"
    } else {
        "000000"
    };

    let start = std::sync::Arc::new(tokio::sync::Barrier::new(9));
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..9 {
        let (app, start) = (app.clone(), start.clone());
        let body = json!({"mfaToken": mfa_token, "code": wrong});
        burst.spawn(async move {
            start.wait().await;
            let answer = post(&app, "/api/auth/totp/verify", body).await;
            answer.json()["code"].as_str().unwrap().to_owned()
        });
    }
    let codes = burst.join_all().await;
    let checked = codes.iter().filter(|code| *code == "invalid-code").count();
    assert_eq!(checked, 5, "{codes:?}");
    assert_eq!(
        codes
            .iter()
            .filter(|code| *code == "invalid-mfa-token")
            .count(),
        4,
        "{codes:?}"
    );
    let late = post(
        &app,
        "/api/auth/totp/verify",
        json!({"mfaToken": mfa_token, "code": pyotp_now(&secret)}),
    )
    .await;
    assert_eq!(
        late.json()["code"],
        "invalid-mfa-token",
        "the challenge is spent"
    );
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn a_session_ends_at_its_absolute_lifetime_however_often_it_is_refreshed(db: PgPool) {
    let app = auth_app(db.clone(), &["--session-max-lifetime", "30d"]);
    user(&db, "ada@example.com", false, true).await;
    let tokens = login(&app, "ada@example.com").await;
    sqlx::query("UPDATE sessions SET created_at = now() - interval '29 days 23 hours'")
        .execute(&db)
        .await
        .unwrap();
    let refreshed = post(
        &app,
        "/api/auth/refresh",
        json!({"refreshToken": tokens["refresh_token"]}),
    )
    .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.text());
    let beyond: bool = sqlx::query_scalar(
        "SELECT r.expires_at > s.created_at + interval '30 days'
         FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id WHERE r.used_at IS NULL",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert!(!beyond, "a rotated token never outlives its session");

    sqlx::query("UPDATE sessions SET created_at = now() - interval '30 days 1 minute'")
        .execute(&db)
        .await
        .unwrap();
    let late = post(
        &app,
        "/api/auth/refresh",
        json!({"refreshToken": refreshed.json()["refresh_token"]}),
    )
    .await;
    assert_eq!(late.status, StatusCode::UNAUTHORIZED, "{}", late.text());
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn security_changes_need_a_fresh_login_end_other_sessions_and_are_emailed(db: PgPool) {
    let app = roomy_app(db.clone());
    let mail = Mail::start(&db);
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
    let not_fresh = call(
        &app,
        "POST",
        "/api/auth/password",
        Some(change.clone()),
        &[("authorization", &stale)],
    )
    .await;
    assert_eq!(not_fresh.status, StatusCode::FORBIDDEN);
    assert_eq!(not_fresh.json()["code"], "fresh-login-required");
    let wrong = json!({"currentPassword": "not it", "newPassword": "a brand new passphrase"});
    let refused = call(&app, "POST", "/api/auth/password", Some(wrong), &auth).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let missing = json!({"newPassword": "a brand new passphrase"});
    let refused = call(&app, "POST", "/api/auth/password", Some(missing), &auth).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);

    let changed = call(&app, "POST", "/api/auth/password", Some(change), &auth).await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{}", changed.text());
    let message = mail.next().await;
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
    let codes = call(
        &app,
        "POST",
        "/api/auth/totp/recovery-codes",
        Some(json!({"code": next_code(&secret)})),
        &auth,
    )
    .await;
    assert_eq!(codes.status, StatusCode::OK, "{}", codes.text());
    let message = mail.next().await;
    assert!(
        message.contains("Subject: New recovery codes were made"),
        "{message}"
    );
    let recovery = codes.json()["recoveryCodes"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let off = call(
        &app,
        "POST",
        "/api/auth/totp/disable",
        Some(json!({"code": recovery})),
        &auth,
    )
    .await;
    assert_eq!(off.status, StatusCode::NO_CONTENT, "{}", off.text());
    let message = mail.next().await;
    assert!(
        message.contains("Subject: Two-factor authentication was turned off"),
        "{message}"
    );
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn a_login_in_flight_opens_no_session_past_a_claim_of_its_account(db: PgPool) {
    use labs_accounts::db::credentials::start_session;
    let id = user(&db, "victim@example.com", false, false).await;
    // What a stranger's password login read before the owner's claim.
    let checked = labs_accounts::db::users::credentials(&db, None, Some(id))
        .await
        .unwrap()
        .unwrap()
        .credentials_epoch;
    let expires = time::OffsetDateTime::now_utc() + Duration::from_secs(3600);

    // The login's session is being inserted (row share-locked, not committed) when the claim
    // starts: the claim waits for it, then revokes it.
    let mut login = db.begin().await.unwrap();
    let early = SessionId::generate();
    assert!(
        start_session(&mut *login, early, id, checked, b"early", expires)
            .await
            .unwrap()
    );
    let claim = tokio::spawn({
        let db = db.clone();
        async move {
            let mut tx = db.begin().await.unwrap();
            let claimed = labs_accounts::db::users::claim(&mut tx, id, false)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            claimed.unwrap()
        }
    });
    // A synchronisation point, not a timing assertion: until the claim waits on the row lock.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&db)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the claim never waited"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    login.commit().await.unwrap();
    let claimed = claim.await.unwrap();
    assert!(claimed.first);
    let revoked: bool =
        sqlx::query_scalar("SELECT revoked_at IS NOT NULL FROM sessions WHERE id = $1")
            .bind(early.as_uuid())
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(
        revoked,
        "the session that slipped in while the claim waited is revoked"
    );

    // A login that checked the credentials before the claim opens nothing after it.
    assert!(
        !start_session(&db, SessionId::generate(), id, checked, b"late", expires)
            .await
            .unwrap()
    );
    assert!(
        start_session(
            &db,
            SessionId::generate(),
            id,
            claimed.credentials_epoch,
            b"now",
            expires
        )
        .await
        .unwrap()
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

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn reads_of_an_account_answer_304_while_their_etag_is_current(db: PgPool) {
    let app = roomy_app(db.clone());
    user(&db, "admin@example.com", true, true).await;
    let ada = user(&db, "ada@example.com", false, true).await;
    let as_ada = access(&login(&app, "ada@example.com").await);
    let as_admin = access(&login(&app, "admin@example.com").await);

    for (path, token) in [
        ("/api/auth/me".to_owned(), &as_ada),
        (format!("/api/users/{ada}"), &as_admin),
    ] {
        let first = get_as(&app, &path, token).await;
        assert_eq!(first.status, StatusCode::OK, "{path}");
        assert_eq!(first.header("cache-control"), "private, no-cache", "{path}");
        let tag = first.header("etag").to_owned();
        let bearer = format!("Bearer {token}");
        let conditional = |tag: String| {
            let (app, path, bearer) = (app.clone(), path.clone(), bearer.clone());
            async move {
                call(
                    &app,
                    "GET",
                    &path,
                    None,
                    &[("authorization", &bearer), ("if-none-match", &tag)],
                )
                .await
            }
        };
        let unchanged = conditional(tag.clone()).await;
        assert_eq!(unchanged.status, StatusCode::NOT_MODIFIED, "{path}");
        assert!(unchanged.body.is_empty());
        assert_eq!(unchanged.header("etag"), tag);
        // Another tag, or a weak form of it, is compared as RFC 9110 says.
        assert_eq!(
            conditional("\"stale\"".to_owned()).await.status,
            StatusCode::OK
        );
        assert_eq!(
            conditional(format!("W/{tag}")).await.status,
            StatusCode::NOT_MODIFIED
        );

        // A change to the account changes the tag: the next read is a 200 again.
        let renamed = call(
            &app,
            "PATCH",
            &format!("/api/users/{ada}"),
            Some(json!({"fullName": format!("Ada {}", path.len())})),
            &[("authorization", &format!("Bearer {as_admin}"))],
        )
        .await;
        assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.text());
        let changed = conditional(tag.clone()).await;
        assert_eq!(changed.status, StatusCode::OK, "{path}");
        assert_ne!(changed.header("etag"), tag);
    }
}
