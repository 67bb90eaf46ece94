//! Rate limits a stranger could turn against an account's owner, over HTTP on a fresh database
//! and the real Redis (each test in rate-limit namespaces of its own): strangers' wrong
//! guesses do not lock the owner out, IPv6 clients are counted by their /64 and IPv4-mapped
//! addresses as IPv4, and one address receives at most its cap of emails, whatever mix of
//! endpoints asks for them (through the real worker and a real SMTP server).
//!
//! Client addresses come in `X-Forwarded-For` from a trusted proxy: in-process requests have
//! no TCP peer, which the API reads as `0.0.0.0`, trusted here.
//!
//! Nine short scenarios of one defence, sharing the forwarded-address helpers.

use std::time::Duration;

use axum::http::StatusCode;
use labs_testapp::{TestApp, TestAppBuilder};
use labs_testkit::Answer;
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::PgPool;

const PASSWORD: &str = "correct horse battery staple";

/// The settings of every test here: the in-process "peer" is the trusted proxy.
const BEHIND_PROXY: [&str; 2] = ["--trusted-proxies", "0.0.0.0/32"];

/// The application behind the trusted proxy, with `settings`.
fn limited(db: &PgPool, settings: &[&str]) -> TestAppBuilder {
    TestApp::builder(db.clone())
        .settings(&BEHIND_PROXY)
        .settings(settings)
}

/// `POST path` with `body`, from the client `from` (as the proxy reports it).
async fn post_from(app: &TestApp, from: &str, path: &str, body: Value) -> Answer {
    app.call("POST", path, Some(body), &[("x-forwarded-for", from)])
        .await
}

async fn login_from(app: &TestApp, from: &str, email: &str, password: &str) -> StatusCode {
    post_from(
        app,
        from,
        "/api/auth/token",
        json!({"email": email, "password": password}),
    )
    .await
    .status
}

/// An account made directly in the database, with [`PASSWORD`].
async fn user(db: &PgPool, email: &str, verified: bool) -> labs_domain::UserId {
    labs_testapp::insert_user_with_password(db, email, PASSWORD, false, verified).await
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn strangers_wrong_passwords_do_not_lock_the_owner_out(db: PgPool) {
    let app = limited(&db, &["--rate-limit-failures-per-client", "3/15m"]).spawn();
    user(&db, "ada@example.com", true).await;

    // Ten addresses guess until each is refused: 30 wrong passwords in all.
    for stranger in 1..=10 {
        let from = format!("198.51.100.{stranger}");
        for _ in 0..3 {
            let answer = login_from(&app, &from, "ada@example.com", "wrong password").await;
            assert_eq!(answer, StatusCode::UNAUTHORIZED, "{from}");
        }
        let refused = login_from(&app, &from, "ada@example.com", "wrong password").await;
        assert_eq!(
            refused,
            StatusCode::TOO_MANY_REQUESTS,
            "{from} keeps guessing"
        );
    }

    let owner = login_from(&app, "203.0.113.7", "ada@example.com", PASSWORD).await;
    assert_eq!(owner, StatusCode::OK, "the owner, from his own client");
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn right_passwords_are_not_counted_as_failures(db: PgPool) {
    let app = limited(&db, &["--rate-limit-failures-per-client", "3/15m"]).spawn();
    user(&db, "ada@example.com", true).await;

    for _ in 0..5 {
        let answer = login_from(&app, "203.0.113.7", "ada@example.com", PASSWORD).await;
        assert_eq!(answer, StatusCode::OK);
    }
    for _ in 0..2 {
        let answer = login_from(&app, "203.0.113.7", "ada@example.com", "typo").await;
        assert_eq!(answer, StatusCode::UNAUTHORIZED);
    }
    let answer = login_from(&app, "203.0.113.7", "ada@example.com", PASSWORD).await;
    assert_eq!(answer, StatusCode::OK, "two typos of three allowed");
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn parallel_guesses_from_one_client_stay_within_its_budget(db: PgPool) {
    let app = limited(&db, &["--rate-limit-failures-per-client", "3/15m"]).spawn();
    user(&db, "ada@example.com", true).await;

    // Twelve guesses at once: each is counted before its hash, so no more than three are
    // checked, however many are in flight.
    let mut guesses = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let app = app.clone();
        guesses.spawn(async move {
            login_from(&app, "198.51.100.1", "ada@example.com", "wrong password").await
        });
    }
    let statuses = guesses.join_all().await;
    let checked = statuses
        .iter()
        .filter(|status| **status == StatusCode::UNAUTHORIZED)
        .count();
    let refused = statuses
        .iter()
        .filter(|status| **status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((checked, refused), (3, 9), "{statuses:?}");
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn the_account_ceiling_stops_guessing_from_many_clients_but_not_known_ones(db: PgPool) {
    let app = limited(&db, &["--rate-limit-failures-per-account", "5/15m"]).spawn();
    user(&db, "ada@example.com", true).await;
    // The owner's usual client: logged in to this account before.
    let home = "203.0.113.7";
    assert_eq!(
        login_from(&app, home, "ada@example.com", PASSWORD).await,
        StatusCode::OK
    );

    for stranger in 1..=5 {
        let from = format!("198.51.100.{stranger}");
        let answer = login_from(&app, &from, "ada@example.com", "wrong password").await;
        assert_eq!(answer, StatusCode::UNAUTHORIZED);
    }
    let sixth = login_from(&app, "198.51.100.6", "ada@example.com", "wrong password").await;
    assert_eq!(sixth, StatusCode::TOO_MANY_REQUESTS);

    // The owner at home is not refused; his own typos there count only against that client.
    let owner = login_from(&app, home, "ada@example.com", PASSWORD).await;
    assert_eq!(owner, StatusCode::OK, "a known client");
    // The price of the ceiling (docs/SECURITY.md): on a client he never logged in from, the
    // owner waits too while strangers keep it spent.
    let travelling = login_from(&app, "192.0.2.50", "ada@example.com", PASSWORD).await;
    assert_eq!(travelling, StatusCode::TOO_MANY_REQUESTS);
    // Another account is not affected.
    user(&db, "bob@example.com", true).await;
    let bob = login_from(&app, "198.51.100.6", "bob@example.com", PASSWORD).await;
    assert_eq!(bob, StatusCode::OK);
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn forty_addresses_of_one_ipv6_64_share_one_budget(db: PgPool) {
    // The default budget, 30, per hour rather than per minute: none of it comes back while the
    // test runs, however slowly.
    let app = limited(&db, &["--rate-limit-per-ip", "30/1h"]).spawn();
    let mut statuses = Vec::new();
    for host in 1..=40 {
        // A different account each time: only the per-client budget can refuse.
        let email = format!("user{host}@example.com");
        let from = format!("2001:db8:1:2::{host:x}");
        statuses.push(login_from(&app, &from, &email, "wrong password").await);
    }
    let refused = statuses
        .iter()
        .filter(|status| **status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(refused, 10, "{statuses:?}");

    // Another /64 has its own budget.
    let other = login_from(&app, "2001:db8:1:3::1", "x@example.com", "wrong password").await;
    assert_eq!(other, StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn an_ipv4_mapped_address_is_the_same_client_as_its_ipv4(db: PgPool) {
    let app = limited(&db, &["--rate-limit-per-ip", "4/1h"]).spawn();
    for (attempt, from) in ["203.0.113.9", "::ffff:203.0.113.9"]
        .iter()
        .cycle()
        .take(4)
        .enumerate()
    {
        let email = format!("user{attempt}@example.com");
        let answer = login_from(&app, from, &email, "wrong password").await;
        assert_eq!(answer, StatusCode::UNAUTHORIZED, "{from}");
    }
    let fifth = login_from(
        &app,
        "::ffff:203.0.113.9",
        "z@example.com",
        "wrong password",
    )
    .await;
    assert_eq!(fifth, StatusCode::TOO_MANY_REQUESTS);
}

/// The 6-digit code on a line of its own in the next email.
async fn next_code(app: &TestApp) -> String {
    labs_testapp::code_in(&app.next_email().await)
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn strangers_wrong_codes_do_not_stop_the_owner_logging_in_with_one(db: PgPool) {
    let app = limited(&db, &["--rate-limit-failures-per-client", "3/15m"])
        .smtp()
        .spawn();
    user(&db, "ada@example.com", true).await;

    for stranger in 1..=10 {
        let from = format!("198.51.100.{stranger}");
        let guess = json!({"email": "ada@example.com", "code": "123456"});
        for _ in 0..3 {
            let answer = post_from(&app, &from, "/api/auth/otp/verify", guess.clone()).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{from}");
        }
        let refused = post_from(&app, &from, "/api/auth/otp/verify", guess).await;
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{from}");
    }

    let owner = "203.0.113.7";
    let asked = post_from(
        &app,
        owner,
        "/api/auth/otp",
        json!({"email": "ada@example.com"}),
    )
    .await;
    assert_eq!(asked.status, StatusCode::ACCEPTED);
    let code = next_code(&app).await;
    let answer = post_from(
        &app,
        owner,
        "/api/auth/otp/verify",
        json!({"email": "ada@example.com", "code": code}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn one_address_receives_at_most_five_emails_whatever_asks_for_them(db: PgPool) {
    let app = limited(&db, &[]).smtp().spawn();
    // Unverified, so that every family mails it: signup (taken), reset, code, verification.
    user(&db, "ada@example.com", false).await;

    let mut asked = 0;
    for _ in 0..3 {
        for (path, body) in [
            (
                "/api/auth/signup",
                json!({"email": "ada@example.com", "password": "another long password"}),
            ),
            (
                "/api/auth/password-reset",
                json!({"email": "ada@example.com"}),
            ),
            ("/api/auth/otp", json!({"email": "ada@example.com"})),
            (
                "/api/auth/verification",
                json!({"email": "ada@example.com"}),
            ),
        ] {
            let answer = post_from(&app, "198.51.100.1", path, body).await;
            assert_eq!(answer.status, StatusCode::ACCEPTED, "{path}");
            asked += 1;
        }
    }

    assert_eq!(app.emails_sent().await, 5, "of {asked} asked for");
    let stats = app.queue.stats().await.unwrap();
    assert_eq!((stats.dead, stats.retrying), (0, 0), "dropped, not failed");

    // A security notice still goes out: whoever spent the budget must not keep the owner
    // from hearing that the password changed.
    let notice = labs_jobs::jobs::SendEmail {
        to: "ada@example.com".to_owned(),
        email: labs_accounts::emails::AccountEmail::PasswordChanged.message(),
    };
    let mut tx = db.begin().await.unwrap();
    labs_jobs::outbox::enqueue(&mut tx, notice).await.unwrap();
    tx.commit().await.unwrap();
    let messages = app.emails().await;
    assert_eq!(messages.len(), 6, "the notice is not capped");
    assert!(
        messages
            .iter()
            .any(|m| m.contains("Your password was changed")),
        "{messages:?}"
    );
}

/// While Redis does not answer, the credential endpoints keep answering and keep limiting: each
/// replica enforces its share of the quota in its own memory (here one replica: the whole
/// quota), and when Redis is back the limits are Redis' again (shared by every replica).
#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn limits_hold_per_replica_while_redis_is_down_and_return_to_redis(db: PgPool) {
    user(&db, "ada@example.com", true).await;
    let mut redis = labs_testkit::RedisServer::start();
    let app = limited(&db, &["--rate-limit-per-ip", "3/1m"])
        .redis(&redis.url())
        .spawn();

    redis.stop();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(login_from(&app, "203.0.113.9", "ada@example.com", PASSWORD).await);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ],
        "logins answered, and limited, with Redis down"
    );
    let signup = post_from(
        &app,
        "198.51.100.7",
        "/api/auth/signup",
        json!({"email": "bob@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(signup.status, StatusCode::ACCEPTED, "{}", signup.text());

    // Back: the limiter asks Redis again within a second, and its counts start there.
    redis.restart();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let from_new_client = login_from(&app, "192.0.2.1", "ada@example.com", PASSWORD).await;
    assert_eq!(from_new_client, StatusCode::OK);
    let mut connection = labs_db::redis::connect_lazy(
        &SecretString::from(redis.url()),
        &labs_testapp::redis_config(),
    )
    .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*:login:ip:192.0.2.1")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(
        keys.len(),
        1,
        "the limit is counted in Redis again: {keys:?}"
    );
    // The signup's email waited in the outbox through the outage.
    app.drain().await;
}
