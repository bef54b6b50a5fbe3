//! Sealing and opening a ball's segments with XChaCha20-Poly1305 under its data key.
//!
//! Segment `i`'s nonce is the ball's random 15-byte prefix, `i` (8 bytes, big-endian) and a
//! last-segment flag (1 byte); the associated data names the ball (bucket, ball id) and its
//! layout (segment size, plaintext size, nonce prefix). So a segment opens only at its own
//! index of its own ball, and only the last segment opens as the last: swapping, reordering,
//! dropping, truncating or appending segments, or moving them to another ball, all fail.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use zeroize::Zeroizing;

use super::envelope::{unwrap, wrap, DataKey};
use super::format::{Header, Layout, MAX_RECIPIENTS, NONCE_PREFIX_LEN};
use super::{KeyPair, PublicKey};
use crate::Error;

const CONTEXT_LABEL: &[u8] = b"mictlanx-xolo/1 ball";

/// The associated data of every segment and wrapped key of one ball.
fn ball_context(
    bucket: &str,
    ball_id: &str,
    layout: &Layout,
    nonce_prefix: &[u8; NONCE_PREFIX_LEN],
) -> Vec<u8> {
    let mut ctx = Vec::with_capacity(CONTEXT_LABEL.len() + bucket.len() + ball_id.len() + 48);
    ctx.extend_from_slice(CONTEXT_LABEL);
    // Length prefixes keep ("ab", "c") and ("a", "bc") apart.
    for part in [bucket.as_bytes(), ball_id.as_bytes()] {
        ctx.extend_from_slice(&(part.len() as u64).to_be_bytes());
        ctx.extend_from_slice(part);
    }
    ctx.extend_from_slice(&layout.segment_size().to_be_bytes());
    ctx.extend_from_slice(&layout.plain_size().to_be_bytes());
    ctx.extend_from_slice(nonce_prefix);
    ctx
}

fn segment_nonce(prefix: &[u8; NONCE_PREFIX_LEN], index: u64, last: bool) -> XNonce {
    let mut nonce = XNonce::default();
    nonce[..NONCE_PREFIX_LEN].copy_from_slice(prefix);
    nonce[NONCE_PREFIX_LEN..NONCE_PREFIX_LEN + 8].copy_from_slice(&index.to_be_bytes());
    nonce[NONCE_PREFIX_LEN + 8] = u8::from(last);
    nonce
}

/// Seals the segments of one ball (deterministically: sealing a segment twice gives the same
/// bytes, so a put can hash the sealed ball first and seal each chunk again when it uploads).
pub(crate) struct Sealer {
    cipher: XChaCha20Poly1305,
    layout: Layout,
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
    context: Vec<u8>,
}

impl Sealer {
    /// A new random data key for ball `bucket/ball_id`, wrapped for each recipient, and the
    /// header to record in the ball's tags.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for no recipients or more than 64 (after removing duplicates),
    /// or a recipient key that is not a usable X25519 key (low order).
    pub fn new(
        recipients: &[PublicKey],
        bucket: &str,
        ball_id: &str,
        layout: Layout,
    ) -> Result<(Self, Header), Error> {
        let mut unique: Vec<&PublicKey> = Vec::with_capacity(recipients.len());
        for r in recipients {
            if !unique.contains(&r) {
                unique.push(r);
            }
        }
        if unique.is_empty() || unique.len() > MAX_RECIPIENTS {
            return Err(Error::Validation {
                message: format!(
                    "an encrypted ball needs 1 to {MAX_RECIPIENTS} recipient keys, not {}",
                    unique.len()
                ),
            });
        }
        let mut rng = rand::rngs::OsRng;
        let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
        rng.fill_bytes(&mut nonce_prefix);
        let mut data_key: DataKey = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(data_key.as_mut_slice());
        let context = ball_context(bucket, ball_id, &layout, &nonce_prefix);
        let wrapped = unique
            .iter()
            .map(|r| wrap(&data_key, r, &context))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| match e {
                // On the way in, an unusable recipient key is the caller's bad input.
                Error::Decryption { message } => Error::Validation { message },
                other => other,
            })?;
        let header = Header {
            layout,
            nonce_prefix,
            recipients: wrapped,
        };
        let sealer = Self {
            cipher: XChaCha20Poly1305::new(data_key.as_slice().into()),
            layout,
            nonce_prefix,
            context,
        };
        Ok((sealer, header))
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Segment `index` sealed; `plaintext` must be exactly that segment's bytes.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] when `plaintext` has the wrong length for `index`.
    pub fn seal(&self, index: u64, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        let expected = self.layout.plain_len(index);
        if index >= self.layout.num_segments() || plaintext.len() as u64 != expected {
            return Err(Error::Validation {
                message: format!(
                    "segment {index} of {} has {} bytes, expected {expected} (did the source change?)",
                    self.layout.num_segments(),
                    plaintext.len()
                ),
            });
        }
        let nonce = segment_nonce(&self.nonce_prefix, index, self.layout.is_last(index));
        self.cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &self.context,
                },
            )
            .map_err(|_| Error::Validation {
                message: format!("segment {index} cannot be sealed"),
            })
    }
}

/// Opens a ball's sealed bytes in order, fed in pieces of any size (normally one chunk, that
/// is one segment, at a time). Holds at most one segment's bytes.
pub(crate) struct Opener {
    cipher: XChaCha20Poly1305,
    layout: Layout,
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
    context: Vec<u8>,
    next: u64,
    pending: Vec<u8>,
}

impl Opener {
    /// Unwraps the data key of the ball described by `header` with `key`.
    ///
    /// # Errors
    ///
    /// [`Error::NotARecipient`], [`Error::Decryption`] (see `envelope::unwrap`).
    pub fn new(header: &Header, key: &KeyPair, bucket: &str, ball_id: &str) -> Result<Self, Error> {
        let context = ball_context(bucket, ball_id, &header.layout, &header.nonce_prefix);
        let data_key = unwrap(&header.recipients, key, &context)?;
        Ok(Self {
            cipher: XChaCha20Poly1305::new(data_key.as_slice().into()),
            layout: header.layout,
            nonce_prefix: header.nonce_prefix,
            context,
            next: 0,
            pending: Vec::new(),
        })
    }

    /// The plaintext of every segment completed by `sealed`.
    ///
    /// # Errors
    ///
    /// [`Error::Decryption`] when a segment does not open (tampered, reordered, from another
    /// ball, or opened with another key) or bytes follow the last segment.
    pub fn push(&mut self, mut sealed: &[u8]) -> Result<Vec<u8>, Error> {
        // Usually one piece is one whole segment: its plaintext is returned without a copy.
        let mut opened: Vec<Vec<u8>> = Vec::new();
        while !sealed.is_empty() {
            if self.next >= self.layout.num_segments() {
                return Err(Error::Decryption {
                    message: format!(
                        "{} bytes follow the last of {} segments",
                        sealed.len(),
                        self.layout.num_segments()
                    ),
                });
            }
            let want = usize::try_from(self.layout.sealed_len(self.next)).unwrap_or(usize::MAX);
            if self.pending.is_empty() && sealed.len() >= want {
                let (segment, rest) = sealed.split_at(want);
                opened.push(self.open(segment)?);
                sealed = rest;
                continue;
            }
            let take = (want - self.pending.len()).min(sealed.len());
            self.pending.extend_from_slice(&sealed[..take]);
            sealed = &sealed[take..];
            if self.pending.len() == want {
                let segment = std::mem::take(&mut self.pending);
                opened.push(self.open(&segment)?);
            }
        }
        Ok(match opened.len() {
            1 => opened.pop().unwrap_or_default(),
            _ => opened.concat(),
        })
    }

    fn open(&mut self, segment: &[u8]) -> Result<Vec<u8>, Error> {
        let index = self.next;
        let nonce = segment_nonce(&self.nonce_prefix, index, self.layout.is_last(index));
        let plain = self
            .cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: segment,
                    aad: &self.context,
                },
            )
            .map_err(|_| Error::Decryption {
                message: format!(
                    "segment {index} of {} does not open: tampered, reordered, from another ball, or a wrong key",
                    self.layout.num_segments()
                ),
            })?;
        self.next += 1;
        Ok(plain)
    }

    /// Checks that the whole ball was opened.
    ///
    /// # Errors
    ///
    /// [`Error::Decryption`] when segments are missing (the ball was truncated).
    pub fn finish(&self) -> Result<(), Error> {
        if self.next == self.layout.num_segments() && self.pending.is_empty() {
            return Ok(());
        }
        Err(Error::Decryption {
            message: format!(
                "the ball ends after {} of its {} segments ({} bytes more): truncated",
                self.next,
                self.layout.num_segments(),
                self.pending.len()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal_all(sealer: &Sealer, plain: &[u8]) -> Vec<Vec<u8>> {
        let layout = *sealer.layout();
        (0..layout.num_segments())
            .map(|i| {
                let start = layout.plain_offset(i) as usize;
                let end = start + layout.plain_len(i) as usize;
                sealer.seal(i, &plain[start..end]).unwrap()
            })
            .collect()
    }

    fn open_all(opener: &mut Opener, segments: &[Vec<u8>]) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        for s in segments {
            out.extend(opener.push(s)?);
        }
        opener.finish()?;
        Ok(out)
    }

    fn sealed_ball(plain: &[u8], segment: u64, to: &[&KeyPair]) -> (Header, Vec<Vec<u8>>) {
        let layout = Layout::new(segment, plain.len() as u64).unwrap();
        let keys: Vec<PublicKey> = to.iter().map(|k| *k.public()).collect();
        let (sealer, header) = Sealer::new(&keys, "b", "ball", layout).unwrap();
        let segments = seal_all(&sealer, plain);
        (header, segments)
    }

    #[test]
    fn round_trips_for_empty_one_and_many_segments() {
        let alice = KeyPair::generate();
        for (len, segment) in [(0usize, 64u64), (1, 64), (64, 64), (65, 64), (1000, 7)] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let (header, segments) = sealed_ball(&plain, segment, &[&alice]);
            let total: usize = segments.iter().map(Vec::len).sum();
            assert_eq!(total as u64, header.layout.sealed_size());
            let mut opener = Opener::new(&header, &alice, "b", "ball").unwrap();
            assert_eq!(open_all(&mut opener, &segments).unwrap(), plain, "{len}");
            // The same bytes fed in odd pieces open the same.
            let joined: Vec<u8> = segments.concat();
            let mut opener = Opener::new(&header, &alice, "b", "ball").unwrap();
            let mut out = Vec::new();
            for piece in joined.chunks(5) {
                out.extend(opener.push(piece).unwrap());
            }
            opener.finish().unwrap();
            assert_eq!(out, plain);
        }
    }

    #[test]
    fn sealing_is_deterministic_per_ball_and_random_across_balls() {
        let alice = KeyPair::generate();
        let layout = Layout::new(10, 25).unwrap();
        let (sealer, _) = Sealer::new(&[*alice.public()], "b", "k", layout).unwrap();
        assert_eq!(
            sealer.seal(1, &[5; 10]).unwrap(),
            sealer.seal(1, &[5; 10]).unwrap()
        );
        let (other, _) = Sealer::new(&[*alice.public()], "b", "k", layout).unwrap();
        assert_ne!(
            sealer.seal(1, &[5; 10]).unwrap(),
            other.seal(1, &[5; 10]).unwrap()
        );
        // Wrong lengths and indexes are refused, not sealed.
        assert!(sealer.seal(2, &[5; 10]).is_err());
        assert!(sealer.seal(3, &[]).is_err());
        assert!(sealer.seal(0, &[5; 9]).is_err());
    }

    #[test]
    fn tampering_swapping_truncating_and_appending_fail() {
        let alice = KeyPair::generate();
        let plain = vec![9u8; 100];
        let (header, segments) = sealed_ball(&plain, 30, &[&alice]);
        let open = |segs: &[Vec<u8>]| {
            let mut opener = Opener::new(&header, &alice, "b", "ball").unwrap();
            open_all(&mut opener, segs)
        };
        let is_decryption = |r: Result<Vec<u8>, Error>| matches!(r, Err(Error::Decryption { .. }));
        let mut flipped = segments.clone();
        flipped[1][3] ^= 0x80;
        assert!(is_decryption(open(&flipped)));
        let mut swapped = segments.clone();
        swapped.swap(0, 1);
        assert!(is_decryption(open(&swapped)));
        assert!(is_decryption(open(&segments[..3])), "truncated");
        let mut appended = segments.clone();
        appended.push(segments[3].clone());
        assert!(is_decryption(open(&appended)));
        // A full segment moved to the end is not a last segment.
        let mut last_replaced = segments.clone();
        last_replaced[3] = segments[2].clone();
        assert!(is_decryption(open(&last_replaced)));
        // Segments of the same plaintext in another ball (same key) do not open here.
        let layout = header.layout;
        let (other, _) = Sealer::new(&[*alice.public()], "b", "ball", layout).unwrap();
        let mut foreign = segments.clone();
        foreign[0] = other.seal(0, &plain[..30]).unwrap();
        assert!(is_decryption(open(&foreign)));
        // The header's context matters: the same segments under another ball id fail.
        assert!(matches!(
            Opener::new(&header, &alice, "b", "other"),
            Err(Error::Decryption { .. })
        ));
        let mut wrong_size = header.clone();
        wrong_size.layout = Layout::new(30, 99).unwrap();
        assert!(Opener::new(&wrong_size, &alice, "b", "ball").is_err());
    }

    #[test]
    fn two_recipients_each_open_and_a_stranger_cannot() {
        let alice = KeyPair::generate();
        let bob = KeyPair::generate();
        let plain = b"for both of you".to_vec();
        let (header, segments) = sealed_ball(&plain, 4, &[&alice, &bob, &alice]);
        assert_eq!(header.recipients.len(), 2, "duplicates removed");
        for key in [&alice, &bob] {
            let mut opener = Opener::new(&header, key, "b", "ball").unwrap();
            assert_eq!(open_all(&mut opener, &segments).unwrap(), plain);
        }
        let carol = KeyPair::generate();
        assert!(matches!(
            Opener::new(&header, &carol, "b", "ball"),
            Err(Error::NotARecipient { .. })
        ));
    }

    #[test]
    fn recipient_count_is_bounded() {
        let layout = Layout::new(10, 10).unwrap();
        assert!(matches!(
            Sealer::new(&[], "b", "k", layout),
            Err(Error::Validation { .. })
        ));
        let low_order = PublicKey::from_bytes([0; 32]);
        assert!(matches!(
            Sealer::new(&[low_order], "b", "k", layout),
            Err(Error::Validation { .. })
        ));
        let many: Vec<PublicKey> = (0..=MAX_RECIPIENTS)
            .map(|_| *KeyPair::generate().public())
            .collect();
        assert!(matches!(
            Sealer::new(&many, "b", "k", layout),
            Err(Error::Validation { .. })
        ));
    }
}
