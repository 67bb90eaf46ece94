//! The __features__ feature, everything of it in one crate (made by `make new-feature
//! name=__features__`; docs/ADDING-A-FEATURE.md says what each part is for):
//!
//! - [`router`]: `/__features__`, the signed-in user's __features__: list, create, get,
//!   update, delete, with their OpenAPI paths and camelCase bodies, bad input a 422
//!   problem+json naming each failing field ([`api`]);
//! - [`db`]: its SQL (the table is in `migrations/…___features__.sql`);
//! - [`jobs`](mod@jobs): `__feature___created`, written through the outbox in the transaction that
//!   creates the row, whose handler emails the owner and marks the row confirmed; and
//!   `purge_deleted___features__`, the periodic job that removes rows deleted 30 days ago;
//! - [`values`]: the validated values its bodies carry ([`Title`], [`Details`]).
//!
//! What the roles take of it is the feature contract of `labs_features` (its line there):
//! [`Settings`], [`part`], [`router`], [`hooks()`], [`jobs()`], [`schedule`].

pub mod api;
pub mod db;
pub mod jobs;
pub mod values;

use axum::extract::FromRef;
use labs_accounts::Accounts;
use labs_http::AppState;
use labs_jobs::{Context, Periodic, Registry};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use api::__Features__;
pub use jobs::{__Feature__Created, PurgeDeleted__Features__};
pub use values::{Details, Title};

labs_domain::uuid_id!(
    /// A __feature__'s id (`__features__.id`).
    __Feature__Id
);

/// The __features__ feature's settings, flattened into `labs serve`'s (`LABS___FEATURES___…`
/// variables). None yet: add a field with `#[arg(long, env = "LABS___FEATURES___…")]`.
#[derive(Debug, Clone, clap::Args)]
// No argument group: every feature's settings struct is called `Settings`, and clap's group
// ids (the type name) must be unique in one command.
#[group(skip)]
pub struct Settings {}

/// What the api role's handlers reach of this feature, built once per process.
pub fn part(
    app: &AppState,
    _accounts: &Accounts,
    _settings: &Settings,
) -> anyhow::Result<__Features__> {
    Ok(__Features__::new(app.db.clone()))
}

#[derive(OpenApi)]
#[openapi(tags((name = "__features__", description = "The signed-in user's __features__")))]
struct __Features__Doc;

/// The feature's routes, under `/__features__`, for any state that offers [`__Features__`] and
/// `Accounts` (who is signed in) by `FromRef`.
pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    __Features__: FromRef<S>,
    Accounts: FromRef<S>,
{
    OpenApiRouter::with_openapi(__Features__Doc::openapi()).nest("/__features__", api::router())
}

/// The hooks role's routes of this feature: none (it receives no webhooks).
pub fn hooks(
    _app: &AppState,
    _settings: &Settings,
    _production: bool,
) -> anyhow::Result<axum::Router> {
    Ok(axum::Router::new())
}

/// The feature's job types, for the worker's list (see `labs_worker::jobs`).
pub fn jobs<C: Context, R: Registry<C>>(registry: R) -> R {
    registry
        // Tells the owner a new __feature__ was recorded (written through the outbox).
        .job::<__Feature__Created>()
        // Removes rows deleted 30 days ago (periodic).
        .job::<PurgeDeleted__Features__>()
}

/// The feature's periodic jobs, for the scheduler's list.
pub fn schedule() -> Vec<Periodic> {
    vec![
        // Hourly, at minute 41 (off the hour's peak and the accounts' purge at 17).
        Periodic::every::<PurgeDeleted__Features__>("0 41 * * * *"),
    ]
}
