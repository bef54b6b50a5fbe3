//! X25519 key pairs and public keys, and their PEM forms (PKCS#8 and SubjectPublicKeyInfo,
//! RFC 8410), byte for byte what Python's `cryptography` writes for the original's Xolo keys.

use std::fmt;

use pkcs8::der::asn1::{BitStringRef, OctetStringRef};
use pkcs8::der::pem::{self, LineEnding};
use pkcs8::der::{Decode, Encode};
use pkcs8::{AlgorithmIdentifierRef, ObjectIdentifier, PrivateKeyInfo, SubjectPublicKeyInfoRef};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::KeyError;

/// The algorithm OID of X25519 keys (RFC 8410): `id-X25519`.
pub(crate) const X25519_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.110");

const PRIVATE_LABEL: &str = "PRIVATE KEY";
const PUBLIC_LABEL: &str = "PUBLIC KEY";
const PRIVATE_STRUCTURE: &str = "PKCS#8 private key";
const PUBLIC_STRUCTURE: &str = "SubjectPublicKeyInfo";

/// An X25519 public key: what a ball is encrypted *to*.
///
/// # Examples
///
/// ```
/// use mictlanx::xolo::{KeyPair, PublicKey};
///
/// # fn main() -> Result<(), mictlanx::xolo::KeyError> {
/// let pair = KeyPair::generate();
/// let pem = pair.public().to_pem();
/// assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
/// assert_eq!(PublicKey::from_pem(&pem)?, *pair.public());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(x25519_dalek::PublicKey);

impl PublicKey {
    /// The key from its 32 raw bytes (the X25519 u-coordinate).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(x25519_dalek::PublicKey::from(bytes))
    }

    /// The 32 raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// A short name of the key, recorded beside each wrapped data key so that a reader finds
    /// its entry: the first 16 bytes of the SHA-256 of the raw key, as 32 hex digits.
    ///
    /// ```
    /// let key = mictlanx::xolo::PublicKey::from_bytes([9; 32]);
    /// assert_eq!(key.fingerprint().len(), 32);
    /// ```
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.as_bytes());
        hex::encode(&digest[..16])
    }

    /// The key as a PEM `PUBLIC KEY` block (DER SubjectPublicKeyInfo, OID 1.3.101.110).
    pub fn to_pem(&self) -> String {
        let spki = SubjectPublicKeyInfoRef {
            algorithm: x25519_algorithm(),
            subject_public_key: BitStringRef::from_bytes(self.as_bytes())
                .expect("32 bytes always make a BIT STRING"),
        };
        let der = spki
            .to_der()
            .expect("a fixed-size SubjectPublicKeyInfo always encodes");
        pem::encode_string(PUBLIC_LABEL, LineEnding::LF, &der)
            .expect("44 bytes of DER always encode as PEM")
    }

    /// Parses a PEM `PUBLIC KEY` block.
    ///
    /// # Errors
    ///
    /// [`KeyError::Pem`] for text that is not one PEM `PUBLIC KEY` block,
    /// [`KeyError::Malformed`] for a bad or truncated structure,
    /// [`KeyError::WrongAlgorithm`] for a key that is not X25519.
    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        Self::parse_pem(text, "the text")
    }

    pub(crate) fn parse_pem(text: &str, what: &str) -> Result<Self, KeyError> {
        let der = decode_pem(text, PUBLIC_LABEL, what)?;
        let malformed = |reason: String| KeyError::Malformed {
            what: what.to_owned(),
            structure: PUBLIC_STRUCTURE,
            reason,
        };
        let spki = SubjectPublicKeyInfoRef::from_der(&der).map_err(|e| malformed(e.to_string()))?;
        check_algorithm(&spki.algorithm, what, PUBLIC_STRUCTURE)?;
        let raw = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| malformed("the key BIT STRING has unused bits".into()))?;
        let bytes: [u8; 32] = raw
            .try_into()
            .map_err(|_| malformed(format!("the key is {} bytes, not 32", raw.len())))?;
        Ok(Self::from_bytes(bytes))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint())
    }
}

/// An X25519 key pair: what an encrypted ball is opened *with*.
///
/// The secret is wiped from memory when the pair is dropped, and never printed (`Debug`
/// shows the public key's fingerprint only).
///
/// # Examples
///
/// ```
/// use mictlanx::xolo::KeyPair;
///
/// # fn main() -> Result<(), mictlanx::xolo::KeyError> {
/// let pair = KeyPair::generate();
/// let pem = pair.to_pem();
/// assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
/// let again = KeyPair::from_pem(&pem)?;
/// assert_eq!(again.public(), pair.public());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct KeyPair {
    secret: x25519_dalek::StaticSecret,
    public: PublicKey,
}

impl KeyPair {
    /// A new random key pair, from the operating system's random source.
    pub fn generate() -> Self {
        Self::from_secret(x25519_dalek::StaticSecret::random_from_rng(
            rand::rngs::OsRng,
        ))
    }

    /// The pair of a known 32-byte secret (clamped as X25519 requires).
    pub fn from_secret_bytes(bytes: [u8; 32]) -> Self {
        let bytes = Zeroizing::new(bytes);
        Self::from_secret(x25519_dalek::StaticSecret::from(*bytes))
    }

    fn from_secret(secret: x25519_dalek::StaticSecret) -> Self {
        let public = PublicKey(x25519_dalek::PublicKey::from(&secret));
        Self { secret, public }
    }

    /// The public half.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The public key's [fingerprint](PublicKey::fingerprint).
    pub fn fingerprint(&self) -> String {
        self.public.fingerprint()
    }

    /// The X25519 shared secret with `their` key.
    pub(crate) fn diffie_hellman(&self, their: &PublicKey) -> x25519_dalek::SharedSecret {
        self.secret.diffie_hellman(&their.0)
    }

    /// The secret as a PEM `PRIVATE KEY` block: unencrypted PKCS#8 v1, OID 1.3.101.110, the
    /// key as an OCTET STRING inside the privateKey OCTET STRING (RFC 8410). The text is
    /// wiped from memory when dropped.
    pub fn to_pem(&self) -> Zeroizing<String> {
        let secret = Zeroizing::new(self.secret.to_bytes());
        let inner = Zeroizing::new(
            OctetStringRef::new(secret.as_slice())
                .and_then(|o| o.to_der())
                .expect("32 bytes always make an OCTET STRING"),
        );
        let info = PrivateKeyInfo::new(x25519_algorithm(), &inner);
        let der = Zeroizing::new(
            info.to_der()
                .expect("a fixed-size PrivateKeyInfo always encodes"),
        );
        Zeroizing::new(
            pem::encode_string(PRIVATE_LABEL, LineEnding::LF, &der)
                .expect("48 bytes of DER always encode as PEM"),
        )
    }

    /// Parses a PEM `PRIVATE KEY` block (PKCS#8 v1, or v2 whose public key must match).
    ///
    /// # Errors
    ///
    /// [`KeyError::Pem`], [`KeyError::Malformed`], [`KeyError::WrongAlgorithm`], as for
    /// [`PublicKey::from_pem`].
    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        Self::parse_pem(text, "the text")
    }

    pub(crate) fn parse_pem(text: &str, what: &str) -> Result<Self, KeyError> {
        let der = Zeroizing::new(decode_pem(text, PRIVATE_LABEL, what)?);
        let malformed = |reason: String| KeyError::Malformed {
            what: what.to_owned(),
            structure: PRIVATE_STRUCTURE,
            reason,
        };
        let info = PrivateKeyInfo::from_der(&der).map_err(|e| malformed(e.to_string()))?;
        check_algorithm(&info.algorithm, what, PRIVATE_STRUCTURE)?;
        let inner = OctetStringRef::from_der(info.private_key)
            .map_err(|e| malformed(format!("the privateKey is not an OCTET STRING: {e}")))?;
        let raw = inner.as_bytes();
        let bytes: [u8; 32] = raw
            .try_into()
            .map_err(|_| malformed(format!("the key is {} bytes, not 32", raw.len())))?;
        let pair = Self::from_secret_bytes(bytes);
        if let Some(public) = info.public_key {
            if public != pair.public.as_bytes() {
                return Err(malformed(
                    "its public key does not belong to its private key".into(),
                ));
            }
        }
        Ok(pair)
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyPair({})", self.fingerprint())
    }
}

fn x25519_algorithm() -> AlgorithmIdentifierRef<'static> {
    AlgorithmIdentifierRef {
        oid: X25519_OID,
        parameters: None,
    }
}

/// The DER of the one PEM block of `text`, which must carry `label`.
fn decode_pem(text: &str, label: &'static str, what: &str) -> Result<Vec<u8>, KeyError> {
    let pem_error = |reason: String| KeyError::Pem {
        what: what.to_owned(),
        label,
        reason,
    };
    let (found, der) =
        pem::decode_vec(text.trim().as_bytes()).map_err(|e| pem_error(e.to_string()))?;
    if found != label {
        return Err(pem_error(format!("its label is {found:?}")));
    }
    Ok(der)
}

/// X25519 keys name their algorithm with its OID and no parameters (RFC 8410 §3).
fn check_algorithm(
    algorithm: &AlgorithmIdentifierRef<'_>,
    what: &str,
    structure: &'static str,
) -> Result<(), KeyError> {
    if algorithm.oid != X25519_OID {
        return Err(KeyError::WrongAlgorithm {
            what: what.to_owned(),
            oid: algorithm.oid.to_string(),
        });
    }
    if algorithm.parameters.is_some() {
        return Err(KeyError::Malformed {
            what: what.to_owned(),
            structure,
            reason: "X25519 algorithm identifiers carry no parameters".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by Python `cryptography` 48 (`X25519PrivateKey.private_bytes(PEM, PKCS8,
    /// NoEncryption())`), as the original's Xolo does.
    const PYTHON_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VuBCIEIFhMBQ1ZBZ5P/b7PwG8lrkYVl4ZeC+APjzb7AWmUeods
-----END PRIVATE KEY-----
";
    const PYTHON_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VuAyEARN8yg9HSw922gn3ljo4cn4Vh4cmej9mVCkkQrL5igEQ=
-----END PUBLIC KEY-----
";
    const PYTHON_PUBLIC_RAW: &str =
        "44df3283d1d2c3ddb6827de58e8e1c9f8561e1c99e8fd9950a4910acbe628044";
    const ED25519_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIA9X4j2p18POOjtQXRIAUrNCjCP1Fv6ghc4dj8b2beQt
-----END PRIVATE KEY-----
";
    const ED25519_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEApL33w1F3kTPapRfJvTTPAnZcn2wQpGSNxrcjNDkbGnA=
-----END PUBLIC KEY-----
";

    #[test]
    fn reads_and_writes_the_same_bytes_as_python_cryptography() {
        let pair = KeyPair::from_pem(PYTHON_PRIVATE).unwrap();
        assert_eq!(hex::encode(pair.public().as_bytes()), PYTHON_PUBLIC_RAW);
        assert_eq!(PublicKey::from_pem(PYTHON_PUBLIC).unwrap(), *pair.public());
        // Our encoding is byte for byte theirs.
        assert_eq!(pair.to_pem().as_str(), PYTHON_PRIVATE);
        assert_eq!(pair.public().to_pem(), PYTHON_PUBLIC);
    }

    #[test]
    fn generated_pairs_round_trip_and_differ() {
        let a = KeyPair::generate();
        let b = KeyPair::generate();
        assert_ne!(a.public(), b.public());
        assert_eq!(KeyPair::from_pem(&a.to_pem()).unwrap().public(), a.public());
        assert_eq!(
            PublicKey::from_pem(&a.public().to_pem()).unwrap(),
            *a.public()
        );
        assert_eq!(a.fingerprint().len(), 32);
        assert_ne!(a.fingerprint(), b.fingerprint());
        // Debug never shows the secret.
        let secret_hex = hex::encode(a.secret.to_bytes());
        let shown = format!("{a:?}");
        assert!(!shown.contains(&secret_hex) && shown.contains(&a.fingerprint()));
    }

    #[test]
    fn other_algorithms_are_refused_by_oid() {
        for result in [
            KeyPair::from_pem(ED25519_PRIVATE).map(|_| ()),
            PublicKey::from_pem(ED25519_PUBLIC).map(|_| ()),
        ] {
            let err = result.unwrap_err();
            assert!(
                matches!(err, KeyError::WrongAlgorithm { ref oid, .. } if oid == "1.3.101.112"),
                "{err}"
            );
        }
    }

    #[test]
    fn malformed_pem_and_der_are_clear_errors() {
        let is_pem = |e: &KeyError| matches!(e, KeyError::Pem { .. });
        let is_malformed = |e: &KeyError| matches!(e, KeyError::Malformed { .. });
        // Not PEM at all, empty, binary junk, a truncated block.
        for text in ["", "hello", "\u{0}\u{1}\u{2}", &PYTHON_PRIVATE[..40]] {
            let err = KeyPair::from_pem(text).unwrap_err();
            assert!(is_pem(&err), "{text:?}: {err}");
        }
        // A public key where a private key is expected, and the other way round.
        assert!(is_pem(&KeyPair::from_pem(PYTHON_PUBLIC).unwrap_err()));
        assert!(is_pem(&PublicKey::from_pem(PYTHON_PRIVATE).unwrap_err()));
        // Valid PEM around truncated or padded DER.
        let der = pem::decode_vec(PYTHON_PRIVATE.as_bytes()).unwrap().1;
        for bad in [
            &der[..der.len() - 1],
            &der[..10],
            &[der.as_slice(), &[0]].concat(),
        ] {
            let text = pem::encode_string(PRIVATE_LABEL, LineEnding::LF, bad).unwrap();
            let err = KeyPair::from_pem(&text).unwrap_err();
            assert!(is_malformed(&err), "{err}");
        }
        let der = pem::decode_vec(PYTHON_PUBLIC.as_bytes()).unwrap().1;
        let text = pem::encode_string(PUBLIC_LABEL, LineEnding::LF, &der[..der.len() - 2]).unwrap();
        assert!(is_malformed(&PublicKey::from_pem(&text).unwrap_err()));
        // A 31-byte key inside a well-formed structure.
        let inner = OctetStringRef::new(&[1u8; 31]).unwrap().to_der().unwrap();
        let info = PrivateKeyInfo::new(x25519_algorithm(), &inner)
            .to_der()
            .unwrap();
        let text = pem::encode_string(PRIVATE_LABEL, LineEnding::LF, &info).unwrap();
        let err = KeyPair::from_pem(&text).unwrap_err();
        assert!(err.to_string().contains("31 bytes"), "{err}");
        // Huge input is refused without trouble.
        let huge = "A".repeat(1_000_000);
        assert!(is_pem(&KeyPair::from_pem(&huge).unwrap_err()));
    }

    #[test]
    fn a_v2_key_must_carry_its_own_public_key() {
        let pair = KeyPair::generate();
        let secret = pair.secret.to_bytes();
        let inner = OctetStringRef::new(&secret).unwrap().to_der().unwrap();
        let mut info = PrivateKeyInfo::new(x25519_algorithm(), &inner);
        info.public_key = Some(pair.public().as_bytes());
        let text =
            pem::encode_string(PRIVATE_LABEL, LineEnding::LF, &info.to_der().unwrap()).unwrap();
        assert_eq!(KeyPair::from_pem(&text).unwrap().public(), pair.public());
        let other = [3u8; 32];
        info.public_key = Some(&other);
        let text =
            pem::encode_string(PRIVATE_LABEL, LineEnding::LF, &info.to_der().unwrap()).unwrap();
        assert!(matches!(
            KeyPair::from_pem(&text),
            Err(KeyError::Malformed { .. })
        ));
    }
}
