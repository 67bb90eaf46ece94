//! `/billing`: the signed-in user's payments. Checkout (a subscription or a one-time
//! purchase), the Customer Portal (manage or cancel), and the subscription's state as the
//! webhooks last described it. Stripe holds the money; we hold who is which customer.

use crate::ids::CustomerId;
use std::time::Duration;

use std::sync::Arc;

use axum::extract::{FromRef, State};
use labs_accounts::{Accounts, CurrentUser};
use labs_db::Db;
use labs_http::ApiError;
use labs_http::extract::Json;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::stripe::StripeClient;
use crate::stripe::client::{CheckoutRequest, Mode};

/// Stripe settings of the api role.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Payments (Stripe)")]
pub struct BillingConfig {
    /// Stripe secret API key (`sk_live_...`, `sk_test_...`). Unset: the billing endpoints
    /// answer 503 `payments-not-configured`.
    #[arg(long, env = "LABS_STRIPE_SECRET_KEY", hide_env_values = true)]
    pub stripe_secret_key: Option<SecretString>,

    /// Stripe API base URL (a local fake in tests).
    #[arg(
        long,
        env = "LABS_STRIPE_API_BASE",
        default_value = "https://api.stripe.com"
    )]
    pub stripe_api_base: String,

    /// The recurring Price a subscription checkout buys (`price_...`).
    #[arg(long, env = "LABS_STRIPE_PRICE_SUBSCRIPTION")]
    pub stripe_price_subscription: Option<String>,

    /// The one-time Price a payment checkout buys (`price_...`).
    #[arg(long, env = "LABS_STRIPE_PRICE_ONE_TIME")]
    pub stripe_price_one_time: Option<String>,

    /// Deadline of each call to Stripe.
    #[arg(long, env = "LABS_STRIPE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub stripe_timeout: Duration,
}

/// What the billing endpoints reach: the pool, the configured Stripe client and prices, and
/// where the app's pages are. One `Arc`, offered by the application's state by `FromRef`.
#[derive(Debug, Clone)]
pub struct Billing(Arc<BillingParts>);

/// The parts of [`Billing`].
#[derive(Debug)]
pub struct BillingParts {
    db: Db,
    client: Option<StripeClient>,
    config: BillingConfig,
    /// The web app's base URL (`LABS_APP_URL`): Stripe sends the user back to its pages.
    app_url: String,
}

impl std::ops::Deref for Billing {
    type Target = BillingParts;

    fn deref(&self) -> &BillingParts {
        &self.0
    }
}

impl Billing {
    pub fn new(
        db: Db,
        config: BillingConfig,
        app_url: &str,
    ) -> Result<Self, crate::stripe::StripeError> {
        let client = match &config.stripe_secret_key {
            Some(key) => Some(StripeClient::new(
                &config.stripe_api_base,
                key.clone(),
                config.stripe_timeout,
            )?),
            None => None,
        };
        Ok(Self(Arc::new(BillingParts {
            db,
            client,
            config,
            app_url: app_url.trim_end_matches('/').to_owned(),
        })))
    }
}

/// `/checkout`, `/portal`, `/subscription`, for any state that offers [`Billing`] and (for the
/// caller) [`Accounts`].
pub(crate) fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Billing: FromRef<S>,
    Accounts: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(create_checkout_session))
        .routes(routes!(create_portal_session))
        .routes(routes!(get_subscription))
}

const NOT_CONFIGURED: ApiError =
    ApiError::Unavailable("Payments are not configured on this deployment.");

fn client(state: &Billing) -> Result<&StripeClient, ApiError> {
    state.client.as_ref().ok_or(NOT_CONFIGURED)
}

fn stripe_failed(error: &crate::stripe::StripeError) -> ApiError {
    tracing::warn!(%error, "a Stripe call failed");
    ApiError::Unavailable("The payment provider did not answer as expected; try again shortly.")
}

/// The user's Stripe customer, created (once) on first need.
async fn customer(state: &Billing, caller: &CurrentUser) -> Result<CustomerId, ApiError> {
    let user = &caller.user;
    if let Some(customer) = crate::db::customer_of(&state.db, user.id).await? {
        return Ok(customer);
    }
    // A key per user: concurrent first checkouts make one customer at Stripe, not two.
    let created = client(state)?
        .create_customer(
            &user.email,
            &user.id.to_string(),
            &format!("customer-{}", user.id),
        )
        .await
        .map_err(|error| stripe_failed(&error))?;
    match crate::db::link_customer(&state.db, user.id, &created.id).await? {
        Some(customer) => Ok(customer),
        None => crate::db::customer_of(&state.db, user.id)
            .await?
            .ok_or_else(|| ApiError::internal("the customer link vanished")),
    }
}

/// What to buy.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Purchase {
    /// The configured recurring price.
    Subscription,
    /// The configured one-time price.
    OneTime,
}

/// A checkout to start.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckoutRequestBody {
    pub purchase: Purchase,
}

/// Where to send the user.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedirectResponse {
    /// The Stripe-hosted page.
    pub url: String,
    /// The Stripe object's id (`cs_...` for a Checkout Session), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

fn app_url(state: &Billing, page: &str) -> String {
    format!("{}/{page}", state.app_url)
}

fn idempotency_key() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Start a Stripe Checkout.
///
/// Creates the user's Stripe customer on first need, then a Checkout Session for the
/// configured price; send the user to `url`. The outcome arrives by webhook.
#[utoipa::path(
    post,
    path = "/checkout",
    tag = "billing",
    request_body = CheckoutRequestBody,
    responses(
        (status = 200, description = "The Checkout page", body = RedirectResponse),
        (status = 401, description = "Not authenticated"),
        (status = 503, description = "Payments are not configured, or Stripe failed"),
    ),
    security(("bearerAuth" = [])),
)]
pub(crate) async fn create_checkout_session(
    State(state): State<Billing>,
    caller: CurrentUser,
    Json(request): Json<CheckoutRequestBody>,
) -> Result<Json<RedirectResponse>, ApiError> {
    let config = &state.config;
    let (price, mode) = match request.purchase {
        Purchase::Subscription => (
            config.stripe_price_subscription.as_deref(),
            Mode::Subscription,
        ),
        Purchase::OneTime => (config.stripe_price_one_time.as_deref(), Mode::Payment),
    };
    client(&state)?;
    let price = price.ok_or(ApiError::Unavailable(
        "This purchase is not configured on this deployment.",
    ))?;
    let customer = customer(&state, &caller).await?;
    let user_id = caller.user.id.to_string();
    let success_url = app_url(&state, "billing/success?session_id={CHECKOUT_SESSION_ID}");
    let cancel_url = app_url(&state, "billing/cancelled");
    let checkout = CheckoutRequest {
        customer: &customer,
        price,
        mode,
        user_id: &user_id,
        success_url: &success_url,
        cancel_url: &cancel_url,
    };
    let session = client(&state)?
        .create_checkout_session(&checkout, &idempotency_key())
        .await
        .map_err(|error| stripe_failed(&error))?;
    let url = session
        .url
        .ok_or_else(|| ApiError::internal("a Checkout Session without a url"))?;
    Ok(Json(RedirectResponse {
        url,
        id: Some(session.id.to_string()),
    }))
}

/// Open the Stripe Customer Portal.
///
/// Where the user updates payment methods, sees invoices, and changes or cancels the
/// subscription; send them to `url`. 409 before their first checkout (no customer yet).
#[utoipa::path(
    post,
    path = "/portal",
    tag = "billing",
    responses(
        (status = 200, description = "The portal page", body = RedirectResponse),
        (status = 401, description = "Not authenticated"),
        (status = 409, description = "No Stripe customer yet"),
        (status = 503, description = "Payments are not configured, or Stripe failed"),
    ),
    security(("bearerAuth" = [])),
)]
pub(crate) async fn create_portal_session(
    State(state): State<Billing>,
    caller: CurrentUser,
) -> Result<Json<RedirectResponse>, ApiError> {
    let client = client(&state)?;
    let customer = crate::db::customer_of(&state.db, caller.user.id)
        .await?
        .ok_or(ApiError::Conflict {
            code: "no-customer",
            detail: "There is nothing to manage before a first checkout.",
        })?;
    let session = client
        .create_portal_session(&customer, &app_url(&state, "billing"), &idempotency_key())
        .await
        .map_err(|error| stripe_failed(&error))?;
    Ok(Json(RedirectResponse {
        url: session.url,
        id: None,
    }))
}

/// The user's subscription, as the webhooks last described it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionResponse {
    /// Stripe's status (`active`, `trialing`, `past_due`, `canceled`, ...), or `none`.
    pub status: String,
    pub price_id: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub current_period_end: Option<OffsetDateTime>,
    pub cancel_at_period_end: bool,
    /// The last invoice's outcome: `paid` or `payment_failed`.
    pub last_invoice_status: Option<String>,
}

/// The caller's subscription.
///
/// Read from our database (kept current by the webhooks), not from Stripe: fast, and
/// available when Stripe is not.
#[utoipa::path(
    get,
    path = "/subscription",
    tag = "billing",
    responses(
        (status = 200, description = "The subscription's state", body = SubscriptionResponse),
        (status = 401, description = "Not authenticated"),
    ),
    security(("bearerAuth" = [])),
)]
pub(crate) async fn get_subscription(
    State(state): State<Billing>,
    caller: CurrentUser,
) -> Result<Json<SubscriptionResponse>, ApiError> {
    let found = crate::db::subscription_of(&state.db, caller.user.id).await?;
    Ok(Json(match found {
        Some(subscription) => SubscriptionResponse {
            status: subscription.status,
            price_id: subscription.price_id,
            current_period_end: subscription.current_period_end,
            cancel_at_period_end: subscription.cancel_at_period_end,
            last_invoice_status: subscription.last_invoice_status,
        },
        None => SubscriptionResponse {
            status: "none".to_owned(),
            price_id: None,
            current_period_end: None,
            cancel_at_period_end: false,
            last_invoice_status: None,
        },
    }))
}
