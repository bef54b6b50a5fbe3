//! Serving the bytes of an object (PD3), with integrity checks.
//!
//! Before anything is sent the file's length must match the record. A whole read of a small
//! object (up to 1 MiB) is read into memory once, hashed and sent from there; a whole read
//! of a larger object up to `verify_before_send_limit` bytes is hashed first, so a corrupt object is
//! refused with a clean error; a larger one is hashed while it streams and the stream ends
//! with an error instead of a clean end if the hash differs, so the receiver never mistakes
//! corrupt bytes for a complete object. Either way the object is quarantined.
//!
//! Files stored with block sums (every file since they exist, see `mictlanx::blocks`) are
//! read block-aligned instead, whole or ranged: a span up to `verify_before_send_limit` is
//! checked before the answer starts, a longer one block by block before each block's first
//! byte is sent ([`super::block_read`]). A range of an older file is served only after the
//! whole file matched its SHA-256.

use std::fs::File;
use std::io::{self, Read};
use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use futures::Stream;
use mictlanx::blocks::{BlockSummer, BlockSums, MAX_HEADER_BLOCKS};
use mictlanx::checksum::{sha256_hex, Sha256Stream, FILE_BUFFER_SIZE};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::block_read::{seek, BlockCheck, BlockSpan, BlockStream};
use super::meta::{object_key, ObjectRecord, INLINE};
use super::query::{key_state_in, KeyState};
use super::range::{ByteRange, RangeSpec};
use super::{Store, StoreError};

/// Largest piece a read stream yields.
const READ_CHUNK: usize = 256 * 1024;
/// Whole reads up to this size are read into memory once, verified and sent from there:
/// cheaper than hashing the file, seeking back and streaming it through tokio's file I/O
/// (one blocking-pool hop per piece).
const SMALL_OBJECT: u64 = 1024 * 1024;
/// How often a read retries when the object was replaced between lookup and open.
const OPEN_ATTEMPTS: usize = 3;

/// A stream of an object's bytes. If the bytes turn out to be corrupt while streaming, it
/// ends with an `Err` in place of its last piece, so a receiver never gets them all.
pub type ObjectStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// An object ready to be sent.
pub struct ObjectRead {
    /// Its record (metadata, computed SHA-256, size).
    pub record: ObjectRecord,
    /// The range being served; `None` for the whole object.
    pub range: Option<ByteRange>,
    /// Bytes `body` will yield.
    pub len: u64,
    /// The bytes.
    pub body: ObjectStream,
    /// For a range: the [`mictlanx::blocks::HEADER`] value listing the sums of the blocks
    /// the range covers (absent past [`MAX_HEADER_BLOCKS`]).
    pub block_header: Option<String>,
}

impl std::fmt::Debug for ObjectRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectRead")
            .field("record", &self.record)
            .field("range", &self.range)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

struct Opened {
    record: ObjectRecord,
    body: OpenedBody,
    range: Option<ByteRange>,
    verified: bool,
    block_header: Option<String>,
}

/// Where the bytes to send are.
enum OpenedBody {
    /// An open file positioned at the first byte to send.
    File(File),
    /// A small object or span read whole (and verified).
    Memory(Bytes),
    /// A file read and checked block by block.
    Blocks(Box<BlockStream>),
}

impl Store {
    /// Opens `bucket_id@key` for reading, whole or one range.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`], [`StoreError::Pending`] (no bytes yet),
    /// [`StoreError::Disabled`], [`StoreError::RangeNotSatisfiable`],
    /// [`StoreError::Corrupt`] (the object was quarantined), or an internal error.
    pub async fn read(
        &self,
        bucket_id: &str,
        key: &str,
        range: Option<RangeSpec>,
    ) -> Result<ObjectRead, StoreError> {
        let (b, k) = (bucket_id.to_string(), key.to_string());
        let opened = self
            .blocking(move |s| s.open_for_read(&b, &k, range))
            .await?;
        let len = opened.range.map_or(opened.record.stored_size, |r| r.len());
        let body: ObjectStream = match opened.body {
            OpenedBody::Memory(bytes) => Box::pin(futures::stream::once(async move { Ok(bytes) })),
            OpenedBody::File(file) => {
                // The file is already positioned at the first byte to send.
                let check = (opened.range.is_none() && !opened.verified).then(|| StreamCheck {
                    store: self.clone(),
                    hasher: Sha256Stream::new(),
                    record: opened.record.clone(),
                });
                let file = tokio::fs::File::from_std(file).take(len);
                read_stream(file, len, check)
            }
            OpenedBody::Blocks(blocks) => blocks.into_stream(),
        };
        Ok(ObjectRead {
            record: opened.record,
            range: opened.range,
            len,
            body,
            block_header: opened.block_header,
        })
    }

    fn open_for_read(
        &self,
        bucket_id: &str,
        key: &str,
        range: Option<RangeSpec>,
    ) -> Result<Opened, StoreError> {
        let db_key = object_key(bucket_id, key);
        let not_found = || StoreError::NotFound {
            bucket_id: bucket_id.to_string(),
            key: key.to_string(),
        };
        let corrupt = || StoreError::Corrupt {
            bucket_id: bucket_id.to_string(),
            key: key.to_string(),
        };
        let mut attempt = 0;
        let (record, mut file) = loop {
            attempt += 1;
            let txn = self.db().begin_read()?;
            let record = match key_state_in(&txn, &db_key)? {
                KeyState::Committed(r) => r,
                KeyState::Pending(_) => {
                    return Err(StoreError::Pending {
                        bucket_id: bucket_id.to_string(),
                        key: key.to_string(),
                    })
                }
                KeyState::Deleted(t) => {
                    return Err(StoreError::Deleted {
                        bucket_id: bucket_id.to_string(),
                        key: key.to_string(),
                        version: t.version,
                    })
                }
                KeyState::Absent => return Err(not_found()),
            };
            if record.metadata.is_disabled {
                return Err(StoreError::Disabled {
                    bucket_id: bucket_id.to_string(),
                    key: key.to_string(),
                });
            }
            if record.inline {
                // Read in the same transaction as the record, so they always match.
                let bytes = txn
                    .open_table(INLINE)?
                    .get(db_key.as_str())?
                    .map(|g| Bytes::copy_from_slice(g.value()));
                drop(txn);
                return self.open_inline(bucket_id, key, record, bytes, range);
            }
            drop(txn);
            match File::open(self.files().object_path(&record.file)) {
                Ok(f) => break (record, f),
                // An overwrite may have committed and removed this version since the lookup:
                // look again before calling it lost.
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempt < OPEN_ATTEMPTS => {
                    continue
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.quarantine_blocking(bucket_id, key, &record.file)?;
                    return Err(corrupt());
                }
                Err(e) => {
                    return Err(StoreError::Io {
                        context: "opening an object",
                        source: e,
                    })
                }
            }
        };
        let on_disk = file
            .metadata()
            .map_err(StoreError::io("inspecting an object"))?
            .len();
        if on_disk != record.stored_size {
            self.quarantine_blocking(bucket_id, key, &record.file)?;
            return Err(corrupt());
        }
        let size = record.stored_size;
        let range = resolve_range(range, size)?;
        let sums = match record.block_sums() {
            Some(sums) => sums,
            // Stored before block sums existed: a range is served only once the whole file
            // has checked out (which yields its sums too).
            None if range.is_some() => {
                let (sha256, sums) = hash_file(&mut file)?;
                if sha256 != record.sha256 {
                    self.quarantine_blocking(bucket_id, key, &record.file)?;
                    return Err(corrupt());
                }
                sums
            }
            None => return self.open_unsummed(bucket_id, key, record, file),
        };
        let (start, end) = range.map_or((0, size), |r| (r.start, r.end + 1));
        let span = BlockSpan::covering(start, end, size);
        let block_header = range
            .filter(|_| span.blocks() <= MAX_HEADER_BLOCKS)
            .map(|_| sums.header_value(span.first_block(), span.blocks()));
        let check = BlockCheck::new(self.clone(), record.clone(), sums);
        // Spans that fit the limit are checked before the answer starts, so a damaged copy
        // is refused with a clean error (and the router tries another); longer ones are
        // checked block by block as they stream.
        let body = if span.len() <= SMALL_OBJECT.min(self.config().verify_before_send_limit) {
            let bytes = check.read_verified(&mut file, span)?;
            OpenedBody::Memory(bytes.slice(span.offset_of(start)..span.offset_of(end)))
        } else {
            if span.len() <= self.config().verify_before_send_limit {
                check.verify(&mut file, span)?;
            }
            OpenedBody::Blocks(Box::new(BlockStream::new(check, file, span, start, end)?))
        };
        Ok(Opened {
            record,
            body,
            range,
            verified: true,
            block_header,
        })
    }

    /// A whole read of a file stored before block sums existed: checked against its SHA-256
    /// before it is sent when it fits `verify_before_send_limit`, else while it streams.
    fn open_unsummed(
        &self,
        bucket_id: &str,
        key: &str,
        record: ObjectRecord,
        mut file: File,
    ) -> Result<Opened, StoreError> {
        let corrupt = || StoreError::Corrupt {
            bucket_id: bucket_id.to_string(),
            key: key.to_string(),
        };
        let size = record.stored_size;
        let mut verified = false;
        if size <= SMALL_OBJECT.min(self.config().verify_before_send_limit) {
            let bytes = read_whole(&mut file, size)?;
            if bytes.len() as u64 != size || sha256_hex(&bytes) != record.sha256 {
                self.quarantine_blocking(bucket_id, key, &record.file)?;
                return Err(corrupt());
            }
            return Ok(Opened {
                record,
                body: OpenedBody::Memory(bytes),
                range: None,
                verified: true,
                block_header: None,
            });
        }
        if size <= self.config().verify_before_send_limit {
            if hash_file(&mut file)?.0 != record.sha256 {
                self.quarantine_blocking(bucket_id, key, &record.file)?;
                return Err(corrupt());
            }
            seek(&mut file, 0)?;
            verified = true;
        }
        Ok(Opened {
            record,
            body: OpenedBody::File(file),
            range: None,
            verified,
            block_header: None,
        })
    }
}

impl Store {
    /// An inline object's bytes, verified (whole) and cut to the range. A missing or wrong
    /// entry drops the record (the bytes are unusable) and is [`StoreError::Corrupt`].
    fn open_inline(
        &self,
        bucket_id: &str,
        key: &str,
        record: ObjectRecord,
        bytes: Option<Bytes>,
        range: Option<RangeSpec>,
    ) -> Result<Opened, StoreError> {
        let intact = bytes
            .filter(|b| b.len() as u64 == record.stored_size && sha256_hex(b) == record.sha256);
        let Some(bytes) = intact else {
            self.drop_corrupt_inline_blocking(bucket_id, key, &record)?;
            return Err(StoreError::Corrupt {
                bucket_id: bucket_id.to_string(),
                key: key.to_string(),
            });
        };
        let size = record.stored_size;
        let range = resolve_range(range, size)?;
        // The bytes were just checked whole, so their block sums can be computed here.
        let block_header = range.map(|r| {
            let span = BlockSpan::covering(r.start, r.end + 1, size);
            BlockSums::of(&bytes).header_value(span.first_block(), span.blocks())
        });
        let body = match range {
            // The range (end inclusive) lies within `size`, which is the buffer's length.
            Some(r) => match (usize::try_from(r.start), usize::try_from(r.end)) {
                (Ok(start), Ok(end)) if end < bytes.len() => bytes.slice(start..=end),
                _ => return Err(StoreError::RangeNotSatisfiable { size }),
            },
            None => bytes,
        };
        Ok(Opened {
            record,
            body: OpenedBody::Memory(body),
            range,
            verified: true,
            block_header,
        })
    }
}

/// The byte range `range` asks for in an object of `size` bytes (`None`: the whole object).
fn resolve_range(range: Option<RangeSpec>, size: u64) -> Result<Option<ByteRange>, StoreError> {
    range
        .map(|spec| {
            spec.resolve(size)
                .ok_or(StoreError::RangeNotSatisfiable { size })
        })
        .transpose()
}

/// The whole of a small `file` of `size` bytes (fewer if it is shorter). Blocking.
fn read_whole(file: &mut File, size: u64) -> Result<Bytes, StoreError> {
    // No zeroing: `read_to_end` fills spare capacity. One byte more than expected shows a
    // file that grew.
    let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0).saturating_add(1));
    file.take(size.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(StoreError::io("reading an object"))?;
    Ok(Bytes::from(buf))
}

/// SHA-256 and block sums of the rest of `file`, read with a fixed buffer. Blocking.
fn hash_file(file: &mut File) -> Result<(String, BlockSums), StoreError> {
    let mut hasher = Sha256Stream::new();
    let mut blocks = BlockSummer::new();
    let mut buf = vec![0u8; FILE_BUFFER_SIZE];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(StoreError::io("verifying an object"))?;
        if n == 0 {
            return Ok((hasher.finalize_hex(), blocks.finish()));
        }
        hasher.update(&buf[..n]);
        blocks.update(&buf[..n]);
    }
}

/// Verification of a whole read while it streams.
struct StreamCheck {
    store: Store,
    hasher: Sha256Stream,
    record: ObjectRecord,
}

impl StreamCheck {
    /// Quarantines the object (on the blocking pool) and returns the error that ends the
    /// stream.
    async fn fail(self, what: &str) -> io::Error {
        let StreamCheck { store, record, .. } = self;
        let meta = &record.metadata;
        let (b, k, f) = (
            meta.bucket_id.clone(),
            meta.key.clone(),
            record.file.clone(),
        );
        let outcome =
            tokio::task::spawn_blocking(move || store.quarantine_blocking(&b, &k, &f)).await;
        if let Ok(Err(e)) = outcome {
            tracing::error!(event = "QUARANTINE.FAILED", error = %e);
        }
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "stored bytes of {}@{} are corrupt ({what})",
                meta.bucket_id, meta.key
            ),
        )
    }
}

struct ReadState<R> {
    file: R,
    remaining: u64,
    check: Option<StreamCheck>,
    done: bool,
}

fn read_stream<R>(file: R, len: u64, check: Option<StreamCheck>) -> ObjectStream
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let state = ReadState {
        file,
        remaining: len,
        check,
        done: false,
    };
    Box::pin(futures::stream::unfold(state, |mut st| async move {
        if st.done || st.remaining == 0 {
            return None;
        }
        let want = usize::try_from(st.remaining).map_or(READ_CHUNK, |r| r.min(READ_CHUNK));
        let mut buf = BytesMut::with_capacity(want);
        match st.file.read_buf(&mut buf).await {
            Ok(0) => {
                st.done = true;
                let err = match st.check.take() {
                    Some(check) => check.fail("file shorter than recorded").await,
                    None => io::Error::new(io::ErrorKind::UnexpectedEof, "object file truncated"),
                };
                Some((Err(err), st))
            }
            Ok(n) => {
                st.remaining = st.remaining.saturating_sub(n as u64);
                let bytes = buf.freeze();
                if let Some(check) = st.check.as_mut() {
                    check.hasher.update(&bytes);
                }
                if st.remaining == 0 {
                    st.done = true;
                    // The last piece is held back until the hash is known: with a
                    // Content-Length response, HTTP considers the body complete once its
                    // last byte is sent, so an error after it would never reach the client.
                    if let Some(mut check) = st.check.take() {
                        let sum = std::mem::take(&mut check.hasher).finalize_hex();
                        if sum != check.record.sha256 {
                            let err = check.fail("hash mismatch").await;
                            return Some((Err(err), st));
                        }
                    }
                }
                Some((Ok(bytes), st))
            }
            Err(e) => {
                st.done = true;
                Some((Err(e), st))
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{KeyState, Store};
    use super::*;
    use futures::StreamExt;

    fn flip_a_byte(dir: &std::path::Path) {
        let files = files_under(&dir.join("objects"));
        assert_eq!(files.len(), 1);
        let mut bytes = std::fs::read(&files[0]).unwrap();
        bytes[0] ^= 0xff;
        std::fs::write(&files[0], bytes).unwrap();
    }

    fn quarantined(dir: &std::path::Path) -> usize {
        files_under(&dir.join("objects"))
            .iter()
            .filter(|p| p.to_string_lossy().ends_with(".corrupted"))
            .count()
    }

    #[tokio::test]
    async fn corruption_is_detected_before_sending_small_objects() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        put_object(&store, "b", "k", b"precious bytes").await;
        flip_a_byte(dir.path());
        let err = store.read("b", "k", None).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }));
        assert_eq!(err.to_string(), "stored bytes of b@k are corrupt");
        assert_eq!(quarantined(dir.path()), 1);
        assert_eq!(store.key_state("b", "k").await.unwrap(), KeyState::Absent);
        assert_eq!(store.usage().objects, 0);
        assert_eq!(store.usage().committed_bytes, 0);
    }

    #[tokio::test]
    async fn corruption_cuts_the_stream_of_large_objects() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        cfg.verify_before_send_limit = 0;
        let store = Store::open(cfg).await.unwrap();
        let data = vec![7u8; 600_000];
        put_object(&store, "b", "k", &data).await;

        // Intact: streams to a clean end.
        assert_eq!(read_all(&store, "b", "k").await.unwrap(), data);

        flip_a_byte(dir.path());
        let read = store.read("b", "k", None).await.unwrap();
        let items: Vec<io::Result<Bytes>> = read.body.collect().await;
        let last = items.last().unwrap();
        assert!(last.is_err(), "a corrupt stream must not end cleanly");
        let sent: usize = items
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .map(Bytes::len)
            .sum();
        assert!(sent < data.len(), "the last piece must be withheld");
        assert_eq!(quarantined(dir.path()), 1);
        assert_eq!(store.key_state("b", "k").await.unwrap(), KeyState::Absent);
    }

    #[tokio::test]
    async fn truncated_file_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        put_object(&store, "b", "k", b"0123456789").await;
        let f = files_under(&dir.path().join("objects")).remove(0);
        std::fs::write(&f, b"01234").unwrap();
        let err = store
            .read("b", "k", Some(RangeSpec::From(0)))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }));
        assert_eq!(quarantined(dir.path()), 1);
    }

    #[tokio::test]
    async fn ranges_are_served_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        put_object(&store, "b", "k", b"0123456789").await;
        let read = store
            .read("b", "k", Some(RangeSpec::FromTo(2, 4)))
            .await
            .unwrap();
        assert_eq!(
            (read.len, read.range.map(|r| (r.start, r.end))),
            (3, Some((2, 4)))
        );
        let bytes: Vec<u8> = read
            .body
            .map(|r| r.unwrap())
            .collect::<Vec<_>>()
            .await
            .concat();
        assert_eq!(bytes, b"234");
        let read = store
            .read("b", "k", Some(RangeSpec::Suffix(3)))
            .await
            .unwrap();
        let bytes: Vec<u8> = read
            .body
            .map(|r| r.unwrap())
            .collect::<Vec<_>>()
            .await
            .concat();
        assert_eq!(bytes, b"789");
        let err = store
            .read("b", "k", Some(RangeSpec::From(10)))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::RangeNotSatisfiable { size: 10 }));
    }

    const BLOCK: usize = mictlanx::blocks::BLOCK_SIZE as usize;

    /// A store with room for a few MiB, and `limit` as its verify-before-send limit.
    async fn roomy(dir: &std::path::Path, limit: u64) -> Store {
        let mut cfg = config(dir);
        cfg.capacity = 64 << 20;
        cfg.verify_before_send_limit = limit;
        Store::open(cfg).await.unwrap()
    }

    fn patterned(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    /// Flips the byte at `at` of the only data file.
    fn damage_at(dir: &std::path::Path, at: usize) {
        let files = files_under(&dir.join("objects"));
        let mut bytes = std::fs::read(&files[0]).unwrap();
        bytes[at] ^= 0x01;
        std::fs::write(&files[0], bytes).unwrap();
    }

    async fn collect(read: ObjectRead) -> (Vec<u8>, bool) {
        let items: Vec<io::Result<Bytes>> = read.body.collect().await;
        let failed = items.iter().any(Result::is_err);
        let bytes = items.into_iter().filter_map(Result::ok).collect::<Vec<_>>();
        (bytes.concat(), failed)
    }

    #[tokio::test]
    async fn a_range_touching_a_damaged_block_is_refused_and_quarantined() {
        let dir = tempfile::tempdir().unwrap();
        let store = roomy(dir.path(), 1 << 20).await;
        let data = patterned(6 * BLOCK + 123);
        put_object(&store, "b", "k", &data).await;
        damage_at(dir.path(), 3 * BLOCK + 77);

        // Bytes away from the damage are right, and come with their blocks' sums.
        let spec = RangeSpec::FromTo(BLOCK as u64 + 10, 2 * BLOCK as u64 + 20);
        let read = store.read("b", "k", Some(spec)).await.unwrap();
        let header: mictlanx::blocks::BlockHeader =
            read.block_header.as_deref().unwrap().parse().unwrap();
        assert_eq!((header.first, header.sums.len()), (1, 2));
        let (bytes, failed) = collect(read).await;
        assert!(!failed);
        assert_eq!(bytes, &data[BLOCK + 10..=2 * BLOCK + 20]);

        // A range that ends inside the damaged block: refused before any byte.
        let spec = RangeSpec::FromTo(2 * BLOCK as u64, 3 * BLOCK as u64);
        let err = store.read("b", "k", Some(spec)).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert_eq!(quarantined(dir.path()), 1);
        assert_eq!(store.key_state("b", "k").await.unwrap(), KeyState::Absent);
    }

    #[tokio::test]
    async fn a_long_read_stops_before_the_damaged_block() {
        let dir = tempfile::tempdir().unwrap();
        // Nothing checked up front: every block is checked as it streams.
        let store = roomy(dir.path(), 0).await;
        let data = patterned(9 * BLOCK + 5);
        put_object(&store, "b", "k", &data).await;
        assert_eq!(read_all(&store, "b", "k").await.unwrap(), data);

        damage_at(dir.path(), 5 * BLOCK + 1);
        for spec in [None, Some(RangeSpec::From(10))] {
            let read = store.read("b", "k", spec).await;
            let Ok(read) = read else {
                // The first read quarantined it.
                assert!(matches!(read, Err(StoreError::NotFound { .. })));
                continue;
            };
            let start = if spec.is_some() { 10 } else { 0 };
            let (sent, failed) = collect(read).await;
            assert!(failed, "a damaged stream must not end cleanly");
            // Only the blocks before the damaged one's piece went out, all of them right.
            assert_eq!(sent, &data[start..4 * BLOCK]);
        }
        assert_eq!(quarantined(dir.path()), 1);
    }

    #[tokio::test]
    async fn a_range_of_a_file_without_block_sums_is_checked_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = roomy(dir.path(), 1 << 20).await;
        let data = patterned(3 * BLOCK);
        put_object(&store, "b", "k", &data).await;
        // As stored before block sums existed.
        store
            .write(|txn, _| {
                let mut objects = txn.open_table(super::super::meta::OBJECTS)?;
                let db_key = object_key("b", "k");
                let mut rec = super::super::meta::get_object(&objects, &db_key)?.unwrap();
                rec.block_crc32c.clear();
                let bytes = super::super::meta::encode(&db_key, &rec)?;
                objects.insert(db_key.as_str(), bytes.as_slice())?;
                Ok(())
            })
            .unwrap();
        let spec = Some(RangeSpec::FromTo(5, 9));
        let read = store.read("b", "k", spec).await.unwrap();
        assert!(read.block_header.is_some());
        assert_eq!(collect(read).await, (data[5..=9].to_vec(), false));

        // Damage far from the range still refuses it: only the whole file vouches for it.
        damage_at(dir.path(), 2 * BLOCK + 3);
        let err = store.read("b", "k", spec).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    }

    #[tokio::test]
    async fn ranges_of_inline_objects_carry_block_sums() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        cfg.inline_limit = 1024;
        let store = Store::open(cfg).await.unwrap();
        put_object(&store, "b", "k", b"0123456789").await;
        let read = store
            .read("b", "k", Some(RangeSpec::FromTo(0, 9)))
            .await
            .unwrap();
        let header: mictlanx::blocks::BlockHeader =
            read.block_header.as_deref().unwrap().parse().unwrap();
        assert!(header.verifies(0, b"0123456789", 10));
    }

    #[tokio::test]
    async fn missing_and_pending_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        let err = store.read("b", "k", None).await.unwrap_err();
        assert_eq!(err.to_string(), "b@k not found");
        store
            .put_metadata(put(metadata("b", "k", b"x")))
            .await
            .unwrap();
        let err = store.read("b", "k", None).await.unwrap_err();
        assert_eq!(err.to_string(), "b@k has no data yet (upload pending)");
    }
}
