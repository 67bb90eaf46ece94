//! Password hashing: argon2id with the OWASP-recommended parameters (m = 19 MiB, t = 2, p = 1),
//! in PHC strings so that each hash records the parameters it was made with.
//!
//! Hashing takes tens of milliseconds of CPU on purpose: callers run it on the blocking pool
//! (`tokio::task::spawn_blocking`), never on an async worker thread.

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};

/// The outcome of checking a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// The password matches. `needs_rehash`: the stored hash was made with other parameters
    /// (or another algorithm) than today's, so store a fresh hash now that we have the password.
    Valid {
        needs_rehash: bool,
    },
    Invalid,
}

/// Hashes and checks passwords with one set of argon2id parameters.
#[derive(Clone)]
pub struct PasswordHasher {
    argon: Argon2<'static>,
    params: Params,
    /// A hash of a random password, checked when the account does not exist, so that an
    /// unknown email costs the same time as a wrong password.
    decoy: String,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("m_cost", &self.params.m_cost())
            .field("t_cost", &self.params.t_cost())
            .field("p_cost", &self.params.p_cost())
            .finish_non_exhaustive()
    }
}

/// The hash could not be computed (parameters out of range: a configuration error).
#[derive(Debug, thiserror::Error)]
#[error("cannot hash the password: {0}")]
pub struct HashError(String);

impl PasswordHasher {
    /// A hasher for memory `m_kib` KiB, `t` iterations, `p` lanes. Computes one hash (the
    /// decoy) to fail early on bad parameters.
    pub fn new(m_kib: u32, t: u32, p: u32) -> Result<Self, HashError> {
        let params = Params::new(m_kib, t, p, None).map_err(|e| HashError(e.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let mut hasher = Self {
            argon,
            params,
            decoy: String::new(),
        };
        hasher.decoy = hasher.hash(&crate::b64url(&crate::random_bytes::<16>()))?;
        Ok(hasher)
    }

    /// The OWASP parameters (argon2's defaults).
    pub fn owasp() -> Result<Self, HashError> {
        Self::new(
            Params::DEFAULT_M_COST,
            Params::DEFAULT_T_COST,
            Params::DEFAULT_P_COST,
        )
    }

    /// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`) with a fresh 16-byte salt.
    pub fn hash(&self, password: &str) -> Result<String, HashError> {
        let salt = crate::random_bytes::<16>();
        self.argon
            .hash_password_with_salt(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|e| HashError(e.to_string()))
    }

    /// Checks `password` against `stored`; with no stored hash (unknown account, or an account
    /// without a password) it spends the same time and answers `Invalid`.
    pub fn verify(&self, password: &str, stored: Option<&str>) -> Verification {
        let Some(stored) = stored else {
            let _ = self
                .argon
                .verify_password(password.as_bytes(), self.decoy.as_str());
            return Verification::Invalid;
        };
        let Ok(parsed) = PasswordHash::new(stored) else {
            // Not a PHC string we can read: nobody can log in with it. Still spend the time.
            let _ = self
                .argon
                .verify_password(password.as_bytes(), self.decoy.as_str());
            return Verification::Invalid;
        };
        // Verify with the parameters stored in the hash (argon2 reads them from the string).
        match self.argon.verify_password(password.as_bytes(), &parsed) {
            Ok(()) => Verification::Valid {
                needs_rehash: !self.is_current(&parsed),
            },
            Err(_) => Verification::Invalid,
        }
    }

    fn is_current(&self, hash: &PasswordHash) -> bool {
        hash.algorithm == Algorithm::Argon2id.ident()
            && hash.version == Some(Version::V0x13.into())
            && Params::try_from(hash).is_ok_and(|params| {
                params.m_cost() == self.params.m_cost()
                    && params.t_cost() == self.params.t_cost()
                    && params.p_cost() == self.params.p_cost()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Small parameters: these tests are about the logic, not the cost.
    fn cheap() -> PasswordHasher {
        PasswordHasher::new(64, 1, 1).unwrap()
    }

    #[test]
    fn a_hash_verifies_its_password_only() {
        let hasher = cheap();
        let hash = hasher.hash("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{hash}");
        assert_eq!(
            hasher.verify("correct horse battery", Some(&hash)),
            Verification::Valid {
                needs_rehash: false
            }
        );
        assert_eq!(
            hasher.verify("wrong horse", Some(&hash)),
            Verification::Invalid
        );
        assert_eq!(
            hasher.verify("correct horse battery", None),
            Verification::Invalid
        );
        assert_eq!(
            hasher.verify("x", Some("not a phc string")),
            Verification::Invalid
        );
    }

    #[test]
    fn salts_differ() {
        let hasher = cheap();
        assert_ne!(hasher.hash("same").unwrap(), hasher.hash("same").unwrap());
    }

    #[test]
    fn changed_parameters_ask_for_a_rehash() {
        let old = cheap().hash("correct horse battery").unwrap();
        let stronger = PasswordHasher::new(128, 2, 1).unwrap();
        assert_eq!(
            stronger.verify("correct horse battery", Some(&old)),
            Verification::Valid { needs_rehash: true }
        );
    }

    #[test]
    fn owasp_parameters_are_the_defaults() {
        let hasher = PasswordHasher::owasp().unwrap();
        assert!(
            hasher
                .hash("x")
                .unwrap()
                .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
        );
    }
}
