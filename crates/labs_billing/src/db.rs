//! Payments: Stripe customers, webhook events, subscription state, one-time payments.

use labs_domain::UserId;

use crate::ids::{CheckoutSessionId, CustomerId, StripeEventId, SubscriptionId};
use sqlx::PgExecutor;
use time::OffsetDateTime;

// --- customers -------------------------------------------------------------------------------

pub async fn customer_of(
    db: impl PgExecutor<'_>,
    user_id: UserId,
) -> Result<Option<CustomerId>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT customer_id FROM stripe_customers WHERE user_id = $1",
        user_id.as_uuid()
    )
    .fetch_optional(db)
    .await
    .map(|id| id.map(CustomerId::new))
}

/// Links `customer_id` to `user_id`, unless the user has a customer already; returns the
/// customer the user ends up with (the first one wins a race), or `None` when a concurrent
/// link is not visible to this statement yet (read it again with [`customer_of`]).
pub async fn link_customer(
    db: impl PgExecutor<'_>,
    user_id: UserId,
    customer_id: &CustomerId,
) -> Result<Option<CustomerId>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"WITH inserted AS (
               INSERT INTO stripe_customers (user_id, customer_id) VALUES ($1, $2)
               ON CONFLICT DO NOTHING RETURNING customer_id
           )
           SELECT customer_id AS "customer_id!" FROM inserted
           UNION ALL
           SELECT customer_id FROM stripe_customers WHERE user_id = $1
           LIMIT 1"#,
        user_id.as_uuid(),
        customer_id.as_str()
    )
    .fetch_optional(db)
    .await
    .map(|id| id.map(CustomerId::new))
}

pub async fn user_of_customer(
    db: impl PgExecutor<'_>,
    customer_id: &CustomerId,
) -> Result<Option<UserId>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT user_id FROM stripe_customers WHERE customer_id = $1",
        customer_id.as_str()
    )
    .fetch_optional(db)
    .await
    .map(|id| id.map(UserId::from_uuid))
}

// --- events ----------------------------------------------------------------------------------

/// A webhook event as received.
#[derive(Debug, Clone)]
pub struct StripeEvent {
    pub id: StripeEventId,
    pub kind: String,
    pub created: OffsetDateTime,
    pub livemode: bool,
    pub payload: serde_json::Value,
    pub processed_at: Option<OffsetDateTime>,
}

/// Stores an event; false if it was stored before (a redelivery).
pub async fn insert_event(
    db: impl PgExecutor<'_>,
    event: &StripeEvent,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "INSERT INTO stripe_events (id, type, created, livemode, payload) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (id) DO NOTHING",
        event.id.as_str(),
        event.kind,
        event.created,
        event.livemode,
        event.payload
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn event(
    db: impl PgExecutor<'_>,
    id: &StripeEventId,
) -> Result<Option<StripeEvent>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT id, type AS kind, created, livemode, payload, processed_at FROM stripe_events WHERE id = $1"#,
        id.as_str()
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| StripeEvent {
        id: StripeEventId::new(r.id),
        kind: r.kind,
        created: r.created,
        livemode: r.livemode,
        payload: r.payload,
        processed_at: r.processed_at,
    }))
}

/// Marks an event processed; false if it already was (a concurrent run got there first).
pub async fn mark_processed(
    db: impl PgExecutor<'_>,
    id: &StripeEventId,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE stripe_events SET processed_at = now() WHERE id = $1 AND processed_at IS NULL",
        id.as_str()
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

// --- subscriptions ---------------------------------------------------------------------------

/// A subscription's state as an event describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: SubscriptionId,
    pub user_id: UserId,
    pub customer_id: CustomerId,
    pub status: String,
    pub price_id: Option<String>,
    pub current_period_end: Option<OffsetDateTime>,
    pub cancel_at_period_end: bool,
    pub state_as_of: OffsetDateTime,
    pub last_invoice_status: Option<String>,
}

/// Applies a subscription's state unless a newer event was applied already: out-of-order
/// deliveries cannot move the state backwards. Returns whether it was applied.
pub async fn apply_subscription(
    db: impl PgExecutor<'_>,
    state: &Subscription,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "INSERT INTO subscriptions
             (id, user_id, customer_id, status, price_id, current_period_end, cancel_at_period_end, state_as_of)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (id) DO UPDATE SET
             status = EXCLUDED.status, price_id = EXCLUDED.price_id,
             current_period_end = EXCLUDED.current_period_end,
             cancel_at_period_end = EXCLUDED.cancel_at_period_end,
             state_as_of = EXCLUDED.state_as_of
         WHERE subscriptions.state_as_of <= EXCLUDED.state_as_of",
        state.id.as_str(),
        state.user_id.as_uuid(),
        state.customer_id.as_str(),
        state.status,
        state.price_id,
        state.current_period_end,
        state.cancel_at_period_end,
        state.state_as_of
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records an invoice outcome on its subscription, unless a newer one was recorded.
pub async fn apply_invoice(
    db: impl PgExecutor<'_>,
    subscription_id: &SubscriptionId,
    invoice_status: &str,
    as_of: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE subscriptions SET last_invoice_status = $2, last_invoice_as_of = $3
         WHERE id = $1 AND (last_invoice_as_of IS NULL OR last_invoice_as_of <= $3)",
        subscription_id.as_str(),
        invoice_status,
        as_of
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The user's current subscription: the most recently described one.
pub async fn subscription_of(
    db: impl PgExecutor<'_>,
    user_id: UserId,
) -> Result<Option<Subscription>, sqlx::Error> {
    let row = sqlx::query!(
        "SELECT id, user_id, customer_id, status, price_id, current_period_end, cancel_at_period_end,
                state_as_of, last_invoice_status
         FROM subscriptions WHERE user_id = $1 ORDER BY state_as_of DESC LIMIT 1",
        user_id.as_uuid()
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| Subscription {
        id: SubscriptionId::new(r.id),
        user_id: UserId::from_uuid(r.user_id),
        customer_id: CustomerId::new(r.customer_id),
        status: r.status,
        price_id: r.price_id,
        current_period_end: r.current_period_end,
        cancel_at_period_end: r.cancel_at_period_end,
        state_as_of: r.state_as_of,
        last_invoice_status: r.last_invoice_status,
    }))
}

// --- one-time payments -----------------------------------------------------------------------

/// Records a completed one-time Checkout payment (once per session).
pub async fn record_payment(
    db: impl PgExecutor<'_>,
    checkout_session_id: &CheckoutSessionId,
    user_id: UserId,
    amount_total: Option<i64>,
    currency: Option<&str>,
    payment_status: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO payments (checkout_session_id, user_id, amount_total, currency, payment_status)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (checkout_session_id) DO UPDATE SET payment_status = EXCLUDED.payment_status",
        checkout_session_id.as_str(),
        user_id.as_uuid(),
        amount_total,
        currency,
        payment_status
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn subscription_exists(
    db: impl PgExecutor<'_>,
    id: &SubscriptionId,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM subscriptions WHERE id = $1) AS "exists!""#,
        id.as_str()
    )
    .fetch_one(db)
    .await
}
