//! TOTP (RFC 6238): HMAC-SHA1 over the 30-second step count, 6 digits, the authenticator-app
//! defaults that every app supports. Our own few lines rather than a crate: the algorithm is
//! small, and it is tested against the RFC's own vectors here and against pyotp (an
//! independent implementation) in the HTTP tests.

use aws_lc_rs::hmac;
use qrcode::QrCode;
use qrcode::render::svg;

use crate::{random_bytes, same};

/// Seconds per step.
pub const STEP_SECONDS: u64 = 30;
/// Digits per code.
pub const DIGITS: u32 = 6;
/// Steps accepted either side of now, for clock drift and typing time.
pub const SKEW: u64 = 1;

/// A TOTP shared secret (160 bits, RFC 4226's recommended length).
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(..)")
    }
}

impl TotpSecret {
    pub fn generate() -> Self {
        Self(random_bytes::<20>().to_vec())
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The secret in base32 (RFC 4648, no padding), as authenticator apps take it.
    pub fn base32(&self) -> String {
        base32(&self.0)
    }

    /// The code for step `step` (RFC 4226 §5.3 dynamic truncation).
    pub fn code_at_step(&self, step: u64) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &self.0);
        let mac = hmac::sign(&key, &step.to_be_bytes());
        let mac = mac.as_ref();
        let offset = usize::from(mac[19] & 0x0f);
        let binary = u32::from_be_bytes([
            mac[offset],
            mac[offset + 1],
            mac[offset + 2],
            mac[offset + 3],
        ]) & 0x7fff_ffff;
        format!(
            "{:0width$}",
            binary % 10_u32.pow(DIGITS),
            width = DIGITS as usize
        )
    }

    /// The step `code` belongs to, if it is valid at `unix_time` (±[`SKEW`]) and later than
    /// `last_used_step`. Returning the step lets the caller store it, so that the same code (or
    /// an older one) is refused next time: each code works once.
    pub fn verify(&self, code: &str, unix_time: u64, last_used_step: Option<u64>) -> Option<u64> {
        let code = code.trim();
        if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let now = unix_time / STEP_SECONDS;
        // Every candidate is computed and compared, match or not: the time taken does not
        // depend on which step matched.
        let mut matched = None;
        for step in now.saturating_sub(SKEW)..=now + SKEW {
            let fresh = last_used_step.is_none_or(|last| step > last);
            if same(self.code_at_step(step).as_bytes(), code.as_bytes())
                && fresh
                && matched.is_none()
            {
                matched = Some(step);
            }
        }
        matched
    }

    /// The `otpauth://` URI that authenticator apps scan (Google's key-uri format).
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> String {
        let issuer = percent_encode(issuer);
        format!(
            "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
            account = percent_encode(account),
            secret = self.base32(),
        )
    }
}

/// The URI as a QR code in SVG: text any browser shows, no image library.
pub fn qr_svg(uri: &str) -> Result<String, qrcode::types::QrError> {
    let code = QrCode::new(uri.as_bytes())?;
    Ok(code
        .render::<svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build())
}

fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0_u32, 0_u32);
    for byte in bytes {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Percent-encodes everything but RFC 3986's unreserved characters (and `@`, common in
/// account names and harmless in a path segment).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~@".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 rows, last 6 of the 8 digits.
    #[test]
    fn rfc_6238_test_vectors() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        for (time, eight_digits) in [
            (59_u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(
                secret.code_at_step(time / STEP_SECONDS),
                eight_digits[2..],
                "t={time}"
            );
        }
    }

    #[test]
    fn a_code_is_accepted_within_one_step_and_only_once() {
        let secret = TotpSecret::generate();
        let now = 1_700_000_000;
        let step = now / STEP_SECONDS;
        let code = secret.code_at_step(step);
        assert_eq!(secret.verify(&code, now, None), Some(step));
        assert_eq!(
            secret.verify(&code, now + STEP_SECONDS, None),
            Some(step),
            "one step late"
        );
        assert_eq!(
            secret.verify(&code, now + 2 * STEP_SECONDS, None),
            None,
            "two steps late"
        );
        assert_eq!(secret.verify(&code, now, Some(step)), None, "replay");
        let previous = secret.code_at_step(step - 1);
        assert_eq!(
            secret.verify(&previous, now, Some(step)),
            None,
            "older than the last used"
        );
        assert_eq!(secret.verify("12345", now, None), None);
        assert_eq!(secret.verify("abcdef", now, None), None);
    }

    #[test]
    fn base32_matches_rfc_4648() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(TotpSecret::generate().base32().len(), 32);
    }

    #[test]
    fn the_uri_names_issuer_account_and_parameters() {
        let secret = TotpSecret::from_bytes(b"foobar".to_vec());
        assert_eq!(
            secret.otpauth_uri("labs", "ada+1@example.com"),
            "otpauth://totp/labs:ada%2B1@example.com?secret=MZXW6YTBOI&issuer=labs&algorithm=SHA1&digits=6&period=30"
        );
        let svg = qr_svg(&secret.otpauth_uri("labs", "ada@example.com")).unwrap();
        assert!(
            svg.starts_with("<?xml") && svg.contains("<svg"),
            "{svg:.80}"
        );
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn arbitrary_codes_never_panic(code in ".{0,20}", time in any::<u64>(), last in proptest::option::of(any::<u64>())) {
            let _ = TotpSecret::from_bytes(b"12345678901234567890".to_vec()).verify(&code, time, last);
        }
    }
}
