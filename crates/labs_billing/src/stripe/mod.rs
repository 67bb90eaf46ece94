//! Stripe's protocol: the `Stripe-Signature` check of webhook deliveries ([`signature`]) and a
//! thin typed client ([`client`]) for the four API calls the billing API makes.
//!
//! A thin client rather than async-stripe: four form-encoded POSTs do not justify a generated
//! SDK whose shared crate alone costs ~100 s of CPU to build (docs/PAYMENTS.md). The base URL is
//! a setting, so tests and local development point it at a fake.

pub mod client;
pub mod signature;

pub use client::{StripeClient, StripeError};
pub use signature::{SignatureError, verify};
