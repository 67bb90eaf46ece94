//! The public shape of an account: what every endpoint that shows one answers with.

use crate::db::users::User;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

/// An account as the API shows it (never with credentials).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserOut {
    pub id: Uuid,
    pub email: String,
    pub full_name: Option<String>,
    pub is_admin: bool,
    pub is_active: bool,
    pub email_verified: bool,
    pub totp_enabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<User> for UserOut {
    fn from(user: User) -> Self {
        Self {
            id: user.id.as_uuid(),
            email: user.email,
            full_name: user.full_name,
            is_admin: user.is_admin,
            is_active: user.is_active,
            email_verified: user.email_verified_at.is_some(),
            totp_enabled: user.totp_enabled,
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}
