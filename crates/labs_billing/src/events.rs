//! The `process_stripe_event` job: applies a stored webhook event to the billing tables.
//!
//! Idempotent and order-tolerant: an event marked processed is skipped; subscription state
//! carries the `created` time of the event it came from and an older event never overwrites a
//! newer one; an event that names a user we cannot resolve yet (its customer not linked because
//! the checkout event has not been processed) fails and is retried with backoff.

use crate::db::{StripeEvent, Subscription};
use crate::ids::{CheckoutSessionId, CustomerId, StripeEventId, SubscriptionId};
use labs_domain::UserId;
use labs_jobs::{Handler, Job, JobError};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use serde::{Deserialize, Serialize};

/// Applies one stored Stripe webhook event (`stripe_events`) to the billing tables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessStripeEvent {
    /// Stripe's event id (`evt_...`), the key of the stored event.
    pub event_id: StripeEventId,
}

impl Job for ProcessStripeEvent {
    const NAME: &'static str = "process_stripe_event";
    const QUEUE: &'static str = "billing";
    // Retries cover an event that arrives before the one it depends on (a subscription event
    // before its customer is known): about 4 hours of backoff.
    const MAX_ATTEMPTS: u32 = 12;
    const BASE_BACKOFF: std::time::Duration = std::time::Duration::from_secs(5);
}

/// Runs on any worker context (the platform's [`labs_jobs::Context`]: the pool is all it needs),
/// so this crate never names the worker's type.
impl<C: labs_jobs::Context> Handler<C> for ProcessStripeEvent {
    async fn handle(self, ctx: &C) -> Result<(), JobError> {
        let Some(event) = crate::db::event(ctx.db(), &self.event_id).await? else {
            // The job is only written with its event: a missing row was deleted on purpose.
            tracing::warn!(event.id = %self.event_id, "stripe event not found; nothing to do");
            return Ok(());
        };
        if event.processed_at.is_some() {
            return Ok(());
        }
        let object = &event.payload["data"]["object"];
        let mut tx = ctx.db().begin().await?;
        match event.kind.as_str() {
            "checkout.session.completed" => checkout_completed(&mut tx, &event, object).await?,
            "customer.subscription.created"
            | "customer.subscription.updated"
            | "customer.subscription.deleted" => {
                subscription_changed(&mut tx, &event, object).await?;
            }
            "invoice.paid" | "invoice.payment_failed" => {
                invoice_settled(&mut tx, &event, object).await?;
            }
            // Stored (for the record) and acknowledged; nothing to apply.
            other => tracing::debug!(event.kind = other, "stripe event type not handled"),
        }
        crate::db::mark_processed(&mut *tx, &event.id).await?;
        tx.commit().await?;
        tracing::info!(event.id = %event.id, event.kind = %event.kind, "stripe event applied");
        Ok(())
    }
}

fn text<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

fn timestamp(value: &Value) -> Option<OffsetDateTime> {
    value
        .as_i64()
        .and_then(|seconds| OffsetDateTime::from_unix_timestamp(seconds).ok())
}

/// The user an object belongs to: our id in its metadata (we put it there when creating the
/// customer, session and subscription), else the user linked to its customer.
async fn user_of(
    tx: &mut labs_db::PgConnection,
    object: &Value,
    customer: Option<&CustomerId>,
) -> Result<Option<UserId>, JobError> {
    // Parsed at the edge: the id we put in the Checkout session's metadata.
    let from_metadata = text(&object["metadata"], "user_id")
        .or_else(|| text(object, "client_reference_id"))
        .and_then(|id| Uuid::parse_str(id).ok())
        .map(UserId::from_uuid);
    if from_metadata.is_some() {
        return Ok(from_metadata);
    }
    match customer {
        Some(customer) => Ok(crate::db::user_of_customer(&mut *tx, customer).await?),
        None => Ok(None),
    }
}

fn unresolved(event: &StripeEvent) -> JobError {
    format!(
        "stripe event {} ({}) names no user we know yet; retrying",
        event.id, event.kind
    )
    .into()
}

async fn checkout_completed(
    tx: &mut labs_db::PgConnection,
    event: &StripeEvent,
    session: &Value,
) -> Result<(), JobError> {
    let customer = text(session, "customer").map(CustomerId::new);
    let user = user_of(tx, session, customer.as_ref())
        .await?
        .ok_or_else(|| unresolved(event))?;
    if let Some(customer) = &customer {
        crate::db::link_customer(&mut *tx, user, customer).await?;
    }
    if text(session, "mode") == Some("payment") {
        let id = text(session, "id").ok_or("checkout session without an id")?;
        crate::db::record_payment(
            &mut *tx,
            &CheckoutSessionId::new(id),
            user,
            session["amount_total"].as_i64(),
            text(session, "currency"),
            text(session, "payment_status").unwrap_or("unknown"),
        )
        .await?;
    }
    // A subscription's state comes from its own events (which may come before or after this).
    Ok(())
}

async fn subscription_changed(
    tx: &mut labs_db::PgConnection,
    event: &StripeEvent,
    subscription: &Value,
) -> Result<(), JobError> {
    let id = text(subscription, "id").ok_or("subscription without an id")?;
    let customer = text(subscription, "customer")
        .map(CustomerId::new)
        .ok_or("subscription without a customer")?;
    let user = user_of(tx, subscription, Some(&customer))
        .await?
        .ok_or_else(|| unresolved(event))?;
    let item = &subscription["items"]["data"][0];
    let status = if event.kind == "customer.subscription.deleted" {
        "canceled"
    } else {
        text(subscription, "status").unwrap_or("unknown")
    };
    let state = Subscription {
        id: SubscriptionId::new(id),
        user_id: user,
        customer_id: customer,
        status: status.to_owned(),
        price_id: text(&item["price"], "id").map(str::to_owned),
        // Newer API versions moved the period onto the items.
        current_period_end: timestamp(&subscription["current_period_end"])
            .or_else(|| timestamp(&item["current_period_end"])),
        cancel_at_period_end: subscription["cancel_at_period_end"]
            .as_bool()
            .unwrap_or(false),
        state_as_of: event.created,
        last_invoice_status: None,
    };
    if !crate::db::apply_subscription(&mut *tx, &state).await? {
        tracing::info!(event.id = %event.id, subscription = id, "older than the state applied: ignored");
    }
    Ok(())
}

async fn invoice_settled(
    tx: &mut labs_db::PgConnection,
    event: &StripeEvent,
    invoice: &Value,
) -> Result<(), JobError> {
    // `subscription` on older API versions, `parent.subscription_details.subscription` on newer.
    let Some(subscription) = text(invoice, "subscription")
        .or_else(|| text(&invoice["parent"]["subscription_details"], "subscription"))
        .map(SubscriptionId::new)
    else {
        return Ok(()); // A one-off invoice: nothing of ours to update.
    };
    let outcome = if event.kind == "invoice.paid" {
        "paid"
    } else {
        "payment_failed"
    };
    if !crate::db::apply_invoice(&mut *tx, &subscription, outcome, event.created).await? {
        // Unknown subscription (its created event still to come) or an older invoice event.
        if !crate::db::subscription_exists(&mut *tx, &subscription).await? {
            return Err(unresolved(event));
        }
    }
    Ok(())
}
