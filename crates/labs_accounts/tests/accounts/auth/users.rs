//! The users API: for admins only, and reads of an account answer 304 while their ETag holds.

use super::{PASSWORD, access, get_as, login, roomy_app, user};
use axum::http::StatusCode;
use labs_testapp::TestApp;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn the_users_api_is_for_admins_only(db: PgPool) {
    let app = TestApp::new(db.clone());
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
        let answer = app.call(method, &path, None, &as_ada).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(answer.json()["code"], "admin-only");
        let anonymous = app.call(method, &path, None, &[]).await;
        assert_eq!(
            anonymous.status,
            StatusCode::UNAUTHORIZED,
            "{method} {path}"
        );
    }

    let created = app
        .call(
            "POST",
            "/api/users",
            Some(json!({"email": "Bob@Example.com", "password": PASSWORD, "fullName": "Bob"})),
            &as_admin,
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let bob = created.json()["id"].as_str().unwrap().to_owned();
    let duplicate = app
        .call(
            "POST",
            "/api/users",
            Some(json!({"email": "bob@example.com", "password": PASSWORD})),
            &as_admin,
        )
        .await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    assert_eq!(duplicate.json()["code"], "email-taken");

    let page = app
        .call("GET", "/api/users?offset=1&limit=1", None, &as_admin)
        .await
        .json();
    assert_eq!(page["total"], 3);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["email"], "ada@example.com");
    let past_the_end = app
        .call("GET", "/api/users?offset=100&limit=10", None, &as_admin)
        .await
        .json();
    assert_eq!(past_the_end["items"], json!([]));
    assert_eq!(past_the_end["total"], 3);
    // A validation failure of the query: 422 (was 400), with every failing parameter named.
    let bad = app
        .call(
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

    let renamed = app
        .call(
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
    let moved = app
        .call(
            "PATCH",
            &format!("/api/users/{bob}"),
            Some(json!({"email": "robert@example.com"})),
            &as_admin,
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.text());
    assert_eq!(moved.json()["email"], "robert@example.com");
    assert_eq!(moved.json()["emailVerified"], false);
    let clash = app
        .call(
            "PATCH",
            &format!("/api/users/{bob}"),
            Some(json!({"email": "ada@example.com"})),
            &as_admin,
        )
        .await;
    assert_eq!(clash.status, StatusCode::CONFLICT);

    // Deactivating an account ends its sessions at once.
    let off = app
        .call(
            "PATCH",
            &format!("/api/users/{ada}"),
            Some(json!({"isActive": false})),
            &as_admin,
        )
        .await;
    assert_eq!(off.status, StatusCode::OK);
    assert_eq!(
        app.call("GET", "/api/auth/me", None, &as_ada).await.status,
        StatusCode::UNAUTHORIZED
    );

    let missing = Uuid::now_v7();
    for (method, body) in [
        ("GET", None),
        ("PATCH", Some(json!({"fullName": "x"}))),
        ("DELETE", None),
    ] {
        let answer = app
            .call(method, &format!("/api/users/{missing}"), body, &as_admin)
            .await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{method}");
    }
    // A validation failure of the path: 422 (was 400), naming the parameter.
    let not_an_id = app
        .call("GET", "/api/users/not-a-uuid", None, &as_admin)
        .await;
    assert_eq!(not_an_id.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(not_an_id.json()["errors"][0]["pointer"], "id");
    let deleted = app
        .call("DELETE", &format!("/api/users/{bob}"), None, &as_admin)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.call("GET", &format!("/api/users/{bob}"), None, &as_admin)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let stats = app.call("GET", "/api/admin/jobs", None, &as_admin).await;
    assert_eq!(stats.status, StatusCode::OK, "{}", stats.text());
    assert!(stats.json()["outbox"].is_number());
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
                app.call(
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
        let renamed = app
            .call(
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
