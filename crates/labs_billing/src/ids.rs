//! Stripe's ids, typed: a customer's id and a subscription's id are both strings, and a
//! function that takes two bare `&str`s side by side can be called with them swapped and still
//! compile (as `labs_domain`'s ids do for UUIDs).
//!
//! They are opaque to us: Stripe documents their prefixes (`cus_`, `sub_`, `evt_`, `cs_`) but
//! not their shape, so the types check nothing beyond what a signed webhook or Stripe's own
//! answer gave us; they are made at that edge (`new`) and turned back into text only where
//! SQL binds them or a request to Stripe names them. Serialised as the bare string, so a queued
//! job's payload reads the same as before.

use serde::{Deserialize, Serialize};

macro_rules! stripe_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The id as Stripe (or a row of ours) gave it.
            #[must_use]
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

stripe_id!(
    /// A Stripe customer (`cus_...`), linked to one of our users.
    CustomerId
);

stripe_id!(
    /// A webhook event (`evt_...`): the key of `stripe_events` and of its job.
    StripeEventId
);

stripe_id!(
    /// A subscription (`sub_...`).
    SubscriptionId
);

stripe_id!(
    /// A Checkout session (`cs_...`), the key of a one-time payment.
    CheckoutSessionId
);
