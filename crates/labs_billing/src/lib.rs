//! The billing feature: payments with Stripe, everything of it in one crate.
//!
//! - [`router`]: the billing API (`/billing/checkout`, `/portal`, `/subscription`), for any
//!   state that offers [`Billing`] and `labs_accounts::Accounts` by `FromRef`.
//! - [`hooks`]: the webhook receiver (`/hooks/stripe`), served by the `hooks` role: verify,
//!   store the event with its job in one transaction (outbox), answer 2xx.
//! - [`events`]: the `process_stripe_event` job, payload and handler, that applies a stored
//!   event to the billing tables in the worker; [`jobs`] registers it.
//! - [`db`]: its SQL; [`stripe`]: Stripe's protocol (signature check, a thin client).
//!
//! The template's `stripe` option is this crate: switched off, the crate goes with a few
//! wiring lines (the route, the hooks role, the job line, the settings).

pub mod api;
pub mod db;
pub mod events;
pub mod hooks;
pub mod ids;
pub mod stripe;

use axum::extract::FromRef;
use labs_accounts::Accounts;
use labs_jobs::Registry;
use utoipa_axum::router::OpenApiRouter;

pub use api::{Billing, BillingConfig};
pub use events::{BillingContext, ProcessStripeEvent};
pub use hooks::{DEV_STRIPE_WEBHOOK_SECRET, HooksConfig, HooksState};
pub use ids::{CheckoutSessionId, CustomerId, StripeEventId, SubscriptionId};

/// The billing API's routes, under `/billing`.
pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Billing: FromRef<S>,
    Accounts: FromRef<S>,
{
    OpenApiRouter::new().nest("/billing", api::router())
}

/// Billing's job types, for the worker's list (see `labs_worker::jobs`).
pub fn jobs<C: BillingContext, R: Registry<C>>(registry: R) -> R {
    registry
        // Stripe webhook events, applied to the billing tables.
        .job::<ProcessStripeEvent>()
}
