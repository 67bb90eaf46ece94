//! The __features__ feature over HTTP, on `labs_testapp::TestApp`: the whole application as
//! `labs serve` builds it, a per-test database, the real Redis, the real worker and a real
//! SMTP server (aiosmtpd).

use axum::http::StatusCode;
use sqlx::PgPool;
use labs_testapp::{TestApp, insert_user_with_password};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";

/// A verified account, logged in; its access token.
async fn signed_in(app: &TestApp, email: &str) -> String {
    insert_user_with_password(&app.db, email, PASSWORD, false, true).await;
    let tokens = app.login(email, PASSWORD).await;
    tokens["access_token"].as_str().unwrap().to_owned()
}

async fn create(app: &TestApp, token: &str, body: Value) -> Value {
    let created = app
        .call_as("POST", "/api/__features__", token, Some(body))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    created.json()
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn create_list_get_update_and_delete_in_camel_case(db: PgPool) {
    let app = TestApp::builder(db).roomy().smtp().spawn();
    let token = signed_in(&app, "ada@example.com").await;

    let first = create(&app, &token, json!({"title": "  First  "})).await;
    assert_eq!(first["title"], "First", "trimmed");
    assert_eq!(first["details"], "");
    assert!(first["createdAt"].is_string() && first["updatedAt"].is_string());
    assert_eq!(first["confirmedAt"], Value::Null, "not confirmed before its job ran");
    let second = create(&app, &token, json!({"title": "Second", "details": "a\nb"})).await;
    let id = second["id"].as_str().unwrap();
    // Each creation's job has run: one email each.
    assert_eq!(app.emails_sent().await, 2);

    let page = app.get_as("/api/__features__?limit=1", &token).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let page = page.json();
    assert_eq!((page["total"].clone(), page["limit"].clone()), (json!(2), json!(1)));
    assert_eq!(page["items"][0]["title"], "Second", "newest first");

    let path = format!("/api/__features__/{id}");
    let changed = app
        .call_as("PATCH", &path, &token, Some(json!({"details": ""})))
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text());
    assert_eq!(changed.json()["title"], "Second", "absent: unchanged");
    assert_eq!(changed.json()["details"], "", "cleared");
    assert_eq!(app.get_as(&path, &token).await.json()["details"], "");

    let deleted = app.call_as("DELETE", &path, &token, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get_as(&path, &token).await.status, StatusCode::NOT_FOUND);
    let again = app.call_as("DELETE", &path, &token, None).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get_as("/api/__features__", &token).await.json()["total"], 1);
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn a_new___feature___is_confirmed_by_its_job_and_its_owner_emailed_once(db: PgPool) {
    let app = TestApp::builder(db).roomy().smtp().spawn();
    let token = signed_in(&app, "ada@example.com").await;
    let created = create(&app, &token, json!({"title": "Tea for two"})).await;

    let message = app.next_email().await;
    assert!(message.contains("To: ada@example.com"), "{message}");
    assert!(message.contains("Subject: Your __feature__ was recorded"), "{message}");
    assert!(message.contains("Tea for two"), "{message}");
    let path = format!("/api/__features__/{}", created["id"].as_str().unwrap());
    let confirmed = app.get_as(&path, &token).await.json();
    assert!(confirmed["confirmedAt"].is_string(), "{confirmed}");

    // At least once delivery: the job run again sends nothing more.
    let id = labs___features__::__Feature__Id::from_uuid(
        created["id"].as_str().unwrap().parse().unwrap(),
    );
    labs_jobs::Handler::handle(labs___features__::__Feature__Created { id }, app.worker())
        .await
        .unwrap();
    assert_eq!(app.emails_sent().await, 1);
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn another_users___features___answer_404_as_missing_ones_do(db: PgPool) {
    let app = TestApp::builder(db).roomy().spawn();
    let ada = signed_in(&app, "ada@example.com").await;
    let bob = signed_in(&app, "bob@example.com").await;
    let adas = create(&app, &ada, json!({"title": "Ada's"})).await;
    let path = format!("/api/__features__/{}", adas["id"].as_str().unwrap());

    for (method, body) in [
        ("GET", None),
        ("PATCH", Some(json!({"title": "Bob's now"}))),
        ("DELETE", None),
    ] {
        let answer = app.call_as(method, &path, &bob, body).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{method}");
        assert_eq!(answer.header("content-type"), "application/problem+json");
    }
    let missing = format!("/api/__features__/{}", uuid::Uuid::now_v7());
    assert_eq!(app.get_as(&missing, &ada).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get_as("/api/__features__", &bob).await.json()["total"], 0);
    assert_eq!(app.get_as(&path, &ada).await.json()["title"], "Ada's");
    app.drain().await;
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn bad_input_is_a_422_naming_each_field_and_no_token_a_401(db: PgPool) {
    let app = TestApp::builder(db).roomy().spawn();
    let token = signed_in(&app, "ada@example.com").await;

    let bad = app
        .call_as(
            "POST",
            "/api/__features__",
            &token,
            Some(json!({"title": "   ", "details": "x".repeat(2001)})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.text());
    assert_eq!(bad.header("content-type"), "application/problem+json");
    let errors = bad.json()["errors"].clone();
    assert!(
        errors.as_array().unwrap().iter().any(|e| e["pointer"] == "/title" && e["code"] == "empty"),
        "{errors}"
    );

    let unknown = app
        .call_as("POST", "/api/__features__", &token, Some(json!({"title": "t", "owner": "x"})))
        .await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", unknown.text());

    let page = app.get_as("/api/__features__?limit=101", &token).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    let not_an_id = app.get_as("/api/__features__/not-an-id", &token).await;
    assert_eq!(not_an_id.status, StatusCode::UNPROCESSABLE_ENTITY);

    let anonymous = app.get("/api/__features__").await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.header("content-type"), "application/problem+json");
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn the_periodic_purge_removes_rows_deleted_thirty_days_ago(db: PgPool) {
    let app = TestApp::builder(db).roomy().spawn();
    let token = signed_in(&app, "ada@example.com").await;
    let mut ids = Vec::new();
    for title in ["old", "recent", "kept"] {
        ids.push(create(&app, &token, json!({"title": title})).await["id"].as_str().unwrap().to_owned());
    }
    for id in &ids[..2] {
        let path = format!("/api/__features__/{id}");
        assert_eq!(app.call_as("DELETE", &path, &token, None).await.status, StatusCode::NO_CONTENT);
    }
    sqlx::query("UPDATE __features__ SET deleted_at = now() - interval '31 days' WHERE id = $1")
        .bind(ids[0].parse::<uuid::Uuid>().unwrap())
        .execute(&app.db)
        .await
        .unwrap();

    labs_jobs::Handler::handle(labs___features__::PurgeDeleted__Features__::default(), app.worker())
        .await
        .unwrap();
    let left: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM __features__ ORDER BY title")
        .fetch_all(&app.db)
        .await
        .unwrap();
    let left: Vec<String> = left.iter().map(ToString::to_string).collect();
    assert_eq!(left, [ids[2].clone(), ids[1].clone()], "kept, recent (deleted 0 days ago)");
    assert!(
        labs___features__::schedule().iter().any(|p| p.name == "purge_deleted___features__"),
        "on the scheduler's list"
    );
    app.drain().await;
}
