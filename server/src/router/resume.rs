//! Continuing a read that a replica cut mid-stream, from another replica of the same version.
//!
//! Peers check every block before sending it and end the answer with an error instead of
//! sending a damaged block (see `storage::block_read`); a peer can also die or stall
//! mid-answer. Either way the bytes already relayed are right, so the router asks the next
//! replica for the rest (`Range: bytes=<sent>-<end>`) and goes on, as long as that replica
//! holds the very same version. The client sees one uninterrupted answer.

use axum::http::{HeaderValue, StatusCode};
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;

use crate::version::Version;

use super::peer_client::version_of;
use super::peers::PeerView;
use super::state::RouterState;

/// At most this many replicas take over one read.
const MAX_RESUMES: usize = 3;

/// The bytes of a replica's answer, as they come.
pub(crate) type PeerStream = BoxStream<'static, reqwest::Result<Bytes>>;

/// Where a cut read of one version of a key can continue.
#[derive(Clone)]
pub(crate) struct Resume {
    st: RouterState,
    bucket: String,
    key: String,
    version: Version,
    /// Replicas not tried yet, in order.
    candidates: Vec<PeerView>,
    resumes: usize,
}

impl Resume {
    /// Resumes reads of `bucket@key` at `version` from `candidates` (the replica that is
    /// serving is left out).
    pub(crate) fn new(
        st: &RouterState,
        bucket: &str,
        key: &str,
        version: Version,
        serving: &str,
        candidates: &[PeerView],
    ) -> Self {
        Resume {
            st: st.clone(),
            bucket: bucket.to_string(),
            key: key.to_string(),
            version,
            candidates: candidates
                .iter()
                .filter(|p| p.id != serving)
                .cloned()
                .collect(),
            resumes: 0,
        }
    }

    /// Bytes `from..end` (end exclusive) from the next replica that answers them at the
    /// same version: its id and its stream, or `None` when no replica can.
    pub(crate) async fn continue_at(
        &mut self,
        from: u64,
        end: u64,
    ) -> Option<(String, PeerStream)> {
        if from >= end || self.resumes >= MAX_RESUMES {
            return None;
        }
        let range = HeaderValue::from_str(&format!("bytes={from}-{}", end - 1)).ok()?;
        let idle = self.st.config.peer_idle_timeout;
        while !self.candidates.is_empty() {
            let peer = self.candidates.remove(0);
            let resp = match self
                .st
                .client
                .get_data(&peer, &self.bucket, &self.key, Some(&range), idle)
                .await
            {
                Ok(resp) => resp,
                Err(_) => continue,
            };
            let same = version_of(&resp) == Some(self.version);
            if resp.status() != StatusCode::PARTIAL_CONTENT || !same {
                continue;
            }
            self.resumes += 1;
            tracing::info!(event = "GET.RESUMED", bucket_id = %self.bucket, key = %self.key, peer = %peer.id, from, end);
            return Some((peer.id, resp.bytes_stream().boxed()));
        }
        None
    }
}
