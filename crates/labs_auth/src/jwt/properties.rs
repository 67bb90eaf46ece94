//! Property tests of `jwt` (a file of their own, so that the module reads in one screen).

use proptest::prelude::*;

use super::*;
use crate::config::DEV_JWT_SIGNING_KEY;

fn keys() -> JwtKeys {
    JwtKeys::ed25519(
        DEV_JWT_SIGNING_KEY,
        "",
        TokenPolicy {
            issuer: "labs".into(),
            audience: "labs-api".into(),
            ttl: Duration::from_secs(900),
        },
    )
    .unwrap()
}

proptest! {
    /// Any string: refused, never a panic.
    #[test]
    fn arbitrary_tokens_are_refused(token in ".{0,400}") {
        prop_assert!(keys().verify(&token).is_err());
    }

    /// Any one character of a genuine token changed (to another base64url character):
    /// refused.
    #[test]
    fn a_changed_character_is_refused(index in any::<usize>(), replacement in "[A-Za-z0-9_-]") {
        let keys = keys();
        let (token, _) = keys.issue(UserId::generate(), SessionId::generate(), true, OffsetDateTime::now_utc()).unwrap();
        let at = index % token.len();
        let mut changed: Vec<char> = token.chars().collect();
        prop_assume!(changed[at] != '.' && changed[at].to_string() != replacement);
        changed[at] = replacement.chars().next().unwrap();
        let changed: String = changed.into_iter().collect();
        // A change in the last character of a part may only touch its spare bits and
        // decode to the same bytes; anything that decodes differently must fail.
        let same_bytes = changed.split('.').zip(token.split('.')).all(|(a, b)| {
            use base64::Engine;
            let decode = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).ok();
            decode(a) == decode(b)
        });
        prop_assume!(!same_bytes);
        prop_assert!(keys.verify(&changed).is_err());
    }
}
