//! Authentication over HTTP, against a fresh database per test, the real Redis, and (where an
//! email matters) a real SMTP server fed by the real worker: every flow end to end, and the
//! attacks each defence exists for. This file holds what the flows share (the accounts, the
//! calls, the mail catcher, the codes); each module below is one flow.

use std::time::Duration;

use crate::common::{auth_app, call, job_queue};
use axum::Router;
use axum::http::StatusCode;
use labs_db::PgPool;
use labs_domain::UserId;
use labs_jobs::Handler;
use labs_jobs::jobs::RelayOutbox;
use labs_testkit::{Answer, SmtpServer, shared_redis_url, unique_name};
use labs_worker::WorkerContext;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

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

/// The 6-digit code on its own line of a login-code email.
fn code_in(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .find(|line| line.len() == 6 && line.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| panic!("no code in {message}"))
        .to_owned()
}

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
