//! Sessions: browser sessions on cookies (cross-origin changes refused), refresh and logout
//! without a body, and the absolute lifetime a refresh cannot extend.

use super::{PASSWORD, access, login, post, user};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use labs_testapp::TRUSTED_ORIGIN;
use labs_testapp::TestApp;
use labs_testkit::Answer;
use serde_json::json;
use sqlx::PgPool;

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn browser_sessions_use_cookies_and_refuse_cross_origin_changes(db: PgPool) {
    let app = TestApp::new(db.clone());
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

    let me = app
        .call("GET", "/api/auth/me", None, &[("cookie", &jar)])
        .await;
    assert_eq!(me.status, StatusCode::OK);

    // A second cookie of the same name (planted by a sibling site with a wider Domain) is
    // refused, in either order, instead of letting the first one win.
    let planted = "__Host-labs_access=planted.by.another.site";
    for doubled in [format!("{planted}; {jar}"), format!("{jar}; {planted}")] {
        let answer = app
            .call("GET", "/api/auth/me", None, &[("cookie", &doubled)])
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text());
        assert_eq!(answer.json()["code"], "duplicate-cookie");
    }
    let two_headers = app
        .call(
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
        let answer = app.call("POST", path, Some(json!({})), &forged).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(answer.json()["code"], "csrf");
        assert_eq!(answer.header("content-type"), "application/problem+json");
        // The refusal is written inside the request's scope: its body quotes the request id.
        assert_eq!(answer.json()["requestId"], answer.header("x-request-id"));
    }
    // A Bearer request from anywhere is unaffected (a forged form cannot send a header).
    let tokens = login(&app, "ada@example.com").await;
    let bearer = format!("Bearer {}", access(&tokens));
    let cross = [
        ("authorization", bearer.as_str()),
        ("sec-fetch-site", "cross-site"),
        ("origin", "https://evil.example"),
    ];
    let answer = app
        .call("POST", "/api/auth/logout", Some(json!({})), &cross)
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);

    // Same origin and the trusted app origin pass; refresh by cookie rotates the cookies.
    let trusted = [
        ("cookie", jar.as_str()),
        ("sec-fetch-site", "same-site"),
        ("origin", TRUSTED_ORIGIN),
    ];
    let refreshed = app
        .call("POST", "/api/auth/refresh", Some(json!({})), &trusted)
        .await;
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
    let out = app
        .call("POST", "/api/auth/logout", Some(json!({})), &same)
        .await;
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
async fn cookie_login(app: &TestApp, email: &str) -> String {
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
    let app = TestApp::new(db.clone());
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
        async move { app.send(request).await }
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
async fn a_session_ends_at_its_absolute_lifetime_however_often_it_is_refreshed(db: PgPool) {
    let app = TestApp::builder(db.clone())
        .settings(&["--session-max-lifetime", "30d"])
        .spawn();
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
