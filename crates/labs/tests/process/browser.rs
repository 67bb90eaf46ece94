//! The real binary's pages in a real browser (Debian's chromium, driven by playwright-core
//! from scripts/browser/): the docs UI's "Authorize" button, and the pages emailed links open.

use std::time::Duration;

use crate::binary::client;
use crate::common::Labs;
use labs_testkit::{SmtpServer, TempDatabase, unique_name};
use serde_json::Value;

/// The docs UI's "Authorize" button in a real browser (Debian's chromium, driven by
/// playwright-core: scripts/browser/authorize.mjs): the OAuth 2.0 password form logs in, and
/// "Try it out" on `GET /auth/me` then sends the token and gets 200 (it sent none while the
/// operations listed only `bearerAuth`).
#[tokio::test]
async fn the_docs_authorize_button_logs_in_and_try_it_out_sends_the_token() {
    const PASSWORD: &str = "correct horse battery staple";
    let database = TempDatabase::new("browser");
    let server = Labs::serve(&[("DATABASE_URL", &database.url), ("LABS_ROLES", "api")]);
    server
        .until_status("/api/health/ready", 200, Duration::from_secs(30))
        .await;
    let db = sqlx::PgPool::connect(&database.url).await.unwrap();
    labs_testapp::insert_user_with_password(&db, "ada@example.com", PASSWORD, false, true).await;

    // Kept out of the repository: a temporary file, named in the output.
    let screenshot = std::env::temp_dir().join(format!("{}.png", unique_name("docs-authorize")));
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/browser/authorize.mjs"
    );
    let output = std::process::Command::new("node")
        .arg(script)
        .arg(server.url("/api/docs/"))
        .arg("ada@example.com")
        .arg(PASSWORD)
        .arg(&screenshot)
        .output()
        .expect("node runs (scripts/node-tools.sh installs it, with chromium and playwright-core)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser script failed: {}{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
    assert_eq!(result["status"], 200, "{result}");
    let me: Value = serde_json::from_str(result["body"].as_str().unwrap()).unwrap();
    assert_eq!(me["email"], "ada@example.com", "{me}");
    assert_eq!(result["consoleErrors"], serde_json::json!([]), "{result}");
    assert!(std::fs::metadata(&screenshot).unwrap().len() > 0);
    #[expect(clippy::print_stderr, reason = "where the screenshot is")]
    {
        eprintln!(
            "docs after Authorize and Try it out: {}",
            screenshot.display()
        );
    }
}

/// Follows an emailed `link` in a real browser (scripts/browser/emailed-link.mjs): fills in the
/// page's form with `fields`, submits it, and returns what the answer showed.
fn follow_in_browser(link: &str, fields: &[(&str, &str)]) -> Value {
    // Kept out of the repository: a temporary file, named in the output.
    let screenshot = std::env::temp_dir().join(format!("{}.png", unique_name("emailed-link")));
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/browser/emailed-link.mjs"
    );
    let output = std::process::Command::new("node")
        .arg(script)
        .arg(link)
        .arg(&screenshot)
        .args(fields.iter().map(|(name, value)| format!("{name}={value}")))
        .output()
        .expect("node runs (scripts/node-tools.sh installs it, with chromium and playwright-core)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser script failed: {}{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(std::fs::metadata(&screenshot).unwrap().len() > 0);
    #[expect(clippy::print_stderr, reason = "where the screenshot is")]
    {
        eprintln!("{link} after its form: {}", screenshot.display());
    }
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap()
}

/// Asserts that the browser's answer to a form is `heading` with 200, that no CSP or other
/// error showed in the console, and that the token of the link went out with no other
/// request (no Referer carried it: the pages send `no-referrer`).
fn assert_browser_answer(answer: &Value, heading: &str, token: &str) {
    assert_eq!(answer["status"], 200, "{answer}");
    assert_eq!(answer["heading"], heading, "{answer}");
    assert_eq!(answer["consoleErrors"], serde_json::json!([]), "{answer}");
    let requests = answer["requests"].as_array().unwrap();
    assert!(
        requests
            .iter()
            .any(|r| r["url"].as_str().unwrap().ends_with("/pages.css")),
        "the page's stylesheet was loaded: {answer}"
    );
    for request in requests {
        assert!(
            !request.to_string().contains(token),
            "{request} carries the token"
        );
        assert_eq!(request["referer"], Value::Null, "{request}");
    }
}

/// The pages emailed links open, end to end as a person meets them: the real binary with the
/// api, worker and scheduler roles and no `LABS_APP_URL` (its default points at its own
/// pages), a real SMTP server (aiosmtpd), and Debian's chromium following the links from the
/// delivered emails. The signup's link confirms the address (then the password logs in); a
/// reset's link sets a new password (which logs in, and the old one no longer does). No log
/// line holds a link's token.
#[tokio::test]
async fn emailed_links_open_pages_that_verify_and_reset_in_a_browser() {
    const PASSWORD: &str = "correct horse battery staple";
    const NEW_PASSWORD: &str = "a new password, long enough";
    let smtp = std::sync::Arc::new(SmtpServer::start());
    let database = TempDatabase::new("pages");
    let server = Labs::serve(&[
        ("DATABASE_URL", &database.url),
        ("LABS_ROLES", "api,worker,scheduler"),
        ("LABS_SMTP_URL", &smtp.url()),
    ]);
    server
        .until_status("/api/health/ready", 200, Duration::from_secs(30))
        .await;
    let http = client();
    let login = |password: &'static str| {
        let http = http.clone();
        let url = server.url("/api/auth/token");
        async move {
            http.post(url)
                .json(&serde_json::json!({"email": "ada@example.com", "password": password}))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    // The `n`th email, found among those received (the maildir keeps no order).
    let email_with = |page: &'static str, count: usize| {
        let smtp = smtp.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                smtp.wait_for_messages(count, Duration::from_secs(60))
                    .iter()
                    .map(|raw| labs_testapp::decode_quoted_printable(raw))
                    .find(|message| message.contains(&format!("/{page}?token=")))
                    .unwrap_or_else(|| panic!("no email with a {page} link"))
            })
            .await
            .unwrap()
        }
    };
    let origin = format!("http://localhost:{}", server.address.port());

    let signup = http
        .post(server.url("/api/auth/signup"))
        .json(&serde_json::json!({"email": "ada@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(signup.status(), 202);
    let message = email_with("verify-email", 1).await;
    assert!(message.contains("To: ada@example.com"), "{message}");
    let link = labs_testapp::emailed_link(&message, "verify-email");
    assert!(
        link.starts_with(&format!("{origin}/api/verify-email?token=")),
        "{link}"
    );
    let verify_token = link.split_once("token=").unwrap().1.to_owned();
    assert_eq!(login(PASSWORD).await, 403, "not verified yet");

    let answer = follow_in_browser(&link, &[("password", PASSWORD)]);
    assert_browser_answer(&answer, "Address confirmed", &verify_token);
    assert_eq!(login(PASSWORD).await, 200);

    let reset = http
        .post(server.url("/api/auth/password-reset"))
        .json(&serde_json::json!({"email": "ada@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 202);
    let message = email_with("reset-password", 2).await;
    let link = labs_testapp::emailed_link(&message, "reset-password");
    assert!(
        link.starts_with(&format!("{origin}/api/reset-password?token=")),
        "{link}"
    );
    let reset_token = link.split_once("token=").unwrap().1.to_owned();
    let answer = follow_in_browser(
        &link,
        &[
            ("newPassword", NEW_PASSWORD),
            ("confirmPassword", NEW_PASSWORD),
        ],
    );
    assert_browser_answer(&answer, "Password changed", &reset_token);
    assert_eq!(login(NEW_PASSWORD).await, 200);
    assert_eq!(login(PASSWORD).await, 401);

    // The access log has the pages' requests, by path alone.
    let logs = server.logs();
    assert!(
        logs.iter().any(|line| line["message"] == "request answered"
            && line["span"]["route"] == "/reset-password"
            && line["span"]["method"] == "POST"),
        "{logs:#?}"
    );
    for line in &logs {
        let text = line.to_string();
        assert!(
            !text.contains(&verify_token) && !text.contains(&reset_token),
            "a log line holds a link's token: {text}"
        );
    }
}
