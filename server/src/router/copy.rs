//! Copying one replica from a peer to another, through the router, keeping its version.
//!
//! Used wherever a key needs one more copy: an upload that a replica failed (a fallback
//! takes its place before the put is acknowledged), repair and rebalancing, and the
//! ACTIVE/PASSIVE replication of availability policies. The copy carries the source's
//! version, so the target keeps it only while nothing newer is there (a copy can never
//! bring an older version or a deleted key back), and the target checks the bytes against
//! the source's SHA-256 as it stores them.

use std::time::Duration;

use futures::{Stream, StreamExt};
use mictlanx::model::{Metadata, PeerPutMetadataRequest};

use mictlanx::checksum::is_sha256_hex;

use super::headers::X_SHA256;
use super::peer_client::{next_piece, replication_of, version_of, PeerError, Write};
use super::peers::PeerView;
use super::state::RouterState;
use super::tasks::new_group_id;
use crate::version::Version;

/// What a peer answers in `task_id` when it already holds exactly these bytes.
pub(crate) const NOTHING_TO_UPLOAD: &str = "0";

/// How a copy ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Copied {
    /// The target stored the bytes, at this version.
    Stored(Version),
    /// The target already held them (or something newer): nothing was sent.
    AlreadyThere,
    /// The source no longer holds the bytes the copy was announced for (a newer write
    /// replaced them meanwhile): nothing was sent.
    SourceChanged,
}

/// Copies `bucket@request.key` from `source` to `target`, announced as `request`.
///
/// The source is read first, so a source that cannot serve leaves nothing on the target.
/// The copy is announced at the version the source reports for the bytes it sends
/// (`Version::ZERO` from a MictlanX peer, which reports none).
///
/// # Errors
///
/// The first [`PeerError`] of the source's read or the target's write. A target that holds
/// a newer version answers 409 (stale): that is [`Copied::AlreadyThere`], not an error.
pub(crate) async fn copy_replica(
    st: &RouterState,
    source: &PeerView,
    target: &PeerView,
    bucket: &str,
    request: &PeerPutMetadataRequest,
) -> Result<Copied, PeerError> {
    let idle = st.config.peer_idle_timeout;
    let resp = st
        .client
        .get_data(source, bucket, &request.key, None, idle)
        .await?;
    if !sends_what_is_announced(&resp, request) {
        return Ok(Copied::SourceChanged);
    }
    let write = Write {
        update: true,
        version: version_of(&resp).unwrap_or(Version::ZERO),
        replication_factor: replication_of(&resp),
    };
    let version = write.version;
    let group_id = new_group_id();
    let announced = st
        .client
        .put_metadata(target, bucket, request, &group_id, write)
        .await;
    let task = match announced {
        Ok(task) => task,
        Err(e) if e.is_stale() => return Ok(Copied::AlreadyThere),
        Err(e) => return Err(e),
    };
    if task.task_id == NOTHING_TO_UPLOAD {
        return Ok(Copied::AlreadyThere);
    }
    let body = reqwest::Body::wrap_stream(idle_bounded(source.id.clone(), resp, idle));
    match st.client.put_chunked(target, &task.task_id, body).await {
        Ok(_) => Ok(Copied::Stored(version)),
        Err(e) if e.is_stale() => Ok(Copied::AlreadyThere),
        Err(e) => {
            // Leave no pending announcement behind on the target (best effort: it also
            // expires).
            if let Err(w) = st
                .client
                .withdraw(target, bucket, &request.key, &group_id)
                .await
            {
                tracing::debug!(event = "COPY.WITHDRAW.FAILED", peer = %target.id, error = %w);
            }
            Err(e)
        }
    }
}

/// Whether the source's answer holds the bytes `request` announces: same size and, when the
/// announced checksum is a SHA-256, the one the source computed for what it sends.
fn sends_what_is_announced(resp: &reqwest::Response, request: &PeerPutMetadataRequest) -> bool {
    let size_matches = resp.content_length().map_or(true, |n| n == request.size);
    let sent_sha = resp.headers().get(X_SHA256).and_then(|v| v.to_str().ok());
    let sha_matches = match sent_sha {
        Some(sha) if is_sha256_hex(&request.checksum) => {
            sha.eq_ignore_ascii_case(&request.checksum)
        }
        _ => true,
    };
    size_matches && sha_matches
}

/// The announcement that stores a copy of the object `metadata` of `bucket`.
pub(crate) fn announcement_of(bucket: &str, metadata: &Metadata) -> PeerPutMetadataRequest {
    PeerPutMetadataRequest {
        key: metadata.key.clone(),
        size: metadata.size,
        checksum: metadata.checksum.clone(),
        tags: metadata.tags.clone(),
        producer_id: metadata.producer_id.clone(),
        content_type: metadata.content_type.clone(),
        ball_id: metadata.ball_id.clone(),
        bucket_id: bucket.to_string(),
        is_disable: metadata.is_disabled,
    }
}

/// The source's body, cut with an error when it stalls longer than `idle`.
fn idle_bounded(
    peer: String,
    resp: reqwest::Response,
    idle: Duration,
) -> impl Stream<Item = Result<bytes::Bytes, PeerError>> + Send + 'static {
    let stream = resp.bytes_stream().boxed();
    futures::stream::unfold(Some(stream), move |state| {
        let peer = peer.clone();
        async move {
            let mut stream = state?;
            match next_piece(&peer, &mut stream, idle).await {
                Ok(Some(b)) => Some((Ok(b), Some(stream))),
                Ok(None) => None,
                Err(e) => Some((Err(e), None)),
            }
        }
    })
}
