//! The billing feature: payments with Stripe, everything of it in one crate.
//!
//! - [`router`]: the billing API (`/billing/checkout`, `/portal`, `/subscription`), for any
//!   state that offers [`Billing`] and `labs_accounts::Accounts` by `FromRef`.
//! - [`hooks`](hooks()): the webhook receiver (`/hooks/stripe`), served by the `hooks` role:
//!   verify, store the event with its job in one transaction (outbox), answer 2xx.
//! - [`events`]: the `process_stripe_event` job, payload and handler, that applies a stored
//!   event to the billing tables in the worker; [`jobs`] registers it.
//! - [`db`]: its SQL; [`stripe`]: Stripe's protocol (signature check, a thin client).
//!
//! What the roles take of it is the feature contract of `labs_features` (the service's list
//! of features): [`Settings`], [`part`], [`router`], [`hooks()`], [`jobs`], [`schedule`].
//! The template's `stripe` option is this crate: switched off, the crate goes with its line
//! in that list.

pub mod api;
pub mod db;
pub mod events;
pub mod hooks;
pub mod ids;
pub mod stripe;

use anyhow::Context as _;
use axum::extract::FromRef;
use labs_accounts::Accounts;
use labs_http::AppState;
use labs_jobs::{Periodic, Registry};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use api::{Billing, BillingConfig};
pub use events::ProcessStripeEvent;
pub use hooks::{DEV_STRIPE_WEBHOOK_SECRET, HooksConfig, HooksState};
pub use ids::{CheckoutSessionId, CustomerId, StripeEventId, SubscriptionId};

/// Billing's settings: the api role's (Stripe API key, prices) and the hooks role's (webhook
/// secrets), flattened into `labs serve`'s.
#[derive(Debug, Clone, clap::Args)]
// No argument group: every feature's settings struct is called `Settings`, and clap's group
// ids (the type name) must be unique in one command.
#[group(skip)]
pub struct Settings {
    #[command(flatten)]
    pub api: BillingConfig,

    #[command(flatten)]
    pub hooks: HooksConfig,
}

/// What the api role's handlers reach of billing, built once per process.
pub fn part(app: &AppState, accounts: &Accounts, settings: &Settings) -> anyhow::Result<Billing> {
    Billing::new(app.db.clone(), settings.api.clone(), &accounts.auth.app_url)
        .context("the Stripe client cannot be built")
}

#[derive(OpenApi)]
#[openapi(tags((name = "billing", description = "Payments with Stripe: checkout, customer portal, subscription state")))]
struct BillingDoc;

/// The billing API's routes, under `/billing`.
pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Billing: FromRef<S>,
    Accounts: FromRef<S>,
{
    OpenApiRouter::with_openapi(BillingDoc::openapi()).nest("/billing", api::router())
}

/// The hooks role's routes of billing: `/hooks/stripe`. It needs only the webhook secrets: no
/// JWT or Stripe API key. Refused in production without a secret of its own.
pub fn hooks(
    app: &AppState,
    settings: &Settings,
    production: bool,
) -> anyhow::Result<axum::Router> {
    Ok(hooks::router(HooksState {
        app: app.clone(),
        secrets: std::sync::Arc::new(hooks::webhook_secrets(&settings.hooks, production)?),
        tolerance: settings.hooks.stripe_webhook_tolerance,
    }))
}

/// Billing's job types, for the worker's list (see `labs_worker::jobs`).
pub fn jobs<C: labs_jobs::Context, R: Registry<C>>(registry: R) -> R {
    registry
        // Stripe webhook events, applied to the billing tables.
        .job::<ProcessStripeEvent>()
}

/// Billing's periodic jobs: none (Stripe's events arrive by webhook).
pub fn schedule() -> Vec<Periodic> {
    Vec::new()
}
