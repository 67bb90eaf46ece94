//! The billing feature over HTTP: the webhook receiver with payloads signed by Stripe's own
//! SDK (npm `stripe`), the worker applying events (once, in any order, after a Redis outage),
//! and the billing API, on `labs_testapp::TestApp`, against a local fake of Stripe's documented
//! endpoints. The hooks role as a production process: `crates/labs/tests/process/payments.rs`.
//!
//! Over 400 lines on purpose: one scenario per promise of the receiver and the API, sharing
//! the fake Stripe and the signing helpers; split, each part would carry the same fixtures.

use labs_billing::StripeEventId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use labs_billing::HooksState;
use labs_billing::ProcessStripeEvent;
use labs_domain::UserId;
use labs_http::HttpApp;
use labs_jobs::Handler;
use labs_jobs::jobs::RelayOutbox;
use labs_testapp::{TestApp, hooks_role, state_with_redis};
use labs_testapp::{insert_user, insert_user_with_password, job_queue};
use labs_testkit::{Answer, RedisServer, send, shared_redis_url, unique_name};
use labs_worker::WorkerContext;
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::PgPool;

const SECRET: &str = "whsec_test_current";
const OLD_SECRET: &str = "whsec_test_previous";

/// The hooks role's application (with the health endpoints), on `db` and `redis_url`.
fn hooks_app(db: PgPool, redis_url: &str) -> HttpApp {
    let state = state_with_redis(db, redis_url);
    let hooks = HooksState {
        app: state.clone(),
        secrets: Arc::new(vec![
            SecretString::from(OLD_SECRET),
            SecretString::from(SECRET),
        ]),
        tolerance: Duration::from_secs(300),
    };
    let hooks = labs_billing::hooks::router(hooks);
    hooks_role(state, hooks)
}

/// `Stripe-Signature` for `payload`, computed by Stripe's official Node SDK.
fn stripe_signature(payload: &str, secret: &str, timestamp: i64) -> String {
    use std::io::Write;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/stripe/sign.js");
    let mut child = std::process::Command::new("node")
        .args([script, secret, &timestamp.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node runs (scripts/node-tools.sh installs it and the SDK)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(payload.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "sign.js: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

async fn deliver(app: &HttpApp, payload: &str, signature: Option<&str>) -> Answer {
    let mut request = Request::post("/hooks/stripe").header("content-type", "application/json");
    if let Some(signature) = signature {
        request = request.header("stripe-signature", signature);
    }
    send(app, request.body(Body::from(payload.to_owned())).unwrap()).await
}

async fn deliver_signed(app: &HttpApp, event: &Value) -> Answer {
    let payload = event.to_string();
    let signature = stripe_signature(&payload, SECRET, now());
    deliver(app, &payload, Some(&signature)).await
}

fn subscription_event(id: &str, kind: &str, created: i64, user: UserId, status: &str) -> Value {
    json!({
        "id": id, "object": "event", "type": kind, "created": created, "livemode": false,
        "data": {"object": {
            "id": "sub_123", "object": "subscription", "customer": "cus_123", "status": status,
            "cancel_at_period_end": false, "current_period_end": created + 30 * 86400,
            "metadata": {"user_id": user.to_string()},
            "items": {"data": [{"price": {"id": "price_monthly"}}]}
        }}
    })
}

fn worker(db: &PgPool, redis_url: &str) -> WorkerContext {
    let mailer = labs_testapp::mailer(None);
    WorkerContext::new(
        labs_db::Db::like(db),
        job_queue(redis_url, &unique_name("billing")),
        mailer,
    )
}

async fn status_of(db: &PgPool, user: UserId) -> Option<String> {
    labs_billing::db::subscription_of(db, user)
        .await
        .unwrap()
        .map(|s| s.status)
}

/// Runs the worker (relaying the outbox as the scheduler does) until `user` has a subscription.
async fn work_until_applied(ctx: &WorkerContext, db: &PgPool, user: UserId) {
    let stop = tokio_util::sync::CancellationToken::new();
    let config = labs_jobs::RuntimeConfig {
        concurrency: 2,
        drain: Duration::from_secs(2),
    };
    let running = tokio::spawn(labs_worker::run_worker(ctx.clone(), config, stop.clone()));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while status_of(db, user).await.is_none() {
        let _ = RelayOutbox::default().handle(ctx).await;
        assert!(
            std::time::Instant::now() < deadline,
            "the event was not applied"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.cancel();
    running.await.unwrap();
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn an_event_signed_by_stripe_is_stored_once_and_applied_once(db: PgPool) {
    let app = hooks_app(db.clone(), &shared_redis_url());
    let ada = insert_user(&db, "ada@example.com").await;
    let event = subscription_event(
        "evt_1",
        "customer.subscription.created",
        now(),
        ada,
        "active",
    );

    let first = deliver_signed(&app, &event).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    assert_eq!(first.json(), json!({"received": true, "duplicate": false}));
    let again = deliver_signed(&app, &event).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json(), json!({"received": true, "duplicate": true}));
    assert_eq!(
        labs_jobs::outbox::pending(&db).await.unwrap(),
        1,
        "one processing job for two deliveries"
    );
    assert_eq!(
        status_of(&db, ada).await,
        None,
        "the receiver does no business work"
    );

    // The worker, through the outbox and the queue.
    let ctx = worker(&db, &shared_redis_url());
    RelayOutbox::default().handle(&ctx).await.unwrap();
    work_until_applied(&ctx, &db, ada).await;
    let stored = labs_billing::db::event(&db, &StripeEventId::new("evt_1"))
        .await
        .unwrap()
        .unwrap();
    assert!(stored.processed_at.is_some());
    assert_eq!(status_of(&db, ada).await.as_deref(), Some("active"));

    // Processing it again (a duplicate job) changes nothing.
    ProcessStripeEvent {
        event_id: StripeEventId::new("evt_1"),
    }
    .handle(&ctx)
    .await
    .unwrap();
    let after = labs_billing::db::event(&db, &StripeEventId::new("evt_1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.processed_at, stored.processed_at);
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn forged_tampered_stale_and_unsigned_deliveries_are_400_problems(db: PgPool) {
    let app = hooks_app(db.clone(), &shared_redis_url());
    let ada = insert_user(&db, "ada@example.com").await;
    let payload = subscription_event(
        "evt_2",
        "customer.subscription.created",
        now(),
        ada,
        "active",
    )
    .to_string();
    let good = stripe_signature(&payload, SECRET, now());
    let tampered = payload.replace("active", "trialing");
    let cases = [
        (
            "tampered body",
            tampered.as_str(),
            Some(good.clone()),
            "invalid-signature",
        ),
        (
            "wrong secret",
            payload.as_str(),
            Some(stripe_signature(&payload, "whsec_attacker", now())),
            "invalid-signature",
        ),
        (
            "stale timestamp",
            payload.as_str(),
            Some(stripe_signature(&payload, SECRET, now() - 301)),
            "stale-signature",
        ),
        (
            "future timestamp",
            payload.as_str(),
            Some(stripe_signature(&payload, SECRET, now() + 310)),
            "stale-signature",
        ),
        (
            "missing header",
            payload.as_str(),
            None,
            "missing-signature",
        ),
        (
            "malformed header",
            payload.as_str(),
            Some("t=now,v1=xyz".to_owned()),
            "malformed-signature",
        ),
    ];
    for (name, body, signature, code) in cases {
        let answer = deliver(&app, body, signature.as_deref()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{name}");
        assert_eq!(
            answer.header("content-type"),
            "application/problem+json",
            "{name}"
        );
        assert_eq!(answer.json()["code"], code, "{name}");
    }
    let not_an_event = "{\"hello\": 1}";
    let answer = deliver(
        &app,
        not_an_event,
        Some(&stripe_signature(not_an_event, SECRET, now())),
    )
    .await;
    assert_eq!(answer.json()["code"], "malformed-event");
    assert!(
        labs_billing::db::event(&db, &StripeEventId::new("evt_2"))
            .await
            .unwrap()
            .is_none(),
        "nothing stored"
    );
    assert_eq!(labs_jobs::outbox::pending(&db).await.unwrap(), 0);

    // During a secret rotation both secrets are accepted.
    let old = stripe_signature(&payload, OLD_SECRET, now());
    assert_eq!(
        deliver(&app, &payload, Some(&old)).await.status,
        StatusCode::OK
    );
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn events_applied_out_of_order_leave_the_newest_state(db: PgPool) {
    let app = hooks_app(db.clone(), &shared_redis_url());
    let ctx = worker(&db, &shared_redis_url());
    let ada = insert_user(&db, "ada@example.com").await;
    let t = now();
    let created = subscription_event(
        "evt_a",
        "customer.subscription.created",
        t - 60,
        ada,
        "active",
    );
    let updated = subscription_event(
        "evt_b",
        "customer.subscription.updated",
        t - 30,
        ada,
        "past_due",
    );
    let invoice = |id: &str, kind: &str, at: i64| {
        json!({"id": id, "type": kind, "created": at, "livemode": false,
               "data": {"object": {"id": "in_1", "object": "invoice", "customer": "cus_123", "subscription": "sub_123"}}})
    };
    let failed = invoice("evt_c", "invoice.payment_failed", t - 20);
    let paid_earlier = invoice("evt_d", "invoice.paid", t - 40);
    let unknown = json!({"id": "evt_e", "type": "radar.early_fraud_warning.created", "created": t, "data": {"object": {}}});
    for event in [&failed, &updated, &created, &paid_earlier, &unknown] {
        assert_eq!(deliver_signed(&app, event).await.status, StatusCode::OK);
    }
    // The invoice arrives before its subscription is known: it fails (and would be retried).
    let early = ProcessStripeEvent {
        event_id: StripeEventId::new("evt_c"),
    }
    .handle(&ctx)
    .await;
    assert!(
        early.is_err(),
        "an invoice of an unknown subscription waits"
    );
    for id in ["evt_b", "evt_a", "evt_c", "evt_d", "evt_e"] {
        ProcessStripeEvent {
            event_id: StripeEventId::new(id),
        }
        .handle(&ctx)
        .await
        .unwrap();
    }
    let state = labs_billing::db::subscription_of(&db, ada)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        state.status, "past_due",
        "the older `created` event did not win"
    );
    assert_eq!(
        state.last_invoice_status.as_deref(),
        Some("payment_failed"),
        "the older `paid` did not win"
    );
    assert_eq!(state.price_id.as_deref(), Some("price_monthly"));
    assert!(
        labs_billing::db::event(&db, &StripeEventId::new("evt_e"))
            .await
            .unwrap()
            .unwrap()
            .processed_at
            .is_some(),
        "unknown types are acknowledged"
    );

    let deleted = subscription_event("evt_f", "customer.subscription.deleted", t, ada, "active");
    deliver_signed(&app, &deleted).await;
    ProcessStripeEvent {
        event_id: StripeEventId::new("evt_f"),
    }
    .handle(&ctx)
    .await
    .unwrap();
    assert_eq!(status_of(&db, ada).await.as_deref(), Some("canceled"));
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn an_event_accepted_while_redis_is_down_is_applied_once_it_is_back(db: PgPool) {
    let mut redis = RedisServer::durable();
    let app = hooks_app(db.clone(), &redis.url());
    let ctx = worker(&db, &redis.url());
    let ada = insert_user(&db, "ada@example.com").await;
    redis.stop();
    let event = subscription_event(
        "evt_r",
        "customer.subscription.created",
        now(),
        ada,
        "trialing",
    );
    let answer = deliver_signed(&app, &event).await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "accepted without Redis: {}",
        answer.text()
    );
    RelayOutbox::default().handle(&ctx).await.unwrap();
    assert_eq!(
        labs_jobs::outbox::pending(&db).await.unwrap(),
        1,
        "kept in the outbox while Redis is down"
    );

    redis.restart();
    work_until_applied(&ctx, &db, ada).await;
    assert_eq!(status_of(&db, ada).await.as_deref(), Some("trialing"));
}

/// A local fake of the three Stripe endpoints the billing API calls (their documented request
/// and response shapes), recording each request. No Stripe-compatible server on the reachable
/// registries serves Checkout or the Customer Portal (localstripe has neither): see
/// docs/PAYMENTS.md.
#[derive(Clone, Default)]
struct FakeStripe {
    calls: Arc<Mutex<Vec<Call>>>,
}

/// A request to the fake: path, headers, form fields.
type Call = (String, HashMap<String, String>, HashMap<String, String>);

impl FakeStripe {
    async fn start() -> (Self, String) {
        let fake = Self::default();
        let recorded = fake.clone();
        let app = Router::new().fallback(move |request: Request<Body>| {
            let recorded = recorded.clone();
            async move {
                let path = request.uri().path().to_owned();
                let headers: HashMap<String, String> = request
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
                    .collect();
                let body = axum::body::to_bytes(request.into_body(), 1 << 20).await.unwrap();
                let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
                recorded.calls.lock().unwrap().push((path.clone(), headers.clone(), form.clone()));
                if headers.get("authorization").map(String::as_str) != Some("Bearer sk_test_fake") {
                    return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": {"type": "invalid_request_error", "message": "bad key"}})));
                }
                let answer = match path.as_str() {
                    "/v1/customers" => json!({"id": "cus_fake1", "object": "customer", "email": form["email"]}),
                    "/v1/checkout/sessions" => json!({"id": "cs_test_1", "object": "checkout.session", "mode": form["mode"],
                                                      "url": "https://checkout.stripe.com/c/pay/cs_test_1"}),
                    "/v1/billing_portal/sessions" => json!({"id": "bps_1", "object": "billing_portal.session",
                                                            "url": "https://billing.stripe.com/p/session/bps_1"}),
                    _ => return (StatusCode::NOT_FOUND, axum::Json(json!({"error": {"type": "invalid_request_error", "message": "no such path"}}))),
                };
                (StatusCode::OK, axum::Json(answer))
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (fake, url)
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

/// A verified account made in the database, logged in through the API; its access token.
async fn logged_in(app: &TestApp, email: &str) -> String {
    insert_user_with_password(&app.db, email, "correct horse battery", false, true).await;
    let tokens = app.login(email, "correct horse battery").await;
    tokens["access_token"].as_str().unwrap().to_owned()
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn checkout_portal_and_subscription_state_through_the_billing_api(db: PgPool) {
    let (fake, base) = FakeStripe::start().await;
    let app = TestApp::builder(db.clone())
        .settings(&[
            "--stripe-secret-key",
            "sk_test_fake",
            "--stripe-api-base",
            &base,
            "--stripe-price-subscription",
            "price_monthly",
            "--stripe-price-one-time",
            "price_once",
        ])
        .spawn();
    let token = logged_in(&app, "ada@example.com").await;

    let none = app
        .call_as("GET", "/api/billing/subscription", &token, None)
        .await;
    assert_eq!(none.json()["status"], "none");
    let portal = app
        .call_as("POST", "/api/billing/portal", &token, None)
        .await;
    assert_eq!(
        portal.status,
        StatusCode::CONFLICT,
        "no customer before a first checkout"
    );

    let checkout = app
        .call_as(
            "POST",
            "/api/billing/checkout",
            &token,
            Some(json!({"purchase": "subscription"})),
        )
        .await;
    assert_eq!(checkout.status, StatusCode::OK, "{}", checkout.text());
    assert_eq!(
        checkout.json()["url"],
        "https://checkout.stripe.com/c/pay/cs_test_1"
    );
    let again = app
        .call_as(
            "POST",
            "/api/billing/checkout",
            &token,
            Some(json!({"purchase": "one_time"})),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK);
    let portal = app
        .call_as("POST", "/api/billing/portal", &token, None)
        .await;
    assert_eq!(
        portal.json()["url"],
        "https://billing.stripe.com/p/session/bps_1"
    );

    let calls = fake.calls();
    let paths: Vec<&str> = calls.iter().map(|(path, _, _)| path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/v1/customers",
            "/v1/checkout/sessions",
            "/v1/checkout/sessions",
            "/v1/billing_portal/sessions"
        ],
        "one customer, created on first need"
    );
    for (path, headers, _) in &calls {
        assert!(
            headers
                .get("idempotency-key")
                .is_some_and(|k| !k.is_empty()),
            "{path} has an idempotency key"
        );
    }
    let (_, _, subscription) = &calls[1];
    let user_id = labs_accounts::db::users::credentials(&db, Some("ada@example.com"), None)
        .await
        .unwrap()
        .unwrap()
        .user
        .id
        .to_string();
    assert_eq!(subscription["mode"], "subscription");
    assert_eq!(subscription["customer"], "cus_fake1");
    assert_eq!(subscription["line_items[0][price]"], "price_monthly");
    assert_eq!(subscription["client_reference_id"], user_id);
    assert_eq!(
        subscription["subscription_data[metadata][user_id]"],
        user_id
    );
    assert_eq!(calls[2].2["mode"], "payment");
    assert_eq!(calls[2].2["line_items[0][price]"], "price_once");
    assert_eq!(calls[0].1["idempotency-key"], format!("customer-{user_id}"));

    let anonymous = app
        .send(
            Request::post("/api/billing/checkout")
                .header("content-type", "application/json")
                .body(Body::from("{\"purchase\":\"subscription\"}"))
                .unwrap(),
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn billing_without_stripe_settings_is_a_clear_503(db: PgPool) {
    let app = TestApp::new(db.clone());
    let token = logged_in(&app, "ada@example.com").await;
    let answer = app
        .call_as(
            "POST",
            "/api/billing/checkout",
            &token,
            Some(json!({"purchase": "subscription"})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.header("content-type"), "application/problem+json");
}

/// Billing's operations in the OpenAPI document (app/api.rs checks the platform's and the
/// accounts' ones, and that every operation is summarised and documents its errors).
#[test]
fn billing_operations_are_named_after_their_handlers() {
    let document = serde_json::to_value(labs_api::openapi("/api")).unwrap();
    let expected = [
        ("/billing/checkout", "post", "create_checkout_session"),
        ("/billing/portal", "post", "create_portal_session"),
        ("/billing/subscription", "get", "get_subscription"),
    ];
    let billing: usize = document["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter(|operation| operation["tags"] == json!(["billing"]))
        .count();
    assert_eq!(billing, expected.len());
    for (path, method, operation_id) in expected {
        assert_eq!(
            document["paths"][path][method]["operationId"], operation_id,
            "{method} {path}"
        );
    }
}
