//! Secrets the server must read back (TOTP shared secrets), encrypted at rest.
//!
//! XChaCha20-Poly1305: its 192-bit nonce is safe to draw at random for every message (a
//! 96-bit one, as in AES-GCM, starts to risk a collision after about 2^32 messages under a
//! key). The AAD is the owner's id, so a sealed value copied onto another row does not open.
//!
//! Layout: `[key id: 1 byte][nonce: 24 bytes][ciphertext + tag]`. The key id says which key
//! sealed it, so keys rotate without a flag day: add the new key first in the list, old values
//! still open with the old key, and [`SecretBox::is_current`] says which to re-seal.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::random_bytes;

const NONCE_LEN: usize = 24;

/// The encryption keys, the first one current.
#[derive(Clone)]
pub struct SecretBox {
    current: u8,
    keys: Vec<(u8, XChaCha20Poly1305)>,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<u8> = self.keys.iter().map(|(id, _)| *id).collect();
        f.debug_struct("SecretBox")
            .field("current", &self.current)
            .field("key_ids", &ids)
            .finish()
    }
}

/// A sealed value that does not open: wrong key, wrong owner, or tampered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the sealed value does not open with any configured key")]
pub struct Unsealable;

impl SecretBox {
    /// `keys`: (id, 32-byte key), current first. Ids must be distinct.
    pub fn new(keys: &[(u8, [u8; 32])]) -> Result<Self, String> {
        let Some((current, _)) = keys.first() else {
            return Err("at least one key is needed".to_owned());
        };
        let mut ids: Vec<u8> = keys.iter().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != keys.len() {
            return Err("two keys have the same id".to_owned());
        }
        Ok(Self {
            current: *current,
            keys: keys
                .iter()
                .map(|(id, key)| (*id, XChaCha20Poly1305::new(key.into())))
                .collect(),
        })
    }

    /// Encrypts `plaintext` for `owner` under the current key.
    pub fn seal(&self, plaintext: &[u8], owner: &[u8]) -> Vec<u8> {
        let nonce_bytes = random_bytes::<NONCE_LEN>();
        let nonce = XNonce::from(nonce_bytes);
        let cipher = &self.keys[0].1;
        #[expect(
            clippy::expect_used,
            reason = "encryption fails only past 256 GiB of input"
        )]
        let ciphertext = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: owner,
                },
            )
            .expect("XChaCha20-Poly1305 encryption of a short secret");
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        sealed.push(self.current);
        sealed.extend_from_slice(&nonce_bytes);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    /// Decrypts what [`seal`](Self::seal) produced for the same `owner`.
    pub fn open(&self, sealed: &[u8], owner: &[u8]) -> Result<Vec<u8>, Unsealable> {
        if sealed.len() < 1 + NONCE_LEN {
            return Err(Unsealable);
        }
        let (id, rest) = (sealed[0], &sealed[1..]);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let cipher = self
            .keys
            .iter()
            .find(|(key_id, _)| *key_id == id)
            .map(|(_, cipher)| cipher)
            .ok_or(Unsealable)?;
        let nonce = XNonce::try_from(nonce).map_err(|_| Unsealable)?;
        cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: owner,
                },
            )
            .map_err(|_| Unsealable)
    }

    /// Whether `sealed` is under the current key (otherwise, re-seal it when convenient).
    pub fn is_current(&self, sealed: &[u8]) -> bool {
        sealed.first() == Some(&self.current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_for_their_owner_only() {
        let keys = SecretBox::new(&[(1, [7; 32])]).unwrap();
        let sealed = keys.seal(b"JBSWY3DPEHPK3PXP", b"user-1");
        assert_eq!(keys.open(&sealed, b"user-1").unwrap(), b"JBSWY3DPEHPK3PXP");
        assert_eq!(keys.open(&sealed, b"user-2"), Err(Unsealable));
        let mut tampered = sealed;
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(keys.open(&tampered, b"user-1"), Err(Unsealable));
        assert_ne!(
            keys.seal(b"same", b"u"),
            keys.seal(b"same", b"u"),
            "fresh nonce each time"
        );
    }

    #[test]
    fn old_keys_still_open_after_a_rotation() {
        let before = SecretBox::new(&[(1, [7; 32])]).unwrap();
        let sealed = before.seal(b"secret", b"u");
        let after = SecretBox::new(&[(2, [9; 32]), (1, [7; 32])]).unwrap();
        assert_eq!(after.open(&sealed, b"u").unwrap(), b"secret");
        assert!(!after.is_current(&sealed));
        assert!(after.is_current(&after.seal(b"secret", b"u")));
        let retired = SecretBox::new(&[(2, [9; 32])]).unwrap();
        assert_eq!(retired.open(&sealed, b"u"), Err(Unsealable));
    }

    #[test]
    fn key_lists_are_checked() {
        assert!(SecretBox::new(&[]).is_err());
        assert!(SecretBox::new(&[(1, [0; 32]), (1, [1; 32])]).is_err());
    }
}
