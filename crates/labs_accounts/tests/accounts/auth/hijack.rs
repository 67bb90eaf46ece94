//! Pre-hijacked accounts: what a stranger who signed up with someone else's address set up
//! (password, sessions, TOTP) is gone once the owner claims the address, by an email code or a
//! reset, and no login in flight opens a session past the claim.

use labs_testapp::TestApp;
use std::time::Duration;

use super::{PASSWORD, access, code_in, get_as, link_token, login, post, turn_totp_on, user};
use axum::http::StatusCode;
use labs_domain::SessionId;
use serde_json::{Value, json};
use sqlx::PgPool;

/// What a stranger who signed up with someone else's address sets up before its owner
/// arrives: a password, a live session (possible where unverified accounts may log in), and
/// TOTP on top. Returns the stranger's tokens.
async fn pre_hijack(app: &TestApp, email: &str, password: &str) -> Value {
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
async fn assert_stranger_is_out(app: &TestApp, email: &str, password: &str, stranger: &Value) {
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
    let app = TestApp::builder(db.clone())
        .settings(&["--require-verified-email", "false"])
        .smtp()
        .spawn();
    let stranger = pre_hijack(&app, "victim@example.com", STRANGER_PASSWORD).await;
    let _verification_link = app.next_email().await;

    // The address's owner logs in with a code sent to it: the first proof of control.
    post(
        &app,
        "/api/auth/otp",
        json!({"email": "victim@example.com"}),
    )
    .await;
    let code = code_in(&app.next_email().await);
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
    let changed = app
        .call(
            "POST",
            "/api/auth/password",
            Some(set),
            &[("authorization", &owner_bearer)],
        )
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{}", changed.text());
    assert!(app.next_email().await.contains("Your password was changed"));
    post(
        &app,
        "/api/auth/otp",
        json!({"email": "victim@example.com"}),
    )
    .await;
    let code = code_in(&app.next_email().await);
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
    let app = TestApp::builder(db.clone())
        .settings(&["--require-verified-email", "false"])
        .smtp()
        .spawn();
    let stranger = pre_hijack(&app, "victim@example.com", STRANGER_PASSWORD).await;
    let token = link_token(&app.next_email().await, "verify-email");

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
    let message = app.next_email().await;
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
    // The notices of the change are sent.
    app.drain().await;
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn a_reset_keeps_the_totp_of_an_account_verified_before(db: PgPool) {
    // The discarding is for accounts nobody ever verified: a verified account's second factor
    // survives a reset (a mailbox alone must not switch it off).
    let app = TestApp::builder(db.clone()).smtp().spawn();
    user(&db, "ada@example.com", false, true).await;
    let tokens = login(&app, "ada@example.com").await;
    turn_totp_on(&app, &format!("Bearer {}", access(&tokens))).await;
    post(
        &app,
        "/api/auth/password-reset",
        json!({"email": "ada@example.com"}),
    )
    .await;
    let reset = link_token(&app.next_email().await, "reset-password");
    let confirm = json!({"token": reset, "newPassword": "a brand new passphrase"});
    let answer = post(&app, "/api/auth/password-reset/confirm", confirm).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    let login = json!({"email": "ada@example.com", "password": "a brand new passphrase"});
    let answer = post(&app, "/api/auth/token", login).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.json()["code"], "mfa-required");
    // The notices of the change are sent.
    app.drain().await;
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
