//! The webhook receiver: `POST /hooks/stripe`, deployed as its own role (`labs serve --role
//! hooks`) so that Stripe's bursts (and retries) scale apart from the API, and so that it needs
//! only the webhook secrets, no JWT or Stripe API keys.
//!
//! What it does, and nothing more: check the signature on the raw body, store the event keyed
//! by Stripe's id, write its processing job to the outbox in the same transaction, answer 200.
//! A redelivery finds the event stored and is acknowledged without a second job. Redis being
//! down changes nothing: the outbox relays the job when it is back. The business work happens
//! in the worker (`process_stripe_event`).
//!
//! Not in the public OpenAPI document: its only client is Stripe, whose format is Stripe's.

use crate::ids::StripeEventId;
use std::sync::Arc;
use std::time::Duration;

use crate::db::StripeEvent;
use crate::events::ProcessStripeEvent;
use crate::stripe::SignatureError;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use labs_http::extract::Json;
use labs_http::metrics::WebhookOutcome;
use labs_http::{ApiError, AppState};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The receiver's settings.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Webhooks (hooks role)")]
pub struct HooksConfig {
    /// Stripe webhook endpoint secrets (`whsec_...`), comma-separated: several while a secret
    /// is rolled. Required for the hooks role in production.
    #[arg(
        long,
        env = "LABS_STRIPE_WEBHOOK_SECRETS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub stripe_webhook_secrets: Vec<SecretString>,

    /// How far a delivery's signed timestamp may be from now (Stripe's default: 5 minutes).
    #[arg(long, env = "LABS_STRIPE_WEBHOOK_TOLERANCE", default_value = "300s", value_parser = humantime::parse_duration)]
    pub stripe_webhook_tolerance: Duration,
}

/// The development secret, for `stripe listen --forward-to` and local tests. Production refuses it.
pub const DEV_STRIPE_WEBHOOK_SECRET: &str = "whsec_development_only";

/// The webhook secrets: the development secret when none is set in development; in production
/// at least one, none of them the development one (in any spelling).
pub(crate) fn webhook_secrets(
    config: &HooksConfig,
    production: bool,
) -> anyhow::Result<Vec<SecretString>> {
    let secrets: Vec<SecretString> = config
        .stripe_webhook_secrets
        .iter()
        .filter(|secret| !secret.expose_secret().trim().is_empty())
        .cloned()
        .collect();
    if secrets.is_empty() {
        if production {
            anyhow::bail!("LABS_STRIPE_WEBHOOK_SECRETS must be set when LABS_ENV=production");
        }
        return Ok(vec![SecretString::from(DEV_STRIPE_WEBHOOK_SECRET)]);
    }
    if production
        && secrets
            .iter()
            .any(|secret| is_dev_webhook_secret(secret.expose_secret()))
    {
        anyhow::bail!(
            "LABS_STRIPE_WEBHOOK_SECRETS holds the development secret (spelt differently); \
             production needs the signing secret of its Stripe endpoint"
        );
    }
    Ok(secrets)
}

/// Whether `secret` is the development webhook secret up to spelling: surrounding whitespace,
/// letter case, with or without Stripe's `whsec_` prefix.
fn is_dev_webhook_secret(secret: &str) -> bool {
    let normal = |secret: &str| {
        let secret = secret.trim().to_ascii_lowercase();
        secret
            .strip_prefix("whsec_")
            .map_or(secret.clone(), str::to_owned)
    };
    normal(secret) == normal(DEV_STRIPE_WEBHOOK_SECRET)
}

/// What the receiver needs.
#[derive(Debug, Clone)]
pub struct HooksState {
    pub app: AppState,
    pub secrets: Arc<Vec<SecretString>>,
    pub tolerance: Duration,
}

/// `/hooks/stripe`, ready for the shared layers.
pub fn router(state: HooksState) -> Router {
    // No `utoipa::path`: webhooks stay out of the public API document (docs/API-CONVENTIONS.md).
    Router::new()
        .route("/hooks/stripe", post(receive_stripe))
        .with_state(state)
}

/// The fields of an event the receiver reads; the rest is stored as is.
#[derive(Debug, Deserialize)]
struct EventHead {
    id: StripeEventId,
    #[serde(rename = "type")]
    kind: String,
    created: i64,
    #[serde(default)]
    livemode: bool,
}

/// The acknowledgement.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Received {
    pub received: bool,
    /// The event had been received before; it was not processed again.
    pub duplicate: bool,
}

fn counted(outcome: WebhookOutcome) {
    labs_http::metrics::webhook_event("stripe", outcome);
}

fn rejected(error: SignatureError) -> ApiError {
    counted(WebhookOutcome::Rejected);
    tracing::warn!(%error, "webhook delivery refused");
    let (code, detail) = match error {
        SignatureError::Missing => (
            "missing-signature",
            "The Stripe-Signature header is missing.",
        ),
        SignatureError::Malformed => (
            "malformed-signature",
            "The Stripe-Signature header is malformed.",
        ),
        SignatureError::NoMatch => ("invalid-signature", "No signature matches this payload."),
        SignatureError::Stale => (
            "stale-signature",
            "The signature's timestamp is too old or in the future.",
        ),
    };
    ApiError::BadRequest { code, detail }
}

async fn receive_stripe(
    State(state): State<HooksState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Received>), ApiError> {
    let header = headers
        .get("stripe-signature")
        .and_then(|value| value.to_str().ok());
    let tolerance = i64::try_from(state.tolerance.as_secs()).unwrap_or(i64::MAX);
    let now = OffsetDateTime::now_utc().unix_timestamp();
    crate::stripe::verify(&body, header, &state.secrets, tolerance, now).map_err(rejected)?;

    let malformed = || {
        counted(WebhookOutcome::Rejected);
        ApiError::BadRequest {
            code: "malformed-event",
            detail: "The payload is not a Stripe event.",
        }
    };
    let payload: serde_json::Value = serde_json::from_slice(&body).map_err(|_| malformed())?;
    let head: EventHead = serde_json::from_value(payload.clone()).map_err(|_| malformed())?;
    let created = OffsetDateTime::from_unix_timestamp(head.created).map_err(|_| malformed())?;
    let event = StripeEvent {
        id: head.id,
        kind: head.kind,
        created,
        livemode: head.livemode,
        payload,
        processed_at: None,
    };

    let mut tx = state.app.db.begin().await?;
    let fresh = crate::db::insert_event(&mut *tx, &event).await?;
    if fresh {
        let job = ProcessStripeEvent {
            event_id: event.id.clone(),
        };
        labs_jobs::outbox::enqueue(&mut tx, job).await?;
    }
    tx.commit().await?;
    counted(if fresh {
        WebhookOutcome::Accepted
    } else {
        WebhookOutcome::Duplicate
    });
    tracing::info!(event.id = %event.id, event.kind = %event.kind, duplicate = !fresh, "webhook event received");
    Ok((
        StatusCode::OK,
        Json(Received {
            received: true,
            duplicate: !fresh,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::{HooksConfig, is_dev_webhook_secret, webhook_secrets};

    #[test]
    fn the_development_webhook_secret_is_recognised_in_any_spelling() {
        for spelt in [
            "whsec_development_only",
            "whsec_development_only ",
            "\twhsec_development_only\n",
            "WHSEC_DEVELOPMENT_ONLY",
            "development_only",
        ] {
            assert!(is_dev_webhook_secret(spelt), "{spelt:?}");
        }
        assert!(!is_dev_webhook_secret("whsec_9f8e7d6c5b4a"));
    }

    #[test]
    fn production_needs_a_secret_of_its_own_and_development_has_a_default() {
        let config = |secrets: &[&str]| HooksConfig {
            stripe_webhook_secrets: secrets.iter().map(|s| SecretString::from(*s)).collect(),
            stripe_webhook_tolerance: std::time::Duration::from_secs(300),
        };
        assert_eq!(webhook_secrets(&config(&[]), false).unwrap().len(), 1);
        assert_eq!(webhook_secrets(&config(&[" "]), false).unwrap().len(), 1);
        let unset = webhook_secrets(&config(&[]), true).unwrap_err().to_string();
        assert!(unset.contains("must be set"), "{unset}");
        let dev = webhook_secrets(&config(&["whsec_own", "WHSEC_DEVELOPMENT_ONLY"]), true);
        assert!(dev.unwrap_err().to_string().contains("development"));
        assert_eq!(
            webhook_secrets(&config(&["whsec_a", "whsec_b"]), true)
                .unwrap()
                .len(),
            2
        );
    }
}
