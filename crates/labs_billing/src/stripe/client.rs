//! A thin typed client for the Stripe API calls the billing API makes: create a customer, a
//! Checkout Session and a Customer Portal session. Form-encoded POSTs with an idempotency key
//! each (a retried call never creates a second object), JSON answers, Stripe's error body
//! turned into [`StripeError::Api`].

use crate::ids::{CheckoutSessionId, CustomerId};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Calls Stripe (or whatever `base_url` points at: a fake in tests).
#[derive(Clone)]
pub struct StripeClient {
    http: reqwest::Client,
    base_url: String,
    secret_key: SecretString,
}

impl std::fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeClient")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    #[error("Stripe cannot be reached: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("Stripe answered {status} ({kind}): {message}")]
    Api {
        status: u16,
        kind: String,
        message: String,
    },
    #[error("Stripe's answer does not have the expected shape: {0}")]
    Decode(#[from] serde_json::Error),
}

/// A customer.
#[derive(Debug, Clone, Deserialize)]
pub struct Customer {
    pub id: CustomerId,
}

/// A Checkout Session: send the user to `url`.
#[derive(Debug, Clone, Deserialize)]
pub struct CheckoutSession {
    pub id: CheckoutSessionId,
    pub url: Option<String>,
}

/// A Customer Portal session: send the user to `url`.
#[derive(Debug, Clone, Deserialize)]
pub struct PortalSession {
    pub url: String,
}

/// What is bought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Subscription,
    Payment,
}

/// A Checkout Session to create.
#[derive(Debug, Clone)]
pub struct CheckoutRequest<'a> {
    pub customer: &'a CustomerId,
    pub price: &'a str,
    pub mode: Mode,
    /// Our user id: comes back as `client_reference_id` and in the metadata of the session
    /// and of the subscription, so that webhook events name the user.
    pub user_id: &'a str,
    pub success_url: &'a str,
    pub cancel_url: &'a str,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: String,
}

impl StripeClient {
    pub fn new(
        base_url: &str,
        secret_key: SecretString,
        timeout: Duration,
    ) -> Result<Self, StripeError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("labs/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            secret_key,
        })
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        form: &[(&str, &str)],
        idempotency_key: &str,
    ) -> Result<T, StripeError> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let response = self
            .http
            .post(format!("{}{path}", self.base_url))
            .bearer_auth(self.secret_key.expose_secret())
            .header("Idempotency-Key", idempotency_key)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        if !status.is_success() {
            let detail = serde_json::from_slice::<ErrorBody>(&bytes)
                .map(|body| body.error)
                .unwrap_or(ErrorDetail {
                    kind: "unknown".to_owned(),
                    message: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
                });
            return Err(StripeError::Api {
                status: status.as_u16(),
                kind: detail.kind,
                message: detail.message,
            });
        }
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// Creates the customer of a user (the key makes a repeated call return the same one).
    pub async fn create_customer(
        &self,
        email: &str,
        user_id: &str,
        idempotency_key: &str,
    ) -> Result<Customer, StripeError> {
        self.post(
            "/v1/customers",
            &[("email", email), ("metadata[user_id]", user_id)],
            idempotency_key,
        )
        .await
    }

    pub async fn create_checkout_session(
        &self,
        request: &CheckoutRequest<'_>,
        idempotency_key: &str,
    ) -> Result<CheckoutSession, StripeError> {
        let mode = match request.mode {
            Mode::Subscription => "subscription",
            Mode::Payment => "payment",
        };
        let mut form = vec![
            ("mode", mode),
            ("customer", request.customer.as_str()),
            ("client_reference_id", request.user_id),
            ("line_items[0][price]", request.price),
            ("line_items[0][quantity]", "1"),
            ("success_url", request.success_url),
            ("cancel_url", request.cancel_url),
            ("metadata[user_id]", request.user_id),
        ];
        if request.mode == Mode::Subscription {
            form.push(("subscription_data[metadata][user_id]", request.user_id));
        }
        self.post("/v1/checkout/sessions", &form, idempotency_key)
            .await
    }

    pub async fn create_portal_session(
        &self,
        customer: &CustomerId,
        return_url: &str,
        idempotency_key: &str,
    ) -> Result<PortalSession, StripeError> {
        self.post(
            "/v1/billing_portal/sessions",
            &[("customer", customer.as_str()), ("return_url", return_url)],
            idempotency_key,
        )
        .await
    }
}
