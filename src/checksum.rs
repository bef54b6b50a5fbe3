//! SHA-256 checksums: one-shot, streaming, per chunk and per ball.
//!
//! MictlanX identifies content by lowercase hex SHA-256: every chunk carries the checksum of
//! its own bytes and the `full_checksum` tag holds the checksum of the whole ball (the
//! concatenation of its chunks). [`BallHasher`] computes both in a single pass over the data,
//! whatever the boundaries of the slices it is fed; [`digest_file`] and [`sha256_file`] do so
//! for files on the blocking thread pool with a fixed 1 MiB buffer, so memory never grows with
//! the file and async worker threads never hash.
//!
//! Hashing uses the `sha2` crate, which detects the CPU's SHA extensions (x86 SHA-NI, ARMv8
//! SHA2) at run time through `cpufeatures` and falls back to portable code elsewhere; no build
//! flag is needed.
//!
//! ```
//! use mictlanx::checksum::{sha256_hex, verify};
//!
//! let sum = sha256_hex(b"abc");
//! assert_eq!(
//!     sum,
//!     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
//! );
//! verify(&sum.to_uppercase(), b"abc")?;
//! # Ok::<(), mictlanx::checksum::ChecksumError>(())
//! ```

use std::fmt;
use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::chunking::{ChunkPlan, ChunkingError};

/// Size of the read buffer used by [`digest_file`] and [`sha256_file`]: 1 MiB.
pub const FILE_BUFFER_SIZE: usize = 1 << 20;

/// Why a checksum check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChecksumError {
    /// The data's SHA-256 is not the expected one.
    #[error("checksum mismatch: expected {expected}, got {actual}")]
    Mismatch {
        /// The checksum that was expected, as given.
        expected: String,
        /// The SHA-256 (lowercase hex) of the data.
        actual: String,
    },
    /// A [`BallHasher`] was fed a different number of bytes than its plan holds.
    #[error("length mismatch: expected {expected} bytes, got {actual}")]
    LengthMismatch {
        /// The plan's total length.
        expected: u64,
        /// The number of bytes fed.
        actual: u64,
    },
}

/// Lowercase hex SHA-256 of `data`.
///
/// ```
/// assert_eq!(
///     mictlanx::checksum::sha256_hex(b""),
///     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
/// );
/// ```
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Whether `s` looks like a SHA-256 in hex: exactly 64 hex digits, either case.
///
/// Other MictlanX clients may declare checksums that are mere labels (such as `"abc"`);
/// those are kept as given and cannot be verified.
///
/// ```
/// use mictlanx::checksum::{is_sha256_hex, sha256_hex};
///
/// assert!(is_sha256_hex(&sha256_hex(b"x")));
/// assert!(is_sha256_hex(&sha256_hex(b"x").to_uppercase()));
/// assert!(!is_sha256_hex("abc"));
/// ```
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Checks that the SHA-256 of `data` is `expected_hex`, ignoring ASCII case.
///
/// # Errors
///
/// [`ChecksumError::Mismatch`] if it is not (including when `expected_hex` is not a SHA-256
/// at all).
///
/// ```
/// use mictlanx::checksum::{verify, ChecksumError};
///
/// let sum = "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD";
/// verify(sum, b"abc")?;
/// assert!(matches!(verify(sum, b"abd"), Err(ChecksumError::Mismatch { .. })));
/// # Ok::<(), ChecksumError>(())
/// ```
pub fn verify(expected_hex: &str, data: &[u8]) -> Result<(), ChecksumError> {
    let actual = sha256_hex(data);
    if actual.eq_ignore_ascii_case(expected_hex) {
        Ok(())
    } else {
        Err(ChecksumError::Mismatch {
            expected: expected_hex.to_owned(),
            actual,
        })
    }
}

fn len_u64(data: &[u8]) -> u64 {
    u64::try_from(data.len()).unwrap_or(u64::MAX)
}

/// Incremental SHA-256 over data that arrives in pieces.
///
/// ```
/// use mictlanx::checksum::{sha256_hex, Sha256Stream};
///
/// let mut stream = Sha256Stream::new();
/// stream.update(b"ab");
/// stream.update(b"c");
/// assert_eq!(stream.bytes_hashed(), 3);
/// assert_eq!(stream.finalize_hex(), sha256_hex(b"abc"));
/// ```
#[derive(Clone, Default)]
pub struct Sha256Stream {
    hasher: Sha256,
    bytes_hashed: u64,
}

impl fmt::Debug for Sha256Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sha256Stream")
            .field("bytes_hashed", &self.bytes_hashed)
            .finish_non_exhaustive()
    }
}

impl Sha256Stream {
    /// A stream that has hashed nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds `data` to the hash.
    pub fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
        self.bytes_hashed = self.bytes_hashed.saturating_add(len_u64(data));
    }

    /// Number of bytes fed so far.
    pub fn bytes_hashed(&self) -> u64 {
        self.bytes_hashed
    }

    /// Lowercase hex SHA-256 of everything fed.
    pub fn finalize_hex(self) -> String {
        hex::encode(self.hasher.finalize())
    }
}

/// Checksums of a whole ball, from [`BallHasher::finish`] or [`digest_file`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BallDigest {
    /// Lowercase hex SHA-256 of the whole ball (the `full_checksum` tag).
    pub full_checksum: String,
    /// Lowercase hex SHA-256 of each chunk, by chunk index (`num_chunks` entries).
    pub chunk_checksums: Vec<String>,
    /// Number of bytes in the ball.
    pub total_len: u64,
}

/// Hashes a ball chunk by chunk and as a whole in one pass.
///
/// Feed the ball's bytes in order with [`update`](Self::update), in slices of any size; the
/// hasher splits them at the chunk boundaries of its [`ChunkPlan`]. Memory is constant
/// except for the finished chunk checksums (64 bytes of hex each).
///
/// ```
/// use mictlanx::checksum::{sha256_hex, BallHasher};
/// use mictlanx::chunking::ChunkPlan;
///
/// let data = b"hello world";
/// let mut hasher = BallHasher::new(ChunkPlan::file(data.len() as u64, 5)?);
/// hasher.update(&data[..3]);
/// hasher.update(&data[3..]);
/// let digest = hasher.finish()?;
/// assert_eq!(digest.full_checksum, sha256_hex(data));
/// assert_eq!(
///     digest.chunk_checksums,
///     [sha256_hex(b"hello"), sha256_hex(b" worl"), sha256_hex(b"d")]
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct BallHasher {
    full: Sha256Stream,
    chunks: ChunkHashes,
}

/// The per-chunk half of a [`BallHasher`]: splits what it is fed at the chunk boundaries of
/// its plan and hashes each chunk.
#[derive(Debug, Clone)]
struct ChunkHashes {
    plan: ChunkPlan,
    chunk: Sha256Stream,
    /// Index of the chunk being hashed; `plan.num_chunks()` once all are done.
    chunk_index: u64,
    /// Bytes still missing from the chunk being hashed.
    chunk_remaining: u64,
    chunk_checksums: Vec<String>,
}

impl ChunkHashes {
    fn new(plan: ChunkPlan) -> Self {
        let chunk_remaining = plan.chunk(0).map_or(0, |c| c.len);
        Self {
            plan,
            chunk: Sha256Stream::new(),
            chunk_index: 0,
            chunk_remaining,
            chunk_checksums: Vec::new(),
        }
    }

    fn update(&mut self, data: &[u8]) {
        let mut rest = data;
        while !rest.is_empty() && self.chunk_index < self.plan.num_chunks() {
            let take = usize::try_from(self.chunk_remaining)
                .unwrap_or(usize::MAX)
                .min(rest.len());
            let (head, tail) = rest.split_at(take);
            self.chunk.update(head);
            self.chunk_remaining = self.chunk_remaining.saturating_sub(len_u64(head));
            rest = tail;
            if self.chunk_remaining == 0 {
                self.close_chunk();
            }
        }
    }

    /// Records the current chunk's checksum and moves to the next chunk.
    fn close_chunk(&mut self) {
        let done = std::mem::take(&mut self.chunk);
        self.chunk_checksums.push(done.finalize_hex());
        self.chunk_index = self.chunk_index.saturating_add(1);
        self.chunk_remaining = self.plan.chunk(self.chunk_index).map_or(0, |c| c.len);
    }

    /// The checksums of every chunk, once all bytes were fed.
    fn finish(mut self) -> Vec<String> {
        // With every byte fed, only zero-length chunks (the single chunk of an empty ball)
        // can still be open.
        while self.chunk_index < self.plan.num_chunks() && self.chunk_remaining == 0 {
            self.close_chunk();
        }
        self.chunk_checksums
    }
}

impl BallHasher {
    /// A hasher for a ball laid out by `plan`.
    pub fn new(plan: ChunkPlan) -> Self {
        Self {
            full: Sha256Stream::new(),
            chunks: ChunkHashes::new(plan),
        }
    }

    /// The plan this hasher follows.
    pub fn plan(&self) -> &ChunkPlan {
        &self.chunks.plan
    }

    /// Number of bytes fed so far.
    pub fn bytes_fed(&self) -> u64 {
        self.full.bytes_hashed()
    }

    /// Checksums of the chunks completed so far, by index.
    pub fn completed_chunk_checksums(&self) -> &[String] {
        &self.chunks.chunk_checksums
    }

    /// Feeds the next bytes of the ball. Slices may start and end anywhere; bytes beyond the
    /// plan's total length are counted (and make [`finish`](Self::finish) fail) but belong to
    /// no chunk.
    pub fn update(&mut self, data: &[u8]) {
        self.full.update(data);
        self.chunks.update(data);
    }

    /// Finishes hashing.
    ///
    /// # Errors
    ///
    /// [`ChecksumError::LengthMismatch`] if the number of bytes fed differs from the plan's
    /// total length.
    pub fn finish(self) -> Result<BallDigest, ChecksumError> {
        digest_of(self.chunks.plan.total_len(), self.full, self.chunks)
    }
}

/// The digest from the two halves of a ball's hashing, after checking the length.
fn digest_of(
    expected: u64,
    full: Sha256Stream,
    chunks: ChunkHashes,
) -> Result<BallDigest, ChecksumError> {
    let actual = full.bytes_hashed();
    if expected != actual {
        return Err(ChecksumError::LengthMismatch { expected, actual });
    }
    Ok(BallDigest {
        full_checksum: full.finalize_hex(),
        chunk_checksums: chunks.finish(),
        total_len: actual,
    })
}

/// Balls from this size on are hashed on two threads: the whole-ball hash on one, the chunk
/// hashes on the other, which halves the wait on a machine with a core to spare. Below it,
/// starting a thread costs more than it saves.
pub const PARALLEL_DIGEST_MIN: u64 = 8 << 20;

/// [`BallHasher`]'s digest of an in-memory ball, on two threads when it is at least
/// [`PARALLEL_DIGEST_MIN`] bytes. Blocking: call it off the async threads for large inputs.
///
/// # Errors
///
/// [`ChecksumError::LengthMismatch`] if `data` is not as long as the plan says.
///
/// ```
/// use mictlanx::checksum::{digest_bytes, sha256_hex};
/// use mictlanx::chunking::ChunkPlan;
///
/// let digest = digest_bytes(ChunkPlan::file(11, 5)?, b"hello world")?;
/// assert_eq!(digest.full_checksum, sha256_hex(b"hello world"));
/// assert_eq!(digest.chunk_checksums[1], sha256_hex(b" worl"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn digest_bytes(plan: ChunkPlan, data: &[u8]) -> Result<BallDigest, ChecksumError> {
    if len_u64(data) < PARALLEL_DIGEST_MIN {
        let mut hasher = BallHasher::new(plan);
        hasher.update(data);
        return hasher.finish();
    }
    let (full, chunks) = std::thread::scope(|scope| {
        let helper = scope.spawn(|| {
            let mut chunks = ChunkHashes::new(plan);
            chunks.update(data);
            chunks
        });
        let mut full = Sha256Stream::new();
        full.update(data);
        // A panic in the helper is a bug in this module; hash its half here instead.
        let chunks = helper.join().unwrap_or_else(|_| {
            let mut chunks = ChunkHashes::new(plan);
            chunks.update(data);
            chunks
        });
        (full, chunks)
    });
    digest_of(plan.total_len(), full, chunks)
}

/// Pieces of a file in flight between the reader and the chunk-hashing thread of
/// [`digest_reader`]: bounds its memory to this many [`FILE_BUFFER_SIZE`] buffers.
const PARALLEL_PIECES: usize = 4;

/// [`BallHasher`]'s digest of everything `reader` yields (at most `limit` bytes), on two
/// threads for plans of at least [`PARALLEL_DIGEST_MIN`] bytes: this thread reads and
/// computes the whole-ball hash, a helper hashes the chunks of the same buffers.
fn digest_reader(reader: impl Read, plan: ChunkPlan, limit: u64) -> io::Result<BallDigest> {
    let invalid = |e: ChecksumError| io::Error::new(io::ErrorKind::InvalidData, e);
    let reader = reader.take(limit);
    if plan.total_len() < PARALLEL_DIGEST_MIN {
        let mut hasher = BallHasher::new(plan);
        pump(reader, |piece| hasher.update(piece))?;
        return hasher.finish().map_err(invalid);
    }
    let (full, chunks) = std::thread::scope(|scope| -> io::Result<_> {
        use std::sync::mpsc::sync_channel;
        let (to_helper, pieces) = sync_channel::<(Vec<u8>, usize)>(PARALLEL_PIECES);
        let (recycle, spare) = sync_channel::<Vec<u8>>(PARALLEL_PIECES + 1);
        let helper = scope.spawn(move || {
            let mut chunks = ChunkHashes::new(plan);
            for (buf, n) in pieces {
                chunks.update(buf.get(..n).unwrap_or(&buf));
                // The reader may have stopped; then the buffer is simply dropped.
                let _ = recycle.try_send(buf);
            }
            chunks
        });
        let mut full = Sha256Stream::new();
        let mut reader = reader;
        let read = loop {
            let mut buf = spare
                .try_recv()
                .unwrap_or_else(|_| vec![0u8; FILE_BUFFER_SIZE]);
            let n = match reader.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(e),
            };
            full.update(buf.get(..n).unwrap_or(&buf));
            if to_helper.send((buf, n)).is_err() {
                break Err(io::Error::other("the chunk-hashing thread stopped"));
            }
        };
        drop(to_helper);
        let chunks = helper
            .join()
            .map_err(|_| io::Error::other("the chunk-hashing thread panicked"))?;
        read.map(|()| (full, chunks))
    })?;
    digest_of(plan.total_len(), full, chunks).map_err(invalid)
}

/// Reads `reader` to its end through a fixed buffer, passing every piece to `sink`.
fn pump(mut reader: impl Read, mut sink: impl FnMut(&[u8])) -> io::Result<()> {
    let mut buf = vec![0u8; FILE_BUFFER_SIZE];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => sink(buf.get(..n).unwrap_or(&buf)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Hashes a file chunk by chunk and as a whole.
///
/// Opens the file, reads its length, asks `plan_for(len)` for the chunk plan, then streams
/// the file through a [`BallHasher`] on tokio's blocking thread pool with a 1 MiB buffer
/// ([`FILE_BUFFER_SIZE`]); from [`PARALLEL_DIGEST_MIN`] bytes on, the chunk hashes run on a
/// second thread fed the same buffers (at most a few in flight). Memory does not depend on
/// the file's size (apart from the list of chunk checksums).
///
/// # Errors
///
/// * the I/O error if the file cannot be opened or read;
/// * [`io::ErrorKind::InvalidInput`] wrapping the [`ChunkingError`] if `plan_for` fails;
/// * [`io::ErrorKind::InvalidData`] wrapping [`ChecksumError::LengthMismatch`] if the file
///   changed size while it was read (at most one byte past the planned length is read).
///
/// ```
/// use mictlanx::checksum::{digest_file, sha256_hex};
/// use mictlanx::chunking::ChunkPlan;
///
/// # #[tokio::main] async fn main() -> std::io::Result<()> {
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("ball.bin");
/// std::fs::write(&path, b"hello world")?;
///
/// let digest = digest_file(&path, |len| ChunkPlan::file(len, 5)).await?;
/// assert_eq!(digest.total_len, 11);
/// assert_eq!(digest.full_checksum, sha256_hex(b"hello world"));
/// assert_eq!(digest.chunk_checksums.len(), 3);
/// # Ok(())
/// # }
/// ```
pub async fn digest_file(
    path: impl AsRef<Path>,
    plan_for: impl FnOnce(u64) -> Result<ChunkPlan, ChunkingError>,
) -> io::Result<BallDigest> {
    let file = tokio::fs::File::open(path.as_ref()).await?;
    let len = file.metadata().await?.len();
    let plan = plan_for(len).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let file = file.into_std().await;
    // One byte past the plan is enough to notice a file that grew.
    let limit = plan.total_len().saturating_add(1);
    crate::blocking::run_io("hashing", move || digest_reader(file, plan, limit)).await
}

/// SHA-256 (lowercase hex) and length of a file.
///
/// Reads the file on tokio's blocking thread pool through a 1 MiB buffer
/// ([`FILE_BUFFER_SIZE`]), unlike the reference client which reads the whole file at once.
///
/// # Errors
///
/// The I/O error if the file cannot be opened or read.
///
/// ```
/// use mictlanx::checksum::{sha256_file, sha256_hex};
///
/// # #[tokio::main] async fn main() -> std::io::Result<()> {
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("data.txt");
/// std::fs::write(&path, b"abc")?;
///
/// let (sum, len) = sha256_file(&path).await?;
/// assert_eq!((sum, len), (sha256_hex(b"abc"), 3));
/// # Ok(())
/// # }
/// ```
pub async fn sha256_file(path: impl AsRef<Path>) -> io::Result<(String, u64)> {
    let path = path.as_ref().to_path_buf();
    crate::blocking::run_io("hashing", move || {
        let file = std::fs::File::open(path)?;
        let mut stream = Sha256Stream::new();
        pump(file, |piece| stream.update(piece))?;
        let len = stream.bytes_hashed();
        Ok((stream.finalize_hex(), len))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunking::ChunkRule;
    use proptest::prelude::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    /// Checksums of each chunk, computed separately from the plan.
    fn chunk_sums(plan: &ChunkPlan, data: &[u8]) -> Vec<String> {
        plan.iter()
            .map(|c| {
                let range = c.as_usize_range().expect("fits usize");
                sha256_hex(data.get(range).expect("in bounds"))
            })
            .collect()
    }

    /// Deterministic pseudo-random bytes.
    fn bytes(len: usize, seed: u32) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x.to_le_bytes()[0]
            })
            .collect()
    }

    #[test]
    fn known_vectors() {
        assert_eq!(sha256_hex(b""), EMPTY);
        assert_eq!(sha256_hex(b"abc"), ABC);
        assert_eq!(
            sha256_hex(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
        assert_eq!(Sha256Stream::new().finalize_hex(), EMPTY);
    }

    #[test]
    fn sha256_hex_shape() {
        assert!(is_sha256_hex(EMPTY));
        assert!(is_sha256_hex(&ABC.to_uppercase()));
        assert!(!is_sha256_hex(""));
        assert!(!is_sha256_hex("abc"));
        assert!(!is_sha256_hex(&EMPTY[..63]));
        assert!(!is_sha256_hex(&format!("{EMPTY}0")));
        assert!(!is_sha256_hex(&format!("{}g", &EMPTY[..63])));
        // 64 bytes but multi-byte characters.
        assert!(!is_sha256_hex(&"é".repeat(32)));
    }

    #[test]
    fn verify_is_case_insensitive() {
        assert_eq!(verify(ABC, b"abc"), Ok(()));
        assert_eq!(verify(&ABC.to_uppercase(), b"abc"), Ok(()));
        assert_eq!(
            verify(ABC, b"abd"),
            Err(ChecksumError::Mismatch {
                expected: ABC.to_owned(),
                actual: sha256_hex(b"abd"),
            })
        );
        assert!(matches!(
            verify("abc", b"abc"),
            Err(ChecksumError::Mismatch { .. })
        ));
    }

    #[test]
    fn stream_matches_one_shot() {
        let data = bytes(10_000, 7);
        let mut stream = Sha256Stream::new();
        for piece in data.chunks(333) {
            stream.update(piece);
        }
        assert_eq!(stream.bytes_hashed(), 10_000);
        let cloned = stream.clone();
        assert_eq!(stream.finalize_hex(), sha256_hex(&data));
        assert_eq!(cloned.finalize_hex(), sha256_hex(&data));
    }

    #[test]
    fn ball_hasher_in_memory_rule() {
        let data = bytes(25, 1);
        let plan = ChunkPlan::in_memory(25, 10).expect("plan");
        let mut hasher = BallHasher::new(plan);
        for b in &data {
            hasher.update(std::slice::from_ref(b));
        }
        assert_eq!(hasher.completed_chunk_checksums().len(), 2);
        let digest = hasher.finish().expect("digest");
        assert_eq!(
            digest.chunk_checksums,
            [sha256_hex(&data[..10]), sha256_hex(&data[10..])]
        );
        assert_eq!(digest.full_checksum, sha256_hex(&data));
        assert_eq!(digest.total_len, 25);
    }

    #[test]
    fn ball_hasher_empty_ball() {
        for rule in [ChunkRule::InMemory, ChunkRule::File] {
            let plan = ChunkPlan::new(0, 10, rule).expect("plan");
            let mut hasher = BallHasher::new(plan);
            hasher.update(&[]);
            let digest = hasher.finish().expect("digest");
            assert_eq!(
                digest,
                BallDigest {
                    full_checksum: EMPTY.to_owned(),
                    chunk_checksums: vec![EMPTY.to_owned()],
                    total_len: 0,
                }
            );
        }
    }

    #[test]
    fn ball_hasher_length_mismatch() {
        let plan = ChunkPlan::file(10, 4).expect("plan");
        let mut short = BallHasher::new(plan);
        short.update(b"12345");
        assert_eq!(
            short.finish(),
            Err(ChecksumError::LengthMismatch {
                expected: 10,
                actual: 5
            })
        );
        let mut long = BallHasher::new(plan);
        long.update(b"0123456789");
        long.update(b"ab");
        assert_eq!(long.bytes_fed(), 12);
        assert_eq!(
            long.finish(),
            Err(ChecksumError::LengthMismatch {
                expected: 10,
                actual: 12
            })
        );
        let empty = BallHasher::new(ChunkPlan::file(0, 4).expect("plan"));
        let mut fed = empty.clone();
        fed.update(b"x");
        assert!(empty.finish().is_ok());
        assert_eq!(
            fed.finish(),
            Err(ChecksumError::LengthMismatch {
                expected: 0,
                actual: 1
            })
        );
    }

    #[tokio::test]
    async fn digest_file_several_chunks() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("ball");
        // Larger than the buffer so reads and chunk boundaries do not line up.
        let data = bytes(FILE_BUFFER_SIZE * 2 + 12_345, 3);
        tokio::fs::write(&path, &data).await?;
        for rule in [ChunkRule::File, ChunkRule::InMemory] {
            let digest = digest_file(&path, |len| ChunkPlan::new(len, 300_007, rule)).await?;
            let plan = ChunkPlan::new(data.len() as u64, 300_007, rule).expect("plan");
            assert_eq!(digest.total_len, data.len() as u64);
            assert_eq!(digest.full_checksum, sha256_hex(&data));
            assert_eq!(digest.chunk_checksums, chunk_sums(&plan, &data));
            assert!(digest.chunk_checksums.len() > 2);
        }
        Ok(())
    }

    #[tokio::test]
    async fn digest_file_empty() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("empty");
        tokio::fs::write(&path, b"").await?;
        let digest = digest_file(&path, |len| ChunkPlan::file(len, 1024)).await?;
        assert_eq!(digest.total_len, 0);
        assert_eq!(digest.full_checksum, EMPTY);
        assert_eq!(digest.chunk_checksums, [EMPTY]);
        Ok(())
    }

    #[tokio::test]
    async fn digest_file_errors() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("ball");
        tokio::fs::write(&path, b"hello").await?;
        let err = digest_file(&path, |len| ChunkPlan::file(len, 0))
            .await
            .expect_err("zero chunk size");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        // A plan that disagrees with the file's length (as if it changed while read).
        let err = digest_file(&path, |_| ChunkPlan::file(3, 2))
            .await
            .expect_err("length mismatch");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let err = digest_file(&path, |_| ChunkPlan::file(9, 2))
            .await
            .expect_err("length mismatch");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let missing = dir.path().join("missing");
        let err = digest_file(&missing, |len| ChunkPlan::file(len, 2))
            .await
            .expect_err("missing file");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        Ok(())
    }

    #[tokio::test]
    async fn sha256_file_matches_contents() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("data");
        let data = bytes(FILE_BUFFER_SIZE + 17, 9);
        tokio::fs::write(&path, &data).await?;
        assert_eq!(
            sha256_file(&path).await?,
            (sha256_hex(&data), data.len() as u64)
        );
        let empty = dir.path().join("empty");
        tokio::fs::write(&empty, b"").await?;
        assert_eq!(sha256_file(&empty).await?, (EMPTY.to_owned(), 0));
        let err = sha256_file(dir.path().join("missing"))
            .await
            .expect_err("missing file");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        Ok(())
    }

    fn any_rule() -> impl Strategy<Value = ChunkRule> {
        prop_oneof![Just(ChunkRule::InMemory), Just(ChunkRule::File)]
    }

    /// A ball just over the parallel threshold, with an odd chunk size.
    fn big_ball() -> (Vec<u8>, ChunkPlan) {
        let len = PARALLEL_DIGEST_MIN as usize + 12_345;
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 4099) as u8).collect();
        let plan = ChunkPlan::file(len as u64, 1_000_003).unwrap();
        (data, plan)
    }

    #[test]
    fn two_thread_digests_match_the_one_pass_hasher() {
        let (data, plan) = big_ball();
        let mut serial = BallHasher::new(plan);
        for piece in data.chunks(777_777) {
            serial.update(piece);
        }
        let serial = serial.finish().unwrap();
        assert_eq!(digest_bytes(plan, &data).unwrap(), serial);
        let limit = plan.total_len() + 1;
        assert_eq!(digest_reader(&data[..], plan, limit).unwrap(), serial);
        assert_eq!(serial.chunk_checksums, chunk_sums(&plan, &data));
    }

    #[test]
    fn two_thread_digests_notice_a_length_that_differs_from_the_plan() {
        let (data, plan) = big_ball();
        let limit = plan.total_len() + 1;
        let short = digest_reader(&data[..data.len() - 1], plan, limit).unwrap_err();
        assert_eq!(short.kind(), io::ErrorKind::InvalidData);
        let mut longer = data.clone();
        longer.extend_from_slice(b"grown");
        let long = digest_reader(&longer[..], plan, limit).unwrap_err();
        assert_eq!(long.kind(), io::ErrorKind::InvalidData);
        assert!(matches!(
            digest_bytes(plan, &longer),
            Err(ChecksumError::LengthMismatch { .. })
        ));
    }

    #[test]
    fn a_failing_reader_fails_the_two_thread_digest() {
        struct Broken(usize);
        impl Read for Broken {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("disk gone"));
                }
                self.0 -= 1;
                buf.fill(1);
                Ok(buf.len())
            }
        }
        let (_, plan) = big_ball();
        let err = digest_reader(Broken(3), plan, plan.total_len() + 1).unwrap_err();
        assert_eq!(err.to_string(), "disk gone");
    }

    #[tokio::test]
    async fn a_large_file_digests_like_its_bytes() {
        let (data, plan) = big_ball();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.bin");
        std::fs::write(&path, &data).unwrap();
        let digest = digest_file(&path, |_| Ok(plan)).await.unwrap();
        assert_eq!(digest, digest_bytes(plan, &data).unwrap());
    }

    proptest! {
        #[test]
        fn ball_hasher_matches_separate_hashing(
            data in proptest::collection::vec(any::<u8>(), 0..20_000),
            chunk_size in 1u64..3_000,
            rule in any_rule(),
            cuts in proptest::collection::vec(any::<usize>(), 0..24),
        ) {
            let plan = ChunkPlan::new(data.len() as u64, chunk_size, rule).expect("plan");
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
            cuts.push(0);
            cuts.push(data.len());
            cuts.sort_unstable();
            let mut hasher = BallHasher::new(plan);
            for pair in cuts.windows(2) {
                if let [start, end] = *pair {
                    hasher.update(&data[start..end]);
                }
            }
            let digest = hasher.finish().expect("digest");
            prop_assert_eq!(digest.total_len, data.len() as u64);
            prop_assert_eq!(&digest.full_checksum, &sha256_hex(&data));
            prop_assert_eq!(digest.chunk_checksums.len() as u64, plan.num_chunks());
            prop_assert_eq!(digest.chunk_checksums, chunk_sums(&plan, &data));
        }
    }
}
