//! Unit tests of `jwt` (a file of their own, so that the module reads in one screen).

use super::*;
use serde_json::json;

use crate::config::DEV_JWT_SIGNING_KEY;

fn policy() -> TokenPolicy {
    TokenPolicy {
        issuer: "labs".into(),
        audience: "labs-api".into(),
        ttl: Duration::from_secs(900),
    }
}

fn keys() -> JwtKeys {
    JwtKeys::ed25519(DEV_JWT_SIGNING_KEY, "", policy()).unwrap()
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Re-signs `claims` with whatever header and key a forger likes.
fn forge(header: &str, claims: &serde_json::Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64url(header.as_bytes()),
        b64url(claims.to_string().as_bytes()),
        b64url(signature)
    )
}

#[test]
fn issued_tokens_verify_with_their_claims() {
    let keys = keys();
    let (user, session) = (UserId::generate(), SessionId::generate());
    let (token, claims) = keys.issue(user, session, true, now()).unwrap();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(header.kid.as_deref(), Some(keys.kid()));
    let verified = keys.verify(&token).unwrap();
    assert_eq!(verified, claims);
    assert_eq!(
        (verified.sub, verified.sid, verified.fresh),
        (user, session, true)
    );
    assert_eq!(verified.exp - verified.iat, 900);
}

#[test]
fn the_jwks_verifies_our_tokens_elsewhere() {
    let keys = keys();
    let (token, _) = keys
        .issue(UserId::generate(), SessionId::generate(), false, now())
        .unwrap();
    let set: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(serde_json::to_value(keys.jwks()).unwrap()).unwrap();
    let jwk = set.find(keys.kid()).unwrap();
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&["labs-api"]);
    assert!(jsonwebtoken::decode::<AccessClaims>(&token, &key, &validation).is_ok());
}

#[test]
fn none_other_algorithms_and_bad_signatures_are_refused() {
    let keys = keys();
    let (token, claims) = keys
        .issue(UserId::generate(), SessionId::generate(), true, now())
        .unwrap();
    let claims = serde_json::to_value(claims).unwrap();
    let kid = keys.kid();

    let none = forge(&format!(r#"{{"alg":"none","kid":"{kid}"}}"#), &claims, b"");
    assert_eq!(keys.verify(&none), Err(TokenError::Malformed));

    // Algorithm confusion: HS256 "signed" with our public key, which anyone can fetch.
    let public = keys.jwks().keys[0].x.clone();
    let mut confused_header = Header::new(Algorithm::HS256);
    confused_header.kid = Some(kid.to_owned());
    let confused = jsonwebtoken::encode(
        &confused_header,
        &claims,
        &EncodingKey::from_secret(public.as_bytes()),
    )
    .unwrap();
    assert_eq!(keys.verify(&confused), Err(TokenError::WrongAlgorithm));

    // A character inside the signature (the last one may carry unused bits, so changing
    // it can make the base64 non-canonical instead of the signature wrong).
    let mut tampered = token.into_bytes();
    let inside = tampered.len() - 10;
    tampered[inside] = if tampered[inside] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(keys.verify(&tampered), Err(TokenError::Invalid));

    let (other_private, _) = generate_ed25519_pem();
    let stranger = JwtKeys::ed25519(&other_private, "", policy()).unwrap();
    let (foreign, _) = stranger
        .issue(UserId::generate(), SessionId::generate(), true, now())
        .unwrap();
    assert_eq!(keys.verify(&foreign), Err(TokenError::UnknownKey));
    assert_eq!(keys.verify("not.a.token"), Err(TokenError::Malformed));
    assert_eq!(keys.verify(""), Err(TokenError::Malformed));
}

#[test]
fn expiry_issuer_and_audience_are_checked() {
    let keys = keys();
    let long_ago = now() - time::Duration::hours(1);
    let (expired, _) = keys
        .issue(UserId::generate(), SessionId::generate(), true, long_ago)
        .unwrap();
    assert_eq!(keys.verify(&expired), Err(TokenError::Expired));

    for (issuer, audience) in [("someone-else", "labs-api"), ("labs", "another-api")] {
        let other = JwtKeys::ed25519(
            DEV_JWT_SIGNING_KEY,
            "",
            TokenPolicy {
                issuer: issuer.into(),
                audience: audience.into(),
                ttl: Duration::from_secs(60),
            },
        )
        .unwrap();
        let (token, _) = other
            .issue(UserId::generate(), SessionId::generate(), true, now())
            .unwrap();
        assert_eq!(
            keys.verify(&token),
            Err(TokenError::Invalid),
            "{issuer} {audience}"
        );
    }
}

#[test]
fn a_token_issued_in_the_future_is_refused_beyond_the_leeway() {
    let keys = keys();
    let later = now() + time::Duration::seconds(LEEWAY_SECONDS as i64 + 60);
    let (future, _) = keys
        .issue(UserId::generate(), SessionId::generate(), true, later)
        .unwrap();
    assert_eq!(keys.verify(&future), Err(TokenError::NotYetValid));

    // A signer whose clock runs a few seconds ahead is within the leeway.
    let skewed = now() + time::Duration::seconds(LEEWAY_SECONDS as i64 / 2);
    let (ahead, _) = keys
        .issue(UserId::generate(), SessionId::generate(), true, skewed)
        .unwrap();
    assert!(keys.verify(&ahead).is_ok());
    let (current, _) = keys
        .issue(UserId::generate(), SessionId::generate(), true, now())
        .unwrap();
    assert!(keys.verify(&current).is_ok());
}

#[test]
fn a_token_not_valid_before_a_future_time_is_refused_beyond_the_leeway() {
    let keys = keys();
    let sign = |nbf_offset: i64| {
        let (_, claims) = keys
            .issue(UserId::generate(), SessionId::generate(), true, now())
            .unwrap();
        let mut claims = serde_json::to_value(claims).unwrap();
        claims["nbf"] = json!(now().unix_timestamp() + nbf_offset);
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(keys.kid().to_owned());
        jsonwebtoken::encode(&header, &claims, &keys.encoding).unwrap()
    };
    let leeway = LEEWAY_SECONDS as i64;
    assert_eq!(
        keys.verify(&sign(leeway + 60)),
        Err(TokenError::NotYetValid)
    );
    assert!(keys.verify(&sign(leeway / 2)).is_ok());
    assert!(keys.verify(&sign(0)).is_ok());
    assert!(keys.verify(&sign(-60)).is_ok());
}

#[test]
fn retired_keys_verify_but_do_not_sign() {
    let (old_private, old_public) = generate_ed25519_pem();
    let old = JwtKeys::ed25519(&old_private, "", policy()).unwrap();
    let (old_token, _) = old
        .issue(UserId::generate(), SessionId::generate(), true, now())
        .unwrap();

    let (new_private, _) = generate_ed25519_pem();
    let rotated = JwtKeys::ed25519(&new_private, &old_public, policy()).unwrap();
    assert!(rotated.verify(&old_token).is_ok());
    assert_ne!(rotated.kid(), old.kid());
    assert_eq!(rotated.jwks().keys.len(), 2);
    let (new_token, _) = rotated
        .issue(UserId::generate(), SessionId::generate(), true, now())
        .unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(&new_token)
            .unwrap()
            .kid
            .as_deref(),
        Some(rotated.kid())
    );
    assert_eq!(public_pem_of(&old_private).unwrap(), old_public);

    let without = JwtKeys::ed25519(&new_private, "", policy()).unwrap();
    assert_eq!(without.verify(&old_token), Err(TokenError::UnknownKey));
}

#[test]
fn hs256_signs_with_a_shared_secret_and_publishes_nothing() {
    let secret = [42_u8; 32];
    let keys = JwtKeys::hs256(&secret, &[], policy()).unwrap();
    let (token, _) = keys
        .issue(UserId::generate(), SessionId::generate(), true, now())
        .unwrap();
    assert!(keys.verify(&token).is_ok());
    assert_eq!(keys.jwks(), JwkSet { keys: Vec::new() });
    assert!(
        JwtKeys::hs256(&[1; 16], &[], policy()).is_err(),
        "short secrets are refused"
    );
    let eddsa = self::keys();
    assert_eq!(eddsa.verify(&token), Err(TokenError::WrongAlgorithm));
}
