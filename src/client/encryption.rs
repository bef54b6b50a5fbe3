//! Client-side encryption in puts and gets (see [`crate::xolo`]).
//!
//! An encrypted put stores one sealed segment per chunk: the stored chunk size is the
//! caller's chunk size, of which 16 bytes are the AEAD tag. Every chunk's tags carry the
//! whole ball's `full_checksum`, so the sealed ball is hashed first, in one pass on the
//! blocking pool, and each chunk is sealed again when its upload reads it. Sealing is
//! deterministic for one ball (same data key, same nonce), so the second pass gives the same
//! bytes; each resealed chunk is checked against the first pass's checksum, so a source
//! that changed in between is an error, never a second, different ciphertext under the same
//! nonce. Memory stays at a few chunks, as for plain puts.
//!
//! A get reads chunk 0's tags first: an encrypted ball needs the key (or an explicit
//! request for its sealed bytes), a plain ball must not be given one. Each chunk is opened
//! once it is fetched and verified against its checksum.

use std::fmt;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use bytes::Bytes;

use super::options::GetOptions;
use super::source::ChunkSource;
use crate::blocking;
use crate::checksum::{sha256_hex, BallDigest, BallHasher};
use crate::chunking::{ChunkPlan, ChunkRange};
use crate::model::{Metadata, Tags};
use crate::xolo::format::{self, Header, Layout, TAG_LEN};
use crate::xolo::seal::{Opener, Sealer};
use crate::xolo::PublicKey;
use crate::Error;

/// Pieces up to this size are sealed or opened in place; larger ones on the blocking pool.
const INLINE_LIMIT: usize = 64 * 1024;

/// An encrypted ball ready to go up: its sealed plan and checksums, a source that seals
/// each chunk as it is read, and the tags that describe the encryption.
pub(crate) struct SealedBall {
    pub plan: ChunkPlan,
    pub digest: BallDigest,
    pub source: ChunkSource,
    pub tags: Tags,
}

/// The plaintext source of an encrypted put and what seals it.
pub(crate) struct SealedSource {
    plain: ChunkSource,
    sealer: Sealer,
    checksums: Vec<String>,
}

impl fmt::Debug for SealedSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedSource")
            .field("plain", &self.plain)
            .field("layout", self.sealer.layout())
            .finish_non_exhaustive()
    }
}

impl SealedSource {
    /// Chunk `range.index` sealed (one segment), checked against the first pass.
    pub async fn read(self: &Arc<Self>, range: ChunkRange) -> Result<Bytes, Error> {
        let layout = *self.sealer.layout();
        let index = range.index;
        let plain = self
            .plain
            .read_plain(ChunkRange {
                index,
                offset: layout.plain_offset(index),
                len: layout.plain_len(index),
            })
            .await?;
        let this = Arc::clone(self);
        let seal = move || -> Result<Bytes, Error> {
            let sealed = this.sealer.seal(index, &plain)?;
            let expected = usize::try_from(index)
                .ok()
                .and_then(|i| this.checksums.get(i));
            if expected.map(String::as_str) != Some(sha256_hex(&sealed).as_str()) {
                return Err(Error::Io(std::io::Error::other(format!(
                    "chunk {index} changed while it was being put"
                ))));
            }
            Ok(Bytes::from(sealed))
        };
        if usize::try_from(range.len).map_or(true, |n| n > INLINE_LIMIT) {
            blocking::run("sealing", seal).await?
        } else {
            seal()
        }
    }
}

/// Refuses user tags in the encryption's reserved namespace: a plain ball tagged
/// `xolo_alg` would read as encrypted, and forged `xolo_recipient_*` tags would mislead.
pub(crate) fn check_user_tags(tags: &Tags) -> Result<(), Error> {
    match tags.keys().find(|k| k.starts_with(format::RESERVED_PREFIX)) {
        Some(name) => Err(Error::Validation {
            message: format!(
                "tag {name:?}: names starting with {:?} are reserved for encryption",
                format::RESERVED_PREFIX
            ),
        }),
        None => Ok(()),
    }
}

/// Plans the encrypted put of `plain_len` bytes from `plain` to `recipients`, in stored
/// chunks of `chunk_size` bytes, and hashes the sealed ball.
///
/// # Errors
///
/// [`Error::Validation`] for a chunk size of 16 bytes or less, no recipients or too many;
/// [`Error::Io`] when the source cannot be read (or is shorter than `plain_len`).
pub(crate) async fn seal_ball(
    bucket: &str,
    ball_id: &str,
    plain: ChunkSource,
    plain_len: u64,
    chunk_size: u64,
    recipients: &[PublicKey],
) -> Result<SealedBall, Error> {
    if chunk_size <= TAG_LEN {
        return Err(Error::Validation {
            message: format!(
                "an encrypted put needs chunks of more than {TAG_LEN} bytes (each holds a {TAG_LEN}-byte tag), not {chunk_size}"
            ),
        });
    }
    let layout = Layout::new(chunk_size - TAG_LEN, plain_len)
        .map_err(|message| Error::Validation { message })?;
    let (sealer, header) = Sealer::new(recipients, bucket, ball_id, layout)?;
    let plan = ChunkPlan::file(layout.sealed_size(), layout.sealed_segment_size())?;
    if plan.num_chunks() != layout.num_segments() {
        return Err(Error::Validation {
            message: format!(
                "{} chunks for {} sealed segments",
                plan.num_chunks(),
                layout.num_segments()
            ),
        });
    }
    let (sealer, digest) = {
        let plain = plain.clone();
        blocking::run("sealing", move || hash_sealed(&plain, sealer, plan)).await??
    };
    let source = ChunkSource::Sealed(Arc::new(SealedSource {
        plain,
        sealer,
        checksums: digest.chunk_checksums.clone(),
    }));
    Ok(SealedBall {
        plan,
        digest,
        source,
        tags: header.to_tags(),
    })
}

/// The first pass: seals every segment in order and hashes the result (blocking).
fn hash_sealed(
    plain: &ChunkSource,
    sealer: Sealer,
    plan: ChunkPlan,
) -> Result<(Sealer, BallDigest), Error> {
    let layout = *sealer.layout();
    let mut hasher = BallHasher::new(plan);
    let mut file = match plain {
        ChunkSource::File(path) => Some((std::fs::File::open(path)?, path)),
        _ => None,
    };
    let mut buf = Vec::new();
    for index in 0..layout.num_segments() {
        let offset = layout.plain_offset(index);
        let len = usize::try_from(layout.plain_len(index)).map_err(|_| Error::Validation {
            message: "a segment does not fit in memory".into(),
        })?;
        let sealed = match (&mut file, plain) {
            (Some((f, path)), _) => {
                buf.resize(len, 0);
                f.seek(SeekFrom::Start(offset))?;
                f.read_exact(&mut buf).map_err(|e| {
                    Error::Io(std::io::Error::new(
                        e.kind(),
                        format!("{} shrank while it was being put: {e}", path.display()),
                    ))
                })?;
                sealer.seal(index, &buf)?
            }
            (None, ChunkSource::Memory(data)) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX);
                let piece = start
                    .checked_add(len)
                    .and_then(|end| data.get(start..end))
                    .ok_or_else(|| Error::Validation {
                        message: format!("segment {index} is outside the data"),
                    })?;
                sealer.seal(index, piece)?
            }
            (None, _) => {
                return Err(Error::Validation {
                    message: "an encrypted put's source is already sealed".into(),
                })
            }
        };
        hasher.update(&sealed);
    }
    Ok((sealer, hasher.finish()?))
}

/// How a get hands out a ball's bytes, decided from chunk 0's tags and the options: `None`
/// as stored (a plain ball, or sealed bytes explicitly asked for), `Some` opened.
///
/// # Errors
///
/// [`Error::MissingKey`] for an encrypted ball without a key (unless
/// [`GetOptions::raw_sealed`]); [`Error::NotEncrypted`] for a key and a plain ball;
/// [`Error::NotARecipient`], [`Error::Decryption`] from the key's entry or the tags.
pub(crate) fn opener_for(
    bucket: &str,
    ball_id: &str,
    first: &Metadata,
    num_chunks: u64,
    opts: &GetOptions,
) -> Result<Option<Opener>, Error> {
    let sealed = format::is_sealed(&first.tags);
    match (&opts.decryption_key, sealed) {
        (None, false) => Ok(None),
        (None, true) if opts.raw_sealed => Ok(None),
        (None, true) => Err(Error::MissingKey {
            message: format!(
                "{bucket}/{ball_id} is encrypted: read it with a key (decrypt_with), or ask for its sealed bytes"
            ),
        }),
        (Some(_), false) => Err(Error::NotEncrypted {
            message: format!("{bucket}/{ball_id} is not encrypted, yet a key was given to open it"),
        }),
        (Some(key), true) => {
            let header = Header::from_tags(&first.tags)?;
            if header.layout.num_segments() != num_chunks {
                return Err(Error::Decryption {
                    message: format!(
                        "{bucket}/{ball_id} has {num_chunks} chunks, its encryption tags describe {} segments",
                        header.layout.num_segments()
                    ),
                });
            }
            Opener::new(&header, key, bucket, ball_id).map(Some)
        }
    }
}

/// Opens the next sealed bytes of a ball (on the blocking pool when large).
pub(crate) async fn open(mut opener: Opener, sealed: Bytes) -> Result<(Opener, Bytes), Error> {
    let small = sealed.len() <= INLINE_LIMIT;
    let run = move || {
        let plain = opener.push(&sealed)?;
        Ok((opener, Bytes::from(plain)))
    };
    if small {
        run()
    } else {
        blocking::run("opening", run).await?
    }
}

/// Opens a whole sealed ball held in memory.
pub(crate) async fn open_all(opener: Opener, sealed: Bytes) -> Result<Bytes, Error> {
    let (opener, plain) = open(opener, sealed).await?;
    opener.finish()?;
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xolo::KeyPair;

    fn metadata_with(tags: Tags) -> Metadata {
        let mut m: Metadata = serde_json::from_str(r#"{"key":"k_0","size":0,"checksum":""}"#)
            .expect("minimal metadata parses");
        m.tags = tags;
        m
    }

    async fn put_and_read_back(source: ChunkSource, plain: &[u8], chunk_size: u64) {
        let alice = KeyPair::generate();
        let ball = seal_ball(
            "b",
            "k",
            source,
            plain.len() as u64,
            chunk_size,
            &[*alice.public()],
        )
        .await
        .unwrap();
        // Each chunk read is the sealed segment the digest describes.
        let mut stored = Vec::new();
        for (range, sum) in ball.plan.iter().zip(&ball.digest.chunk_checksums) {
            let chunk = ball.source.read(range).await.unwrap();
            assert_eq!(chunk.len() as u64, range.len);
            assert!(chunk.len() as u64 <= chunk_size);
            assert_eq!(&sha256_hex(&chunk), sum);
            stored.push(chunk);
        }
        assert_eq!(
            sha256_hex(&stored.concat()),
            ball.digest.full_checksum,
            "full checksum covers the sealed bytes"
        );
        let first = metadata_with(ball.tags.clone());
        let opts = GetOptions::default().decrypt_with(&alice);
        let opener = opener_for("b", "k", &first, ball.plan.num_chunks(), &opts)
            .unwrap()
            .unwrap();
        let mut opener = Some(opener);
        let mut out = Vec::new();
        for chunk in stored {
            let (o, p) = open(opener.take().unwrap(), chunk).await.unwrap();
            out.extend_from_slice(&p);
            opener = Some(o);
        }
        opener.unwrap().finish().unwrap();
        assert_eq!(out, plain);
    }

    #[tokio::test]
    async fn sealed_puts_round_trip_from_memory_and_file() {
        for len in [0usize, 1, 84, 85, 1000, 200_000] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            put_and_read_back(ChunkSource::Memory(Bytes::from(plain.clone())), &plain, 100).await;
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("f");
            std::fs::write(&path, &plain).unwrap();
            put_and_read_back(ChunkSource::File(path), &plain, 70_000).await;
        }
    }

    #[tokio::test]
    async fn a_source_that_changes_after_hashing_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![1u8; 300]).unwrap();
        let key = KeyPair::generate();
        let ball = seal_ball(
            "b",
            "k",
            ChunkSource::File(path.clone()),
            300,
            116,
            &[*key.public()],
        )
        .await
        .unwrap();
        std::fs::write(&path, vec![2u8; 300]).unwrap();
        let err = ball
            .source
            .read(ball.plan.chunk(0).unwrap())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("changed"), "{err}");
        std::fs::write(&path, vec![1u8; 10]).unwrap();
        assert!(ball.source.read(ball.plan.chunk(2).unwrap()).await.is_err());
    }

    #[tokio::test]
    async fn chunk_size_and_recipients_are_checked() {
        let key = KeyPair::generate();
        let data = ChunkSource::Memory(Bytes::from_static(b"abc"));
        for size in [0, 1, 16] {
            let err = seal_ball("b", "k", data.clone(), 3, size, &[*key.public()])
                .await
                .err()
                .unwrap();
            assert!(matches!(err, Error::Validation { .. }), "{err}");
        }
        assert!(seal_ball("b", "k", data.clone(), 3, 17, &[]).await.is_err());
        // A source shorter than announced.
        assert!(seal_ball("b", "k", data, 300, 17, &[*key.public()])
            .await
            .is_err());
    }

    #[test]
    fn reading_mode_follows_tags_and_options() {
        let key = KeyPair::generate();
        let plain = metadata_with(Tags::new());
        let header_tags = {
            let layout = Layout::new(10, 5).unwrap();
            Sealer::new(&[*key.public()], "b", "k", layout)
                .unwrap()
                .1
                .to_tags()
        };
        let sealed = metadata_with(header_tags);
        let none = GetOptions::default();
        let with_key = GetOptions::default().decrypt_with(&key);
        let raw = GetOptions::default().with_raw_sealed(true);
        assert!(opener_for("b", "k", &plain, 1, &none).unwrap().is_none());
        assert!(opener_for("b", "k", &plain, 1, &raw).unwrap().is_none());
        assert!(matches!(
            opener_for("b", "k", &plain, 1, &with_key),
            Err(Error::NotEncrypted { .. })
        ));
        assert!(matches!(
            opener_for("b", "k", &sealed, 1, &none),
            Err(Error::MissingKey { .. })
        ));
        assert!(opener_for("b", "k", &sealed, 1, &raw).unwrap().is_none());
        assert!(opener_for("b", "k", &sealed, 1, &with_key)
            .unwrap()
            .is_some());
        // A chunk count that disagrees with the tags, and a stranger's key.
        assert!(matches!(
            opener_for("b", "k", &sealed, 2, &with_key),
            Err(Error::Decryption { .. })
        ));
        let stranger = GetOptions::default().decrypt_with(&KeyPair::generate());
        assert!(matches!(
            opener_for("b", "k", &sealed, 1, &stranger),
            Err(Error::NotARecipient { .. })
        ));
    }

    #[test]
    fn reserved_tags_are_refused() {
        let mut tags = Tags::new();
        tags.insert("extension".into(), "txt".into());
        assert!(check_user_tags(&tags).is_ok());
        tags.insert("xolo_alg".into(), "none".into());
        assert!(matches!(
            check_user_tags(&tags),
            Err(Error::Validation { .. })
        ));
    }
}
