//! What a visitor learns about an address: a taken email at signup is told to its owner, not
//! to the visitor; an unknown email and a wrong password answer alike; and the database is asked
//! the same statements whether or not the address has an account.

use super::{PASSWORD, post, roomy_app, user};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use labs_testapp::TestApp;
use serde_json::{Value, json};
use sqlx::PgPool;

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn signup_with_a_taken_email_tells_the_owner_not_the_visitor(db: PgPool) {
    let app = TestApp::builder(db.clone()).smtp().spawn();
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
    let messages = [app.next_email().await, app.next_email().await];
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
    let app = TestApp::new(db.clone());
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
    let answer = app.send(form).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert!(answer.json()["access_token"].is_string());
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
    // The emails those answers stand for are sent.
    app.drain().await;
}
