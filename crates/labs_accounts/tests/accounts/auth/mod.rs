//! Authentication over HTTP, against a fresh database per test, the real Redis, and (where an
//! email matters) a real SMTP server fed by the real worker: every flow end to end, and the
//! attacks each defence exists for. This file holds what the flows share (the accounts, the
//! calls, the codes); each module below is one flow.

use axum::http::StatusCode;
use labs_domain::UserId;
use labs_testapp::TestApp;
use labs_testkit::Answer;
use serde_json::{Value, json};
use sqlx::PgPool;

mod attacks;
mod email_code;
mod existence;
mod hijack;
mod passwords;
mod sessions;
mod signup;
mod totp;
mod users;

const PASSWORD: &str = "correct horse battery staple";

async fn post(app: &TestApp, path: &str, body: Value) -> Answer {
    app.post(path, body).await
}

async fn get_as(app: &TestApp, path: &str, token: &str) -> Answer {
    app.get_as(path, token).await
}

/// An account made directly in the database, with [`PASSWORD`].
async fn user(db: &PgPool, email: &str, admin: bool, verified: bool) -> UserId {
    labs_testapp::insert_user_with_password(db, email, PASSWORD, admin, verified).await
}

/// The API with budgets above what a test makes: for tests of something else than the limits.
fn roomy_app(db: PgPool) -> TestApp {
    TestApp::builder(db).roomy().spawn()
}

async fn login(app: &TestApp, email: &str) -> Value {
    app.login(email, PASSWORD).await
}

fn access(tokens: &Value) -> String {
    tokens["access_token"].as_str().unwrap().to_owned()
}

use labs_testapp::{code_in, link_token};

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

/// Turns TOTP on through the API for the caller of `bearer`; its base32 secret.
async fn turn_totp_on(app: &TestApp, bearer: &str) -> String {
    let auth = [("authorization", bearer)];
    let enrolment = app.call("POST", "/api/auth/totp/enroll", None, &auth).await;
    assert_eq!(enrolment.status, StatusCode::OK, "{}", enrolment.text());
    let secret = enrolment.json()["secret"].as_str().unwrap().to_owned();
    let code = pyotp_now(&secret);
    let confirm = json!({"code": code});
    let confirmed = app
        .call("POST", "/api/auth/totp/confirm", Some(confirm), &auth)
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.text());
    secret
}
