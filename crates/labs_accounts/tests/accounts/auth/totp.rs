//! TOTP: enrolment, the second step of a login, replay, recovery codes and disabling, and the
//! cap on wrong codes against one challenge however concurrent the guesses.

use super::{PASSWORD, access, login, post, pyotp_now, roomy_app, turn_totp_on, user};
use axum::http::StatusCode;
use serde_json::json;
use sqlx::PgPool;

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn totp_enrolment_second_step_replay_recovery_and_disable(db: PgPool) {
    // This test makes more attempts than the default budgets allow.
    let app = roomy_app(db.clone());
    user(&db, "ada@example.com", false, true).await;
    let tokens = login(&app, "ada@example.com").await;
    let bearer = format!("Bearer {}", access(&tokens));
    let auth = [("authorization", bearer.as_str())];

    let enrolment = app.call("POST", "/api/auth/totp/enroll", None, &auth).await;
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

    let wrong = app
        .call(
            "POST",
            "/api/auth/totp/confirm",
            Some(json!({"code": "000000"})),
            &auth,
        )
        .await;
    assert!(wrong.status == StatusCode::UNAUTHORIZED || pyotp_now(&secret) == "000000");
    let code = pyotp_now(&secret);
    let confirmed = app
        .call(
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
    let refused = app
        .call(
            "POST",
            "/api/auth/totp/disable",
            Some(json!({"code": recovery[3]})),
            &[("authorization", &stale)],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.json()["code"], "fresh-login-required");
    let fresh = format!("Bearer {}", access(&session));
    let off = app
        .call(
            "POST",
            "/api/auth/totp/disable",
            Some(json!({"code": recovery[3]})),
            &[("authorization", &fresh)],
        )
        .await;
    assert_eq!(off.status, StatusCode::NO_CONTENT, "{}", off.text());
    login(&app, "ada@example.com").await;
    // The notices of the changes are sent.
    app.drain().await;
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
