//! Reading one key from its replicas: fail over, verify, never return corrupt bytes.
//!
//! Replicas are tried healthy and least loaded first (see `lookup`). The next one is tried
//! when a peer is down, answers an error, stalls longer than the idle timeout, or sends bytes
//! whose length or SHA-256 is not what it should be. The expected SHA-256 is the one the peer
//! computed when it stored the object (`X-Mictlanx-Sha256`), else the declared checksum of
//! the metadata when that is a SHA-256; objects declared with a label instead (`"abc"`) are
//! length-checked only.
//!
//! Objects up to `verify_buffer_limit` are read whole and verified before the router answers,
//! so a corrupt replica is skipped and never seen by the client. Larger objects stream
//! through with incremental hashing: the failover can only happen before the first byte, and
//! a mismatch found at the end cuts the response with an error (the client sees a broken
//! transfer, never a clean end). A `Range` read is passed through from the first replica that
//! answers it, checked for stalls only (a part cannot be checked against a whole-object hash).

use std::collections::HashSet;
use std::io;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, StatusCode};
use bytes::{Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use mictlanx::checksum::{is_sha256_hex, Sha256Stream};
use mictlanx::model::{metadata_header, Metadata};
use reqwest::header;

use crate::error::ApiError;
use crate::version::Version;

use super::headers::X_SHA256;

/// Whole reads up to this size are hashed on the worker thread (the trip to the blocking
/// pool would cost more than the hash).
const HASH_IN_PLACE: u64 = 64 * 1024;
use super::lookup::{ask_all, places, survey, up_and_down, Failures, Newest};
use super::peer_client::{next_piece, version_of, KeyReport, PeerError};
use super::peers::PeerView;
use super::resume::{PeerStream, Resume};
use super::state::RouterState;

/// The body of a successful read.
pub(crate) enum ReadBody {
    /// Read whole and verified: the pieces as they came from the replica, not copied into
    /// one buffer.
    Full(Vec<Bytes>),
    /// Streaming; verified as it goes and cut on a mismatch.
    Stream(BoxStream<'static, Result<Bytes, io::Error>>),
}

impl ReadBody {
    /// The body as a stream.
    pub(crate) fn into_stream(self) -> BoxStream<'static, Result<Bytes, io::Error>> {
        match self {
            ReadBody::Full(pieces) => futures::stream::iter(pieces.into_iter().map(Ok)).boxed(),
            ReadBody::Stream(s) => s,
        }
    }
}

/// A replica's answer, ready to be relayed.
pub(crate) struct ObjectRead {
    /// The replica that serves it.
    pub peer: String,
    /// 200, or 206 for a range.
    pub status: StatusCode,
    /// Bytes in this answer (`Content-Length`); always known for whole reads.
    pub length: Option<u64>,
    /// The replica's `Content-Type`.
    pub content_type: Option<HeaderValue>,
    /// The replica's `Content-Range` (range reads).
    pub content_range: Option<HeaderValue>,
    /// The replica's `ETag`.
    pub etag: Option<HeaderValue>,
    /// The SHA-256 the bytes were verified against, if any (whole reads).
    pub sha256: Option<String>,
    /// The replica's `X-Mictlanx-Metadata` (whole reads by our peers), passed on as is.
    pub metadata: Option<HeaderValue>,
    /// The version of the bytes ([`Version::ZERO`] from a peer that does not version).
    pub version: Version,
    /// A range's block sums as the replica sent them ([`mictlanx::blocks::HEADER`]).
    pub blocks: Option<HeaderValue>,
    /// The bytes.
    pub body: ReadBody,
}

/// Why one replica could not serve the read.
enum Attempt {
    /// It does not have the key (with the version of its tombstone, if it deleted it).
    NotFound(Option<Version>),
    /// The caller's request is wrong whatever the replica (416).
    Refused(ApiError),
    /// It failed; try the next one.
    Failed(PeerError),
}

impl From<PeerError> for Attempt {
    fn from(e: PeerError) -> Self {
        match e.status() {
            Some(StatusCode::NOT_FOUND) => Attempt::NotFound(e.deleted_at()),
            Some(StatusCode::RANGE_NOT_SATISFIABLE) => {
                Attempt::Refused(ApiError::new(StatusCode::RANGE_NOT_SATISFIABLE, e.detail()))
            }
            _ => Attempt::Failed(e),
        }
    }
}

/// Reads `bucket/key` in its newest version, from the first replica that serves it
/// correctly.
///
/// The first place that is up is read at once while the next `read_survey` places (2 by
/// default: every place of the default `read_width`) are asked for their version: one
/// round trip in the common case, where the first place has the newest version. When one
/// of them reports a newer copy, that copy is read instead; a newer deletion is 404. When
/// the first place has no copy to serve, the key's other places are asked too before the
/// answer is decided. (Asking fewer places misses writes that reach only a key's holders,
/// such as disables: see `RouterConfig::read_survey`.)
///
/// `metadata` (when the caller already has it) supplies the declared checksum and saves a
/// metadata call for a replica that sends neither `Content-Length` nor `X-Mictlanx-Sha256`.
///
/// # Errors
///
/// 404 `"b@k not found"` when every place answered and none has the key (or its newest
/// version is a deletion); 503 when a place that may hold it is down or unreachable; 502
/// when every replica answered wrongly (with each one's reason); 416 passed through for an
/// unsatisfiable range.
pub(crate) async fn read_object(
    st: &RouterState,
    bucket: &str,
    key: &str,
    range: Option<&HeaderValue>,
    metadata: Option<&Metadata>,
) -> Result<ObjectRead, ApiError> {
    let not_found = || ApiError::not_found(format!("{bucket}@{key} not found"));
    let ids = places(st, bucket, key);
    let (up, down) = up_and_down(st, &ids);
    let mut failures = Failures::default();
    let Some((primary, others)) = up.split_first() else {
        return Err(failures.into_error(&down, not_found()));
    };
    // With the bytes, the next `read_survey` places are asked for their version; the
    // others only when the first place has no copy to serve.
    let (asked, later) = others.split_at(others.len().min(st.config.read_survey));
    let (first, sightings) = tokio::join!(
        attempt(st, primary, bucket, key, range, metadata, &up),
        survey(st, bucket, key, asked)
    );
    let mut newest = Newest::of(st, bucket, key, sightings, &mut failures);
    let primary_served = first.is_ok();
    match first {
        Ok(read) if newest.version().map_or(true, |v| read.version >= v) => return Ok(read),
        Ok(read) => {
            tracing::warn!(event = "GET.STALE.REPLICA", bucket_id = bucket, key, peer = %read.peer, version = %read.version, newest = ?newest.version());
        }
        Err(Attempt::NotFound(deleted_at)) => {
            st.replicas.remove_peer(bucket, key, &[primary.id.as_str()]);
            if let Some(v) = deleted_at {
                newest.saw_deletion(v);
            }
        }
        Err(Attempt::Refused(e)) => return Err(e),
        // It answered, but not with the bytes: whether it holds the key decides whether
        // that is a failure (a broken replica) or nothing (the key is not there).
        Err(Attempt::Failed(e)) if !e.is_no_answer() => {
            match st.client.key_report(primary, bucket, key).await {
                Ok(KeyReport::Absent) | Ok(KeyReport::Present { pending: true, .. }) => {}
                Ok(KeyReport::Deleted(v)) => newest.saw_deletion(v),
                Ok(KeyReport::Present { .. }) | Err(_) => failures.push(st, bucket, key, e),
            }
        }
        Err(Attempt::Failed(e)) => failures.push(st, bucket, key, e),
    }
    if !primary_served && !later.is_empty() {
        let more = survey(st, bucket, key, later).await;
        newest.add(st, bucket, key, more, &mut failures);
    }
    let holders = match newest {
        Newest::Deleted(_) => return Err(not_found()),
        Newest::Object { holders, .. } => holders,
        // Every place answered that it knows nothing: look once beyond the places.
        Newest::Nothing if failures.is_empty() && down.is_empty() => {
            let exclude: HashSet<String> = ids.iter().cloned().collect();
            ask_all(st, bucket, key, &exclude).await
        }
        Newest::Nothing => Vec::new(),
    };
    for peer in &holders {
        match attempt(st, peer, bucket, key, range, metadata, &holders).await {
            Ok(read) => return Ok(read),
            Err(Attempt::NotFound(_)) => st.replicas.remove_peer(bucket, key, &[peer.id.as_str()]),
            Err(Attempt::Refused(e)) => return Err(e),
            Err(Attempt::Failed(e)) => failures.push(st, bucket, key, e),
        }
    }
    Err(failures.into_error(&down, not_found()))
}

fn header_value(resp: &reqwest::Response, name: header::HeaderName) -> Option<HeaderValue> {
    resp.headers().get(name).cloned()
}

/// Reads from `peer`; a stream it cuts continues from one of `others` holding the same
/// version.
async fn attempt(
    st: &RouterState,
    peer: &PeerView,
    bucket: &str,
    key: &str,
    range: Option<&HeaderValue>,
    metadata: Option<&Metadata>,
    others: &[PeerView],
) -> Result<ObjectRead, Attempt> {
    let idle = st.config.peer_idle_timeout;
    let resp = st.client.get_data(peer, bucket, key, range, idle).await?;
    let status = resp.status();
    let content_type = header_value(&resp, header::CONTENT_TYPE);
    let etag = header_value(&resp, header::ETAG);
    let content_range = header_value(&resp, header::CONTENT_RANGE);
    let peer_sha = resp
        .headers()
        .get(X_SHA256)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_sha256_hex(v))
        .map(str::to_ascii_lowercase);
    let content_length = resp.content_length();
    let version = version_of(&resp).unwrap_or(Version::ZERO);
    let replica_metadata = resp
        .headers()
        .get(metadata_header::NAME)
        .filter(|v| v.len() <= metadata_header::MAX_ENCODED_LEN)
        .cloned();

    // Only streamed answers can be resumed: built for them alone, off the small-read path.
    let resume = || Resume::new(st, bucket, key, version, &peer.id, others);
    if range.is_some() {
        let length = content_length;
        let blocks = header_value(&resp, HeaderName::from_static(mictlanx::blocks::HEADER));
        let rest = content_range
            .as_ref()
            .and_then(span_of)
            .map(|(at, end)| RangeRest {
                at,
                end,
                resume: resume(),
            });
        let mut stream = resp.bytes_stream().boxed();
        // Fail over on a replica that cannot even start sending (a damaged first block).
        let first = next_piece(&peer.id, &mut stream, idle).await?;
        let body = relay(peer.id.clone(), first, stream, idle, rest);
        return Ok(ObjectRead {
            peer: peer.id.clone(),
            status,
            length,
            content_type,
            content_range,
            etag,
            sha256: None,
            metadata: None,
            version,
            blocks,
            body: ReadBody::Stream(body),
        });
    }

    // What the bytes must be. The peer's own headers are the truth about what it stored;
    // the metadata fills in what they lack.
    let fetched;
    let metadata = match metadata {
        Some(m) => Some(m),
        None if content_length.is_none() || peer_sha.is_none() => {
            fetched = st
                .client
                .get_metadata(peer, bucket, key)
                .await?
                .map(|(m, _)| m.metadata);
            fetched.as_ref()
        }
        None => None,
    };
    let Some(size) = content_length.or(metadata.map(|m| m.size)) else {
        return Err(Attempt::Failed(PeerError::Decode {
            peer: peer.id.clone(),
            what: "get",
            reason: "no Content-Length and no metadata".to_string(),
        }));
    };
    let sha256 = peer_sha.or_else(|| {
        metadata
            .map(|m| m.checksum.as_str())
            .filter(|c| is_sha256_hex(c))
            .map(str::to_ascii_lowercase)
    });
    let check = Check {
        peer: peer.id.clone(),
        bucket: bucket.to_string(),
        key: key.to_string(),
        size,
        sha256: sha256.clone(),
    };

    let mut stream = resp.bytes_stream().boxed();
    let body = if size <= st.config.verify_buffer_limit {
        ReadBody::Full(read_verified(&check, &mut stream, idle).await?)
    } else {
        // Fail over on a replica that cannot even start sending.
        let first = next_piece(&peer.id, &mut stream, idle).await?;
        ReadBody::Stream(verifying(check, first, stream, idle, resume()))
    };
    Ok(ObjectRead {
        peer: peer.id.clone(),
        status: StatusCode::OK,
        length: Some(size),
        content_type,
        content_range: None,
        etag,
        sha256,
        metadata: replica_metadata,
        version,
        blocks: None,
        body,
    })
}

/// What a replica's bytes must be.
#[derive(Debug, Clone)]
struct Check {
    peer: String,
    bucket: String,
    key: String,
    size: u64,
    sha256: Option<String>,
}

impl Check {
    fn corrupt(&self, reason: String) -> PeerError {
        tracing::error!(
            event = "CORRUPT.REPLICA",
            peer = %self.peer,
            bucket_id = %self.bucket,
            key = %self.key,
            reason = %reason
        );
        PeerError::Decode {
            peer: self.peer.clone(),
            what: "get",
            reason,
        }
    }

    fn finish(&self, got: u64, hasher: Option<Sha256Stream>) -> Result<(), PeerError> {
        if got != self.size {
            return Err(self.corrupt(format!("sent {got} bytes, expected {}", self.size)));
        }
        if let (Some(expected), Some(h)) = (&self.sha256, hasher) {
            let actual = h.finalize_hex();
            if !actual.eq_ignore_ascii_case(expected) {
                return Err(self.corrupt(format!("SHA-256 {actual} != expected {expected}")));
            }
        }
        Ok(())
    }
}

async fn read_verified<S>(
    check: &Check,
    stream: &mut S,
    idle: Duration,
) -> Result<Vec<Bytes>, PeerError>
where
    S: Stream<Item = reqwest::Result<Bytes>> + Unpin,
{
    let mut pieces = Pieces::default();
    let mut got: u64 = 0;
    while let Some(piece) = next_piece(&check.peer, stream, idle).await? {
        got += piece.len() as u64;
        if got > check.size {
            return Err(check.corrupt(format!("sent more than {} bytes", check.size)));
        }
        pieces.push(piece);
    }
    let pieces = pieces.into_vec();
    let (hasher, pieces) = match check.sha256 {
        None => (None, pieces),
        Some(_) => {
            let (hasher, pieces) = hash_whole(&check.peer, pieces, got).await?;
            (Some(hasher), pieces)
        }
    };
    check.finish(got, hasher)?;
    Ok(pieces)
}

/// The pieces of a whole read, kept as they came, except that pieces under
/// [`COALESCE_BELOW`] are joined: a replica that sends its bytes a few at a time must not
/// cost a `Bytes` handle (32 bytes) per few bytes. So a read of `n` bytes holds at most
/// `2 n / COALESCE_BELOW + 1` handles, and only small pieces are ever copied.
#[derive(Default)]
struct Pieces {
    kept: Vec<Bytes>,
    small: BytesMut,
}

/// See [`Pieces`].
const COALESCE_BELOW: usize = 4 * 1024;

impl Pieces {
    fn push(&mut self, piece: Bytes) {
        if piece.len() >= COALESCE_BELOW {
            self.flush_small();
            self.kept.push(piece);
            return;
        }
        self.small.extend_from_slice(&piece);
        if self.small.len() >= COALESCE_BELOW {
            self.flush_small();
        }
    }

    fn flush_small(&mut self) {
        if !self.small.is_empty() {
            self.kept.push(self.small.split().freeze());
        }
    }

    fn into_vec(mut self) -> Vec<Bytes> {
        self.flush_small();
        self.kept
    }
}

/// Hashes a whole read of `len` bytes: in place when it is small, else on the blocking pool,
/// so that a worker thread never stalls on it (a 64 MB object is about 60 ms of SHA-256,
/// during which every other request on that worker would wait). Gives the pieces back.
async fn hash_whole(
    peer: &str,
    pieces: Vec<Bytes>,
    len: u64,
) -> Result<(Sha256Stream, Vec<Bytes>), PeerError> {
    let hash = move || {
        let mut h = Sha256Stream::new();
        for piece in &pieces {
            h.update(piece);
        }
        (h, pieces)
    };
    if len <= HASH_IN_PLACE {
        return Ok(hash());
    }
    tokio::task::spawn_blocking(hash)
        .await
        .map_err(|e| PeerError::Decode {
            peer: peer.to_string(),
            what: "get",
            reason: format!("hashing the answer failed: {e}"),
        })
}

fn io_error(e: PeerError) -> io::Error {
    io::Error::other(e.to_string())
}

/// A streaming body verified on the fly: any failure, including a mismatch at the end, is an
/// error item, so the response is cut instead of ending cleanly.
///
/// The last piece is held back until the whole body is verified: with `Content-Length` set,
/// a client that has received every byte sees a complete answer whatever comes after, so the
/// final bytes must only go out once they are known to be right.
fn verifying(
    check: Check,
    first: Option<Bytes>,
    stream: PeerStream,
    idle: Duration,
    resume: Resume,
) -> BoxStream<'static, Result<Bytes, io::Error>> {
    struct State {
        check: Check,
        first: Option<Bytes>,
        stream: PeerStream,
        hasher: Option<Sha256Stream>,
        held: Option<Bytes>,
        got: u64,
        idle: Duration,
        done: bool,
        resume: Resume,
    }
    let state = State {
        hasher: check.sha256.as_ref().map(|_| Sha256Stream::new()),
        check,
        first,
        stream,
        held: None,
        got: 0,
        idle,
        done: false,
        resume,
    };
    futures::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        loop {
            let next = match s.first.take() {
                Some(b) => Ok(Some(b)),
                None => next_piece(&s.check.peer, &mut s.stream, s.idle).await,
            };
            match next {
                Ok(Some(piece)) => {
                    if piece.is_empty() {
                        continue;
                    }
                    s.got += piece.len() as u64;
                    if s.got > s.check.size {
                        s.done = true;
                        let e = s.check.corrupt(format!("sent more than {} bytes", s.check.size));
                        return Some((Err(io_error(e)), s));
                    }
                    if let Some(h) = s.hasher.as_mut() {
                        h.update(&piece);
                    }
                    if let Some(previous) = s.held.replace(piece) {
                        return Some((Ok(previous), s));
                    }
                }
                Ok(None) => {
                    s.done = true;
                    return match s.check.finish(s.got, s.hasher.take()) {
                        Ok(()) => s.held.take().map(|last| (Ok(last), s)),
                        Err(e) => Some((Err(io_error(e)), s)),
                    };
                }
                Err(e) => {
                    tracing::warn!(event = "GET.CUT", peer = %s.check.peer, bucket_id = %s.check.bucket, key = %s.check.key, reason = %e);
                    // What came so far is right (the hash covers it): the rest may come
                    // from another replica.
                    if let Some((peer, rest)) = s.resume.continue_at(s.got, s.check.size).await {
                        s.check.peer = peer;
                        s.stream = rest;
                        continue;
                    }
                    s.done = true;
                    return Some((Err(io_error(e)), s));
                }
            }
        }
    })
    .boxed()
}

/// The part of a range still to relay (byte offsets, end exclusive), and the replicas that
/// may send it when the serving one fails.
struct RangeRest {
    at: u64,
    end: u64,
    resume: Resume,
}

/// A range body relayed as is (starting with `first`). When the replica stalls or fails,
/// the `rest` comes from another replica of the same version, else the body is cut.
fn relay(
    peer: String,
    first: Option<Bytes>,
    stream: PeerStream,
    idle: Duration,
    rest: Option<RangeRest>,
) -> BoxStream<'static, Result<Bytes, io::Error>> {
    struct State {
        peer: String,
        first: Option<Bytes>,
        stream: PeerStream,
        rest: Option<RangeRest>,
        done: bool,
    }
    let state = State {
        peer,
        first,
        stream,
        rest,
        done: false,
    };
    futures::stream::unfold(state, move |mut s| async move {
        if s.done {
            return None;
        }
        loop {
            let next = match s.first.take() {
                Some(b) => Ok(Some(b)),
                None => next_piece(&s.peer, &mut s.stream, idle).await,
            };
            match next {
                Ok(Some(b)) => {
                    if let Some(rest) = s.rest.as_mut() {
                        rest.at += b.len() as u64;
                    }
                    return Some((Ok(b), s));
                }
                Ok(None) => return None,
                Err(e) => {
                    tracing::warn!(event = "GET.RANGE.CUT", peer = %s.peer, reason = %e);
                    if let Some(rest) = s.rest.as_mut() {
                        if let Some((peer, stream)) =
                            rest.resume.continue_at(rest.at, rest.end).await
                        {
                            s.peer = peer;
                            s.stream = stream;
                            continue;
                        }
                    }
                    s.done = true;
                    return Some((Err(io_error(e)), s));
                }
            }
        }
    })
    .boxed()
}

/// The bytes (start, end exclusive) a `Content-Range: bytes a-b/size` answer holds.
fn span_of(content_range: &HeaderValue) -> Option<(u64, u64)> {
    let spec = content_range.to_str().ok()?.strip_prefix("bytes ")?;
    let (range, _size) = spec.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    let (a, b) = (a.trim().parse::<u64>().ok()?, b.trim().parse::<u64>().ok()?);
    (a <= b).then_some((a, b + 1))
}

/// The metadata of the newest committed version of a key, asking all its places at once
/// (pending metadata when nothing is committed yet).
///
/// # Errors
///
/// As [`read_object`], with `not_found` when no replica has it.
pub(crate) async fn read_metadata(
    st: &RouterState,
    bucket: &str,
    key: &str,
    not_found: ApiError,
) -> Result<(PeerView, mictlanx::model::GetMetadataResponse), ApiError> {
    let ids = places(st, bucket, key);
    let (up, down) = up_and_down(st, &ids);
    let mut failures = Failures::default();
    let sightings = survey(st, bucket, key, &up).await;
    // A key exists from its announcement on (DESIGN §2): pending metadata answers too, when
    // no copy is committed.
    let pending = sightings.iter().find_map(|(peer, report)| match report {
        Ok(KeyReport::Present {
            metadata,
            pending: true,
            ..
        }) => Some((peer.clone(), (**metadata).clone())),
        _ => None,
    });
    match Newest::of(st, bucket, key, sightings, &mut failures) {
        Newest::Object {
            holders, metadata, ..
        } => {
            if let Some(first) = holders.into_iter().next() {
                return Ok((first, *metadata));
            }
        }
        Newest::Deleted(_) => return Err(not_found),
        Newest::Nothing if pending.is_some() => return pending.ok_or(not_found),
        Newest::Nothing if failures.is_empty() && down.is_empty() => {
            let exclude: HashSet<String> = ids.iter().cloned().collect();
            for peer in ask_all(st, bucket, key, &exclude).await {
                match st.client.get_metadata(&peer, bucket, key).await {
                    Ok(Some((m, _pending))) => return Ok((peer, m)),
                    Ok(None) => {}
                    Err(e) => failures.push(st, bucket, key, e),
                }
            }
        }
        Newest::Nothing => {}
    }
    Err(failures.into_error(&down, not_found))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mictlanx::checksum::sha256_hex;

    fn check(size: usize, sha256: String) -> Check {
        Check {
            peer: "peer-0".into(),
            bucket: "b".into(),
            key: "k".into(),
            size: size as u64,
            sha256: Some(sha256),
        }
    }

    fn pieces(data: &[u8]) -> impl Stream<Item = reqwest::Result<Bytes>> + Unpin {
        let pieces: Vec<reqwest::Result<Bytes>> = data
            .chunks(16 * 1024)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        futures::stream::iter(pieces)
    }

    #[test]
    fn pieces_keep_large_ones_as_they_are_and_join_small_ones() {
        let big = Bytes::from(vec![7u8; 10_000]);
        let mut pieces = Pieces::default();
        // 10,000 one-byte pieces, a large one, then 3 bytes.
        for i in 0..10_000u32 {
            pieces.push(Bytes::from(vec![(i % 256) as u8]));
        }
        pieces.push(big.clone());
        pieces.push(Bytes::from_static(b"end"));
        let kept = pieces.into_vec();
        // 10,000 bytes in 4 KiB runs (3 handles), the large piece, the tail.
        assert_eq!(
            kept.len(),
            5,
            "{:?}",
            kept.iter().map(Bytes::len).collect::<Vec<_>>()
        );
        // The large piece was not copied.
        assert_eq!(kept[3].as_ptr(), big.as_ptr());
        let mut expected: Vec<u8> = (0..10_000u32).map(|i| (i % 256) as u8).collect();
        expected.extend_from_slice(&big);
        expected.extend_from_slice(b"end");
        assert_eq!(kept.concat(), expected);
        assert!(Pieces::default().into_vec().is_empty());
    }

    // One worker thread: a hash on the blocking pool must still come back to it.
    #[tokio::test(flavor = "current_thread")]
    async fn whole_reads_are_verified_in_place_or_on_the_blocking_pool_alike() {
        // A short or long answer is refused before any hash.
        let idle = Duration::from_secs(10);
        let data = vec![1u8; 100_000];
        let short = check(100_001, sha256_hex(&data));
        let err = read_verified(&short, &mut pieces(&data), idle)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("sent 100000 bytes"), "{err}");
        let long = check(99_999, sha256_hex(&data));
        let err = read_verified(&long, &mut pieces(&data), idle)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("sent more than"), "{err}");

        for len in [1, 64 * 1024, 64 * 1024 + 1, 3 << 20] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let good = check(len, sha256_hex(&data));
            let got = read_verified(&good, &mut pieces(&data), idle)
                .await
                .unwrap();
            assert_eq!(got.concat(), data, "{len} bytes");
            // The pieces are kept as they came (16 KiB each here), never joined.
            assert_eq!(got.len(), len.div_ceil(16 * 1024), "{len} bytes");

            let bad = check(len, sha256_hex(b"other bytes"));
            let err = read_verified(&bad, &mut pieces(&data), idle)
                .await
                .unwrap_err();
            assert!(err.to_string().contains("SHA-256"), "{len} bytes: {err}");
        }
    }
}
