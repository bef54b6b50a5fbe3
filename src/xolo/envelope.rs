//! The data key of a ball, wrapped for each recipient.
//!
//! For each recipient a fresh ephemeral X25519 key is made; the shared secret with the
//! recipient's key goes through HKDF-SHA256 (its `info` names both public keys, so a wrap
//! is bound to the pair it was made for) to a one-time key-encryption key, which seals the
//! 32-byte data key with XChaCha20-Poly1305. The key-encryption key is used once, so its
//! nonce is fixed (zero), as in `age`. The ball's context is the associated data, so a wrap
//! cannot be moved to another ball.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::format::WrappedKey;
use super::{KeyPair, PublicKey};
use crate::Error;

const WRAP_INFO: &[u8] = b"mictlanx-xolo/1 wrap";

/// A ball's 32-byte data key, wiped when dropped.
pub(crate) type DataKey = Zeroizing<[u8; 32]>;

/// The key-encryption key for one (ephemeral, recipient) pair.
fn wrapping_cipher(
    shared: &x25519_dalek::SharedSecret,
    ephemeral: &PublicKey,
    recipient: &PublicKey,
) -> Result<XChaCha20Poly1305, Error> {
    // An all-zero shared secret means a low-order public key: no secret at all.
    if !shared.was_contributory() {
        return Err(Error::Decryption {
            message: format!(
                "key {} is not a usable X25519 public key (low order)",
                recipient.fingerprint()
            ),
        });
    }
    let mut info = Vec::with_capacity(WRAP_INFO.len() + 64);
    info.extend_from_slice(WRAP_INFO);
    info.extend_from_slice(ephemeral.as_bytes());
    info.extend_from_slice(recipient.as_bytes());
    let mut kek = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(None, shared.as_bytes())
        .expand(&info, kek.as_mut_slice())
        .map_err(|_| Error::Decryption {
            message: "HKDF cannot expand 32 bytes".into(),
        })?;
    Ok(XChaCha20Poly1305::new(kek.as_slice().into()))
}

/// Wraps `data_key` for `recipient`, bound to `context` (the ball).
pub(crate) fn wrap(
    data_key: &DataKey,
    recipient: &PublicKey,
    context: &[u8],
) -> Result<WrappedKey, Error> {
    let ephemeral = KeyPair::generate();
    let shared = ephemeral.diffie_hellman(recipient);
    let cipher = wrapping_cipher(&shared, ephemeral.public(), recipient)?;
    let sealed = cipher
        .encrypt(
            &XNonce::default(),
            Payload {
                msg: data_key.as_slice(),
                aad: context,
            },
        )
        .map_err(|_| Error::Decryption {
            message: "sealing the data key failed".into(),
        })?;
    let wrapped: [u8; 48] = sealed.try_into().map_err(|_| Error::Decryption {
        message: "a wrapped data key is not 48 bytes".into(),
    })?;
    Ok(WrappedKey {
        fingerprint: recipient.fingerprint(),
        ephemeral: *ephemeral.public().as_bytes(),
        wrapped,
    })
}

/// The data key of a ball, unwrapped with `key` from the entry made for it.
///
/// # Errors
///
/// [`Error::NotARecipient`] when no entry names `key`'s fingerprint; [`Error::Decryption`]
/// when the entry does not open (a wrong key under a forged fingerprint, or tampered tags).
pub(crate) fn unwrap(
    entries: &[WrappedKey],
    key: &KeyPair,
    context: &[u8],
) -> Result<DataKey, Error> {
    let fingerprint = key.fingerprint();
    let mine: Vec<&WrappedKey> = entries
        .iter()
        .filter(|e| e.fingerprint == fingerprint)
        .collect();
    if mine.is_empty() {
        let listed: Vec<&str> = entries.iter().map(|e| e.fingerprint.as_str()).collect();
        return Err(Error::NotARecipient {
            message: format!(
                "the ball is encrypted to {} key(s) ({}), not to key {fingerprint}",
                entries.len(),
                listed.join(", ")
            ),
        });
    }
    for entry in mine {
        let ephemeral = PublicKey::from_bytes(entry.ephemeral);
        let shared = key.diffie_hellman(&ephemeral);
        let Ok(cipher) = wrapping_cipher(&shared, &ephemeral, key.public()) else {
            continue;
        };
        let opened = cipher.decrypt(
            &XNonce::default(),
            Payload {
                msg: &entry.wrapped,
                aad: context,
            },
        );
        if let Ok(bytes) = opened {
            let bytes = Zeroizing::new(bytes);
            let mut data_key = Zeroizing::new([0u8; 32]);
            if bytes.len() == 32 {
                data_key.copy_from_slice(&bytes);
                return Ok(data_key);
            }
        }
    }
    Err(Error::Decryption {
        message: format!(
            "the data key wrapped for key {fingerprint} does not open: wrong key or tampered tags"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_open_only_for_their_recipient_and_context() {
        let alice = KeyPair::generate();
        let bob = KeyPair::generate();
        let data_key: DataKey = Zeroizing::new([42; 32]);
        let entries = vec![
            wrap(&data_key, alice.public(), b"ball-1").unwrap(),
            wrap(&data_key, bob.public(), b"ball-1").unwrap(),
        ];
        assert_eq!(*unwrap(&entries, &alice, b"ball-1").unwrap(), [42; 32]);
        assert_eq!(*unwrap(&entries, &bob, b"ball-1").unwrap(), [42; 32]);
        // Another ball's context does not open it.
        let err = unwrap(&entries, &alice, b"ball-2").unwrap_err();
        assert!(matches!(err, Error::Decryption { .. }), "{err}");
        // A stranger is told so, with the fingerprints the ball lists.
        let carol = KeyPair::generate();
        let err = unwrap(&entries, &carol, b"ball-1").unwrap_err();
        assert!(matches!(err, Error::NotARecipient { .. }), "{err}");
        assert!(err.to_string().contains(&alice.fingerprint()));
        // An entry claiming carol's fingerprint but made for alice does not open for carol.
        let mut forged = entries[0].clone();
        forged.fingerprint = carol.fingerprint();
        let err = unwrap(&[forged], &carol, b"ball-1").unwrap_err();
        assert!(matches!(err, Error::Decryption { .. }), "{err}");
        // A flipped bit in the wrapped key fails.
        let mut flipped = entries[1].clone();
        flipped.wrapped[0] ^= 1;
        assert!(unwrap(&[flipped], &bob, b"ball-1").is_err());
    }

    #[test]
    fn low_order_keys_are_refused() {
        let data_key: DataKey = Zeroizing::new([1; 32]);
        // The identity point (u = 0) gives an all-zero shared secret.
        let zero = PublicKey::from_bytes([0; 32]);
        assert!(wrap(&data_key, &zero, b"c").is_err());
        let alice = KeyPair::generate();
        let entry = WrappedKey {
            fingerprint: alice.fingerprint(),
            ephemeral: [0; 32],
            wrapped: [0; 48],
        };
        assert!(matches!(
            unwrap(&[entry], &alice, b"c"),
            Err(Error::Decryption { .. })
        ));
    }
}
