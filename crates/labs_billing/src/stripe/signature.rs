//! Webhook signatures (<https://docs.stripe.com/webhooks#verify-manually>).
//!
//! `Stripe-Signature: t=<unix seconds>,v1=<hex>,v1=<hex>,...`: each `v1` is HMAC-SHA256 of
//! `"<t>.<raw body>"` under an endpoint secret. Several `v1` appear while Stripe rolls a
//! secret; several secrets are configured while we roll ours. Any match under any secret
//! passes, compared in constant time, and `t` must be within the tolerance of now (replays of
//! an old, validly signed delivery are refused).

use aws_lc_rs::hmac;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

/// Why a delivery is refused (each a 400 for the sender).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing")]
    Missing,
    #[error("the Stripe-Signature header is malformed")]
    Malformed,
    #[error("no signature matches the payload under any configured secret")]
    NoMatch,
    #[error("the signature's timestamp is outside the tolerance")]
    Stale,
}

/// Checks `header` for `payload` against `secrets`, at unix time `now`.
pub fn verify(
    payload: &[u8],
    header: Option<&str>,
    secrets: &[SecretString],
    tolerance_seconds: i64,
    now: i64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let (key, value) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match key {
            "t" => {
                timestamp = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| SignatureError::Malformed)?,
                );
            }
            "v1" => signatures.push(decode_hex(value).ok_or(SignatureError::Malformed)?),
            // v0 (test-mode legacy) and future schemes are ignored, as Stripe's SDKs do.
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let mut signed = timestamp.to_string().into_bytes();
    signed.push(b'.');
    signed.extend_from_slice(payload);
    let matched = secrets.iter().any(|secret| {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.expose_secret().as_bytes());
        let expected = hmac::sign(&key, &signed);
        // Every candidate is compared, so the time does not say which one matched.
        signatures.iter().fold(false, |found, candidate| {
            found | bool::from(expected.as_ref().ct_eq(candidate))
        })
    });
    if !matched {
        return Err(SignatureError::NoMatch);
    }
    // Checked after the signature, so that a stale but genuine delivery is told apart from a
    // forged one in the logs.
    if (now - timestamp).abs() > tolerance_seconds {
        return Err(SignatureError::Stale);
    }
    Ok(())
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> SecretString {
        SecretString::from(text)
    }

    fn sign(payload: &[u8], secret: &str, t: i64) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
        let mut signed = format!("{t}.").into_bytes();
        signed.extend_from_slice(payload);
        let hex: String = hmac::sign(&key, &signed)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("t={t},v1={hex}")
    }

    #[test]
    fn the_rules_of_the_header() {
        let body = br#"{"id":"evt_1"}"#;
        let now = 1_700_000_000;
        let secrets = [secret("whsec_old"), secret("whsec_new")];
        let good = sign(body, "whsec_new", now);
        assert_eq!(verify(body, Some(&good), &secrets, 300, now), Ok(()));
        assert_eq!(verify(body, Some(&good), &secrets, 300, now + 299), Ok(()));
        assert_eq!(
            verify(body, Some(&good), &secrets, 300, now + 301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(b"{}", Some(&good), &secrets, 300, now),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(body, Some(&good), &[secret("whsec_other")], 300, now),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(body, None, &secrets, 300, now),
            Err(SignatureError::Missing)
        );
        for bad in ["", "t=abc,v1=00", "v1=00", "t=1", "t=1,v1=zz", "nonsense"] {
            assert_eq!(
                verify(body, Some(bad), &secrets, 300, now),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
        // Stripe rolling its secret: two v1, one of them ours.
        let rolled = format!("{},v1={}", good, "00".repeat(32));
        assert_eq!(verify(body, Some(&rolled), &secrets, 300, now), Ok(()));
        let with_v0 = format!("{good},v0=abcd");
        assert_eq!(verify(body, Some(&with_v0), &secrets, 300, now), Ok(()));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn signed(payload: &[u8], secret: &str, t: i64) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
        let mut input = format!("{t}.").into_bytes();
        input.extend_from_slice(payload);
        let hex: String = hmac::sign(&key, &input)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("t={t},v1={hex}")
    }

    proptest! {
        /// Any header and body: an answer, never a panic, and never a pass without the secret.
        #[test]
        fn arbitrary_headers_never_panic_nor_pass(header in ".{0,300}", payload in proptest::collection::vec(any::<u8>(), 0..200)) {
            let secrets = [SecretString::from("whsec_property")];
            prop_assert!(verify(&payload, Some(&header), &secrets, 300, 1_700_000_000).is_err());
        }

        /// A genuine signature passes; changing any byte of the body makes it fail.
        #[test]
        fn a_changed_byte_breaks_the_signature(payload in proptest::collection::vec(any::<u8>(), 1..200), index in any::<usize>(), flip in 1_u8..=255) {
            let secrets = [SecretString::from("whsec_property")];
            let header = signed(&payload, "whsec_property", 1_700_000_000);
            prop_assert_eq!(verify(&payload, Some(&header), &secrets, 300, 1_700_000_000), Ok(()));
            let mut changed = payload;
            let at = index % changed.len();
            changed[at] ^= flip;
            prop_assert_eq!(verify(&changed, Some(&header), &secrets, 300, 1_700_000_000), Err(SignatureError::NoMatch));
        }
    }
}
