//! Password hashing: argon2id with one of OWASP's recommended parameter sets (by default m = 12
//! MiB, t = 3, p = 1: see [`DEFAULT_MEMORY_KIB`]), in PHC strings so that each hash records the
//! parameters it was made with.
//!
//! Hashing takes tens of milliseconds of CPU on purpose: callers run it on the blocking pool
//! (`tokio::task::spawn_blocking`), never on an async worker thread.

use std::cell::RefCell;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// The default memory cost: 12 MiB, with [`DEFAULT_ITERATIONS`] passes and one lane.
///
/// OWASP lists five argon2id settings that "provide an equal level of defense" and differ only
/// in trading memory for passes: 46 MiB × 1, 19 MiB × 2, 12 MiB × 3, 9 MiB × 4, 7 MiB × 5.
/// We take 12 MiB × 3 rather than argon2's own default, 19 MiB × 2: every hashing thread
/// (one per core, `labs_accounts::HashPool`) keeps its working memory, so the choice is most
/// of the API's memory under a burst of logins. 19 MiB × 2 held the process above 64 MiB on 2
/// cores; 12 MiB × 3 stays under it, and hashes as fast (on the benchmark machine faster: 196
/// against 170 hashes/s on 2 threads, less memory traffic). 9 MiB × 4 and below were not taken:
/// the lower the memory, the cheaper a guess is for dedicated hardware that has plenty of
/// compute but little memory per core. Deployments with memory to spare can raise
/// `LABS_ARGON2_MEMORY_KIB`; stored hashes follow at each owner's next login.
pub const DEFAULT_MEMORY_KIB: u32 = 12_288;
/// The default number of passes over the memory (see [`DEFAULT_MEMORY_KIB`]).
pub const DEFAULT_ITERATIONS: u32 = 3;
/// The default number of lanes: one, as in all of OWASP's settings.
pub const DEFAULT_PARALLELISM: u32 = 1;

/// Bytes of a hash's output (argon2's default, recorded in the PHC string).
const OUTPUT_LEN: usize = 32;

thread_local! {
    /// The working memory of argon2 on this thread, kept between hashes. argon2's own API
    /// allocates (and zeroes) its memory (12 MiB by default) per hash and frees it; the
    /// allocator kept those blocks in per-thread arenas, and a burst of logins took the process
    /// to 200-450 MiB (measured, docs/PERFORMANCE.md). Reused, the memory is that of one hash
    /// per hashing thread. It holds values derived from the last password hashed here, never
    /// the password itself.
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Runs argon2 into `out` with this thread's reusable memory.
fn hash_into(
    argon: &Argon2<'_>,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    BLOCKS.with(|blocks| {
        let mut blocks = blocks.borrow_mut();
        let needed = params.block_count();
        if blocks.len() != needed {
            blocks.clear();
            blocks.shrink_to_fit();
            blocks.resize(needed, Block::default());
        }
        argon.hash_password_into_with_memory(password, salt, out, &mut blocks[..])
    })
}

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
        // With argon2's allocating API: made once, on whatever thread builds the hasher, its
        // memory must not stay behind in that thread's reusable memory.
        let decoy_password = crate::b64url(&crate::random_bytes::<16>());
        hasher.decoy = argon2::password_hash::PasswordHasher::hash_password_with_salt(
            &hasher.argon,
            decoy_password.as_bytes(),
            &crate::random_bytes::<16>(),
        )
        .map(|hash| hash.to_string())
        .map_err(|e| HashError(e.to_string()))?;
        Ok(hasher)
    }

    /// A hasher with the default cost ([`DEFAULT_MEMORY_KIB`]).
    pub fn default_cost() -> Result<Self, HashError> {
        Self::new(DEFAULT_MEMORY_KIB, DEFAULT_ITERATIONS, DEFAULT_PARALLELISM)
    }

    /// A PHC string (`$argon2id$v=19$m=12288,t=3,p=1$<salt>$<hash>`) with a fresh 16-byte salt.
    pub fn hash(&self, password: &str) -> Result<String, HashError> {
        let fail = |e: &dyn std::fmt::Display| HashError(e.to_string());
        let salt = crate::random_bytes::<16>();
        let mut out = [0_u8; OUTPUT_LEN];
        hash_into(
            &self.argon,
            &self.params,
            password.as_bytes(),
            &salt,
            &mut out,
        )
        .map_err(|e| fail(&e))?;
        let hash = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&self.params).map_err(|e| fail(&e))?,
            salt: Some(Salt::new(&salt).map_err(|e| fail(&e))?),
            hash: Some(Output::new(&out).map_err(|e| fail(&e))?),
        };
        Ok(hash.to_string())
    }

    /// Checks `password` against `stored`; with no stored hash (unknown account, or an account
    /// without a password) it spends the same time and answers `Invalid`.
    pub fn verify(&self, password: &str, stored: Option<&str>) -> Verification {
        let decoy = || {
            if let Ok(decoy) = PasswordHash::new(&self.decoy) {
                let _ = Self::matches(password, &decoy);
            }
            Verification::Invalid
        };
        let Some(stored) = stored else {
            return decoy();
        };
        let Ok(parsed) = PasswordHash::new(stored) else {
            // Not a PHC string we can read: nobody can log in with it. Still spend the time.
            return decoy();
        };
        // Verify with the parameters stored in the hash.
        if Self::matches(password, &parsed) {
            Verification::Valid {
                needs_rehash: !self.is_current(&parsed),
            }
        } else {
            Verification::Invalid
        }
    }

    /// Recomputes `stored` for `password` with the parameters `stored` records; true on a match
    /// (compared in constant time).
    fn matches(password: &str, stored: &PasswordHash) -> bool {
        let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else {
            return false;
        };
        let Ok(algorithm) = Algorithm::try_from(stored.algorithm.as_str()) else {
            return false;
        };
        let version = stored
            .version
            .map_or(Ok(Version::default()), Version::try_from);
        let (Ok(version), Ok(params)) = (version, Params::try_from(stored)) else {
            return false;
        };
        let argon = Argon2::new(algorithm, version, params.clone());
        let mut out = vec![0_u8; expected.len()];
        hash_into(
            &argon,
            &params,
            password.as_bytes(),
            salt.as_ref(),
            &mut out,
        )
        .is_ok()
            && crate::same(&out, expected.as_bytes())
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
    fn hashes_from_argon2s_own_api_verify_and_ours_verify_there() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let reference = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(64, 1, 1, None).unwrap(),
        );
        let theirs = reference
            .hash_password_with_salt(b"correct horse", b"0123456789abcdef")
            .unwrap()
            .to_string();
        let hasher = cheap();
        assert_eq!(
            hasher.verify("correct horse", Some(&theirs)),
            Verification::Valid {
                needs_rehash: false
            }
        );
        assert_eq!(
            hasher.verify("wrong horse", Some(&theirs)),
            Verification::Invalid
        );
        let ours = hasher.hash("correct horse").unwrap();
        assert!(
            reference
                .verify_password(b"correct horse", ours.as_str())
                .is_ok()
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
    fn the_default_cost_is_recorded_in_the_hash() {
        let hasher = PasswordHasher::default_cost().unwrap();
        assert!(
            hasher
                .hash("x")
                .unwrap()
                .starts_with("$argon2id$v=19$m=12288,t=3,p=1$")
        );
    }
}
