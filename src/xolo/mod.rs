//! Xolo: X25519 keys and client-side encryption of balls.
//!
//! A [`KeyPair`] is made with [`KeyPair::generate`] and kept as two PEM files, laid out as
//! the original MictlanX does: the private key (PKCS#8, mode 0600) in `{dir}/{name}` and the
//! public key (SubjectPublicKeyInfo) in `{dir}/{name}.pub`, where `dir` is
//! `XOLO_SECRET_PATH` or a per-user default ([`default_key_dir`]).
//!
//! A put with [`PutOptions::encrypt_to`](crate::PutOptions::encrypt_to) seals the ball on
//! the client before any byte leaves it: a random data key per ball, each chunk sealed with
//! XChaCha20-Poly1305 and bound to its ball and index, the data key wrapped for each
//! recipient with X25519 + HKDF-SHA256. A get with
//! [`GetOptions::decrypt_with`](crate::GetOptions::decrypt_with) opens it. Peers and
//! routers only ever hold sealed bytes, and still verify their checksums. The format and
//! what it protects are described in `docs/security.md`.
//!
//! # Examples
//!
//! ```
//! use mictlanx::xolo::{KeyPair, PublicKey};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! KeyPair::generate().save(dir.path(), "alice")?;
//! let alice_pub = PublicKey::load(dir.path().join("alice.pub"))?;
//! let alice = KeyPair::load(dir.path(), "alice")?;
//! assert_eq!(alice.public(), &alice_pub);
//! # Ok(())
//! # }
//! ```

mod envelope;
mod error;
pub(crate) mod format;
mod key_files;
mod keys;
pub(crate) mod seal;

pub use error::KeyError;
pub use key_files::{default_key_dir, KeyFiles, XOLO_SECRET_PATH};
pub use keys::{KeyPair, PublicKey};
