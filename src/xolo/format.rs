//! The sealed-ball format: how plaintext is cut into segments, and the tags that record
//! everything a reader needs to open it.
//!
//! A ball of `plain_size` bytes is cut into segments of `segment_size` bytes (the last one
//! shorter; a 0-byte ball is one empty segment). Each segment is sealed on its own and grows
//! by a 16-byte tag, so segment `i` of the sealed ball starts at `i × (segment_size + 16)`.
//! The client stores one sealed segment per chunk, so a reader can open each chunk as it
//! arrives.
//!
//! | tag | value |
//! |---|---|
//! | `xolo_alg` | [`ALGORITHM`] |
//! | `xolo_version` | `1` |
//! | `xolo_segment_size` | plaintext bytes per segment, decimal |
//! | `xolo_plain_size` | plaintext bytes of the ball, decimal |
//! | `xolo_nonce_prefix` | 15 random bytes, hex: the first 15 bytes of every segment nonce |
//! | `xolo_recipients` | number of wrapped keys, decimal |
//! | `xolo_recipient_{i}` | `{fingerprint}.{ephemeral public key hex}.{wrapped data key hex}` |

use std::collections::BTreeMap;

use crate::Error;

/// The value of the `xolo_alg` tag.
pub(crate) const ALGORITHM: &str = "X25519-HKDF-SHA256+XChaCha20-Poly1305";
/// The format version written and read.
pub(crate) const VERSION: &str = "1";
/// Tag names starting with this are the format's; user tags may not use it.
pub(crate) const RESERVED_PREFIX: &str = "xolo_";
/// Bytes a sealed segment (or a wrapped key) adds: the Poly1305 tag.
pub(crate) const TAG_LEN: u64 = 16;
/// Bytes of the random nonce prefix; the segment index and the last-segment flag fill the
/// other 9 bytes of the 24-byte XChaCha20 nonce.
pub(crate) const NONCE_PREFIX_LEN: usize = 15;
/// Most recipients of one ball. Every chunk's metadata carries every wrapped key (about 200
/// bytes each), and the router takes metadata bodies up to 2 MiB; 64 keeps it under 16 kB.
pub(crate) const MAX_RECIPIENTS: usize = 64;

pub(crate) const TAG_ALG: &str = "xolo_alg";
const TAG_VERSION: &str = "xolo_version";
const TAG_SEGMENT_SIZE: &str = "xolo_segment_size";
const TAG_PLAIN_SIZE: &str = "xolo_plain_size";
const TAG_NONCE_PREFIX: &str = "xolo_nonce_prefix";
const TAG_RECIPIENTS: &str = "xolo_recipients";
const TAG_RECIPIENT: &str = "xolo_recipient_";

/// How a ball's plaintext maps onto sealed segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    segment_size: u64,
    plain_size: u64,
    num_segments: u64,
    sealed_size: u64,
}

impl Layout {
    /// The layout of `plain_size` bytes in segments of `segment_size` bytes.
    pub fn new(segment_size: u64, plain_size: u64) -> Result<Self, String> {
        if segment_size == 0 {
            return Err("the segment size is 0".into());
        }
        let num_segments = plain_size.div_ceil(segment_size).max(1);
        let sealed_size = num_segments
            .checked_mul(TAG_LEN)
            .and_then(|tags| tags.checked_add(plain_size))
            .ok_or_else(|| format!("{plain_size} bytes sealed do not fit in 64 bits"))?;
        Ok(Self {
            segment_size,
            plain_size,
            num_segments,
            sealed_size,
        })
    }

    pub fn segment_size(&self) -> u64 {
        self.segment_size
    }

    pub fn plain_size(&self) -> u64 {
        self.plain_size
    }

    pub fn num_segments(&self) -> u64 {
        self.num_segments
    }

    /// Bytes of the whole sealed ball.
    pub fn sealed_size(&self) -> u64 {
        self.sealed_size
    }

    /// Bytes a sealed full segment takes (the stored chunk size).
    pub fn sealed_segment_size(&self) -> u64 {
        self.segment_size.saturating_add(TAG_LEN)
    }

    pub fn is_last(&self, index: u64) -> bool {
        index + 1 == self.num_segments
    }

    /// Where segment `index`'s plaintext starts.
    pub fn plain_offset(&self, index: u64) -> u64 {
        index.saturating_mul(self.segment_size)
    }

    /// Plaintext bytes of segment `index` (0 past the end).
    pub fn plain_len(&self, index: u64) -> u64 {
        if index >= self.num_segments {
            return 0;
        }
        if self.is_last(index) {
            self.plain_size - self.plain_offset(index)
        } else {
            self.segment_size
        }
    }

    /// Sealed bytes of segment `index`.
    pub fn sealed_len(&self, index: u64) -> u64 {
        self.plain_len(index) + TAG_LEN
    }
}

/// One recipient's copy of the data key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WrappedKey {
    /// [`PublicKey::fingerprint`](super::PublicKey::fingerprint) of the recipient.
    pub fingerprint: String,
    /// The ephemeral X25519 public key of this wrap.
    pub ephemeral: [u8; 32],
    /// The data key sealed with the key derived for this recipient (32 + 16 bytes).
    pub wrapped: [u8; 48],
}

/// Everything the tags of a sealed ball record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub layout: Layout,
    pub nonce_prefix: [u8; NONCE_PREFIX_LEN],
    pub recipients: Vec<WrappedKey>,
}

/// Whether the tags mark a sealed ball.
pub(crate) fn is_sealed(tags: &BTreeMap<String, String>) -> bool {
    tags.contains_key(TAG_ALG)
}

impl Header {
    /// The tags recording this header.
    pub fn to_tags(&self) -> BTreeMap<String, String> {
        let mut tags = BTreeMap::new();
        tags.insert(TAG_ALG.to_owned(), ALGORITHM.to_owned());
        tags.insert(TAG_VERSION.to_owned(), VERSION.to_owned());
        tags.insert(
            TAG_SEGMENT_SIZE.to_owned(),
            self.layout.segment_size.to_string(),
        );
        tags.insert(
            TAG_PLAIN_SIZE.to_owned(),
            self.layout.plain_size.to_string(),
        );
        tags.insert(TAG_NONCE_PREFIX.to_owned(), hex::encode(self.nonce_prefix));
        tags.insert(TAG_RECIPIENTS.to_owned(), self.recipients.len().to_string());
        for (i, r) in self.recipients.iter().enumerate() {
            tags.insert(
                format!("{TAG_RECIPIENT}{i}"),
                format!(
                    "{}.{}.{}",
                    r.fingerprint,
                    hex::encode(r.ephemeral),
                    hex::encode(r.wrapped)
                ),
            );
        }
        tags
    }

    /// The header recorded in `tags`, which must mark a sealed ball ([`is_sealed`]).
    ///
    /// # Errors
    ///
    /// [`Error::Decryption`] naming the first tag that is missing or malformed, or an
    /// algorithm or version this client does not know.
    pub fn from_tags(tags: &BTreeMap<String, String>) -> Result<Self, Error> {
        let get = |name: &str| {
            tags.get(name)
                .map(String::as_str)
                .ok_or_else(|| bad(format!("the tag {name} is missing")))
        };
        let alg = get(TAG_ALG)?;
        if alg != ALGORITHM {
            return Err(bad(format!("unknown algorithm {alg:?}")));
        }
        let version = get(TAG_VERSION)?;
        if version != VERSION {
            return Err(bad(format!("unknown format version {version:?}")));
        }
        let number = |name: &str| {
            get(name)?
                .parse::<u64>()
                .map_err(|_| bad(format!("the tag {name} is not a number")))
        };
        let layout =
            Layout::new(number(TAG_SEGMENT_SIZE)?, number(TAG_PLAIN_SIZE)?).map_err(bad)?;
        let nonce_prefix = fixed_hex::<NONCE_PREFIX_LEN>(get(TAG_NONCE_PREFIX)?)
            .ok_or_else(|| bad(format!("the tag {TAG_NONCE_PREFIX} is not 15 bytes of hex")))?;
        let count = number(TAG_RECIPIENTS)?;
        if count == 0 || count > MAX_RECIPIENTS as u64 {
            return Err(bad(format!(
                "{count} recipients (1 to {MAX_RECIPIENTS} are possible)"
            )));
        }
        let recipients = (0..count)
            .map(|i| {
                let name = format!("{TAG_RECIPIENT}{i}");
                parse_recipient(get(&name)?)
                    .ok_or_else(|| bad(format!("the tag {name} is malformed")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            layout,
            nonce_prefix,
            recipients,
        })
    }
}

fn bad(reason: String) -> Error {
    Error::Decryption {
        message: format!("the ball's encryption tags are unusable: {reason}"),
    }
}

fn parse_recipient(value: &str) -> Option<WrappedKey> {
    let mut parts = value.split('.');
    let fingerprint = parts.next()?;
    let ephemeral = fixed_hex::<32>(parts.next()?)?;
    let wrapped = fixed_hex::<48>(parts.next()?)?;
    let fingerprint_ok =
        fingerprint.len() == 32 && fingerprint.bytes().all(|b| b.is_ascii_hexdigit());
    if parts.next().is_some() || !fingerprint_ok {
        return None;
    }
    Some(WrappedKey {
        fingerprint: fingerprint.to_ascii_lowercase(),
        ephemeral,
        wrapped,
    })
}

fn fixed_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(recipients: usize) -> Header {
        Header {
            layout: Layout::new(100, 250).unwrap(),
            nonce_prefix: [7; NONCE_PREFIX_LEN],
            recipients: (0..recipients)
                .map(|i| WrappedKey {
                    fingerprint: format!("{:032x}", i),
                    ephemeral: [i as u8; 32],
                    wrapped: [1; 48],
                })
                .collect(),
        }
    }

    #[test]
    fn layout_of_empty_exact_and_ragged_balls() {
        let empty = Layout::new(10, 0).unwrap();
        assert_eq!(
            (
                empty.num_segments(),
                empty.sealed_size(),
                empty.sealed_len(0)
            ),
            (1, 16, 16)
        );
        assert!(empty.is_last(0));
        let exact = Layout::new(10, 30).unwrap();
        assert_eq!((exact.num_segments(), exact.sealed_size()), (3, 78));
        assert_eq!(exact.sealed_len(2), 26);
        let ragged = Layout::new(10, 31).unwrap();
        assert_eq!((ragged.num_segments(), ragged.plain_len(3)), (4, 1));
        assert_eq!(ragged.plain_len(4), 0);
        assert_eq!(ragged.plain_offset(3), 30);
        assert!(Layout::new(0, 5).is_err());
        assert!(Layout::new(1, u64::MAX).is_err());
    }

    #[test]
    fn tags_round_trip_and_stay_small() {
        let h = header(MAX_RECIPIENTS);
        let tags = h.to_tags();
        assert!(is_sealed(&tags));
        assert_eq!(Header::from_tags(&tags).unwrap(), h);
        let bytes: usize = tags.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert!(bytes < 16_000, "{bytes} bytes of tags");
    }

    #[test]
    fn bad_tags_are_decryption_errors_naming_the_tag() {
        let good = header(2).to_tags();
        let cases: Vec<(&str, Option<&str>, &str)> = vec![
            ("xolo_alg", Some("AES"), "unknown algorithm"),
            ("xolo_version", Some("2"), "unknown format version"),
            ("xolo_version", None, "xolo_version is missing"),
            ("xolo_segment_size", Some("0"), "segment size is 0"),
            ("xolo_segment_size", Some("-1"), "not a number"),
            ("xolo_plain_size", Some("1e9"), "not a number"),
            ("xolo_nonce_prefix", Some("abcd"), "15 bytes"),
            ("xolo_recipients", Some("0"), "0 recipients"),
            ("xolo_recipients", Some("3"), "xolo_recipient_2 is missing"),
            ("xolo_recipients", Some("99999999999"), "recipients"),
            (
                "xolo_recipient_1",
                Some("x.y.z"),
                "xolo_recipient_1 is malformed",
            ),
            ("xolo_recipient_1", Some(""), "malformed"),
        ];
        for (name, value, expected) in cases {
            let mut tags = good.clone();
            match value {
                Some(v) => tags.insert(name.to_owned(), v.to_owned()),
                None => tags.remove(name),
            };
            let err = Header::from_tags(&tags).unwrap_err();
            assert!(matches!(err, Error::Decryption { .. }), "{name}: {err}");
            assert!(err.to_string().contains(expected), "{name}: {err}");
        }
        // A recipient entry with extra parts or a short fingerprint is refused.
        let r = good["xolo_recipient_0"].clone();
        for value in [format!("{r}.00"), r[2..].to_owned(), r.replace('.', ":")] {
            let mut tags = good.clone();
            tags.insert("xolo_recipient_0".into(), value);
            assert!(Header::from_tags(&tags).is_err());
        }
    }
}
