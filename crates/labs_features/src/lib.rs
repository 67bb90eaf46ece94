//! The service's features, in one list: [`features!`] below is the only place that names
//! them. Each line gives a feature's field name and its crate's part type; the roles take
//! from it, in a loop, what each needs:
//!
//! - `labs serve` flattens [`Settings`] into its own (each feature's `LABS_…` variables and
//!   flags), builds [`Parts`] for the api role (into [`ApiState`]) and merges [`hooks`] into
//!   the hooks role;
//! - the route table (labs_api) merges [`router`], the OpenAPI document follows from it;
//! - the worker (labs_worker) registers [`jobs`] and the scheduler runs [`schedule`].
//!
//! A feature crate `labs_x` offers, for its line here (labs_billing and the `make
//! new-feature` scaffold show them; docs/ADDING-A-FEATURE.md walks through them):
//!
//! ```text
//! pub struct Settings                 clap::Args: its settings
//! pub fn part(&AppState, &Accounts, &Settings) -> anyhow::Result<Part>   its handlers' state
//! pub fn router<S>() -> OpenApiRouter<S>     its routes, for any S with FromRef for its Part
//! pub fn hooks(&AppState, &Settings, production: bool) -> anyhow::Result<Router>
//! pub fn jobs<C: labs_jobs::Context, R: Registry<C>>(R) -> R
//! pub fn schedule() -> Vec<labs_jobs::Periodic>
//! ```
//!
//! Accounts is not in the list: it is the identity every feature builds on (its `CurrentUser`
//! and `AdminUser` guard the others' routes), so it is part of the base state, [`ApiParts`].
//!
//! Why a `macro_rules!` list and not a trait with a tuple of features: the api role's state
//! must offer each feature's part by `FromRef` (so that a feature's handlers name only their
//! part), which needs one concrete field and one impl per feature; a trait would still need
//! them written by hand, where the macro writes them from the one line.

mod state;

pub use state::{ApiParts, ApiState};

/// Writes, for the features listed, the items the roles take (see the crate's docs).
macro_rules! features {
    ($($name:ident: $krate:ident::$part:ident,)*) => {
        /// Every feature's settings, flattened into `labs serve`'s.
        #[derive(Debug, Clone, clap::Args)]
        #[group(skip)]
        pub struct Settings {
            $(
                #[command(flatten)]
                pub $name: $krate::Settings,
            )*
        }

        /// Every feature's part of the api role's state, each offered by `FromRef`.
        #[derive(Debug, Clone)]
        pub struct Parts {
            $(pub $name: $krate::$part,)*
        }

        impl Parts {
            /// Each feature's part, built once per process by the api role.
            #[allow(unused_variables, reason = "a service may list no feature")]
            pub fn new(
                app: &labs_http::AppState,
                accounts: &labs_accounts::Accounts,
                settings: &Settings,
            ) -> anyhow::Result<Self> {
                Ok(Self {
                    $($name: $krate::part(app, accounts, &settings.$name)?,)*
                })
            }
        }

        $(
            impl axum::extract::FromRef<ApiState> for $krate::$part {
                fn from_ref(state: &ApiState) -> Self {
                    state.features.$name.clone()
                }
            }
        )*

        /// Every feature's routes, with their OpenAPI description (the route table merges them).
        pub fn router() -> utoipa_axum::router::OpenApiRouter<ApiState> {
            utoipa_axum::router::OpenApiRouter::new()
                $(.merge($krate::router()))*
        }

        /// Every feature's webhook receivers, for the hooks role.
        #[allow(unused_variables, reason = "a service may list no feature")]
        pub fn hooks(
            app: &labs_http::AppState,
            settings: &Settings,
            production: bool,
        ) -> anyhow::Result<axum::Router> {
            Ok(axum::Router::new()
                $(.merge($krate::hooks(app, &settings.$name, production)?))*)
        }

        /// Every feature's job types, for the worker's list (labs_worker::jobs).
        pub fn jobs<C: labs_jobs::Context, R: labs_jobs::Registry<C>>(registry: R) -> R {
            registry
                $(.include($krate::jobs))*
        }

        /// Every feature's periodic jobs, for the scheduler's list.
        pub fn schedule() -> Vec<labs_jobs::Periodic> {
            std::iter::empty()
                $(.chain($krate::schedule()))*
                .collect()
        }
    };
}

// The list. `make new-feature name=orders` adds its line here.
features! {
    billing: labs_billing::Billing, // template:only stripe
}
