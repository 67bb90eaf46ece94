//! Typed ids: a user's id and a session's id are both UUIDs, and a function that takes two
//! bare `Uuid`s side by side can be called with them swapped and still compile. Each id is a
//! type of its own, made from a `Uuid` at the edge (a token's claims, a path parameter, a
//! row) and turned back into one only where SQL binds it.
//!
//! Not `From<Uuid>`: a conversion that `?` or `.into()` would apply silently is what these
//! types are here to prevent; `from_uuid` is written out where a UUID becomes an id.

#[cfg(test)]
use uuid::Uuid;

/// Declares a typed id over a UUID: `labs_domain::uuid_id!(/// docs \n OrderId);`. A feature
/// crate declares its own ids with it (it needs `serde` among its dependencies).
#[macro_export]
macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            ::serde::Serialize, ::serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name($crate::__private::Uuid);

        impl $name {
            /// A new id, time-ordered (UUIDv7), for a row this process creates.
            #[must_use]
            pub fn generate() -> Self {
                Self($crate::__private::Uuid::now_v7())
            }

            /// The id whose value is `uuid` (read from a row, a token or a request).
            #[must_use]
            pub const fn from_uuid(uuid: $crate::__private::Uuid) -> Self {
                Self(uuid)
            }

            /// The UUID, for SQL and the wire.
            #[must_use]
            pub const fn as_uuid(self) -> $crate::__private::Uuid {
                self.0
            }

            /// The UUID's 16 bytes (what a sealed secret is bound to, say).
            #[must_use]
            pub const fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

crate::uuid_id!(
    /// An account's id (`users.id`).
    UserId
);

crate::uuid_id!(
    /// A session's id (`sessions.id`): one login, the family of refresh tokens it issues.
    SessionId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_its_uuid_on_the_wire() {
        let uuid = Uuid::now_v7();
        let id = UserId::from_uuid(uuid);
        assert_eq!(
            serde_json::to_value(id).unwrap(),
            serde_json::json!(uuid.to_string())
        );
        let back: UserId = serde_json::from_value(serde_json::json!(uuid.to_string())).unwrap();
        assert_eq!(back.as_uuid(), uuid);
        assert_eq!(id.to_string(), uuid.to_string());
    }
}
