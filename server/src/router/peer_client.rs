//! Typed calls to the peer API (server reference §4) over one pooled HTTP client.
//!
//! Every failure becomes a [`PeerError`] that names the peer and the call, and says whether
//! the peer could not be reached (the router then marks it down and fails over) or answered
//! with an error status (whose `detail` is kept so the router can pass a 4xx through).
//! Identifiers reach this module already validated and sanitised (`[A-Za-z0-9_-]`), so they
//! go into URLs as they are.

use std::time::Duration;

use axum::http::StatusCode;
use bytes::Bytes;
use futures::StreamExt;
use mictlanx::id::url_segment;
use mictlanx::model::{
    BallBasicData, ErrorBody, GetMetadataResponse, GroupedBallResponse, KeyVersionsPage,
    PeerBucketMetadata, PeerPutChunkedResponse, PeerPutMetadataRequest, PeerPutMetadataResponse,
    PeerStats, SizeByKey, UfsResponse,
};
use reqwest::header::HeaderValue;
use reqwest::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;

use rustls::pki_types::CertificateDer;

use super::headers::{flag_value, FORCE, N_DELETES, TASK_ID, UPDATE, X_STATE};
use super::peers::PeerView;
use crate::auth::ClusterToken;
use crate::storage::Deletion;
use crate::version::{Version, REPLICATION_HEADER, TOMBSTONE_HEADER, VERSION_HEADER};

/// What a peer says of one key ([`PeerClient::key_report`]).
#[derive(Debug)]
pub(crate) enum KeyReport {
    /// It holds the key (or, with `pending`, waits for its bytes) at `version`
    /// ([`Version::ZERO`] from a peer that does not version).
    Present {
        metadata: Box<GetMetadataResponse>,
        pending: bool,
        version: Version,
    },
    /// It deleted the key at this version.
    Deleted(Version),
    /// It knows nothing of the key.
    Absent,
}

/// How a put-metadata writes: its `Update` flag, its version and the replicas asked for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Write {
    pub update: bool,
    pub version: Version,
    pub replication_factor: u32,
}

/// The replicas a peer's read says the key's writer asked for (0: not said).
pub(crate) fn replication_of(resp: &Response) -> u32 {
    resp.headers()
        .get(REPLICATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The version a peer's answer names, if any.
pub(crate) fn version_of(resp: &Response) -> Option<Version> {
    Version::from_headers(resp.headers())
}

/// Error bodies are read up to this many bytes: enough for any `detail`, and a peer that
/// answers an error with a huge body cannot make the router buffer it.
const MAX_ERROR_BODY: usize = 8 * 1024;

/// How long an error body may take to arrive; after that the status alone is reported.
const ERROR_BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// A failed call to a peer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PeerError {
    /// The peer could not be reached (connection refused, reset before an answer, DNS).
    #[error("{peer} is unreachable ({what}): {source}")]
    Unreachable {
        /// Peer id.
        peer: String,
        /// The call.
        what: &'static str,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The peer did not answer, or stopped sending, in time.
    #[error("{peer} did not answer {what} in time")]
    Timeout {
        /// Peer id.
        peer: String,
        /// The call.
        what: &'static str,
    },
    /// The peer answered with an error status.
    #[error("{peer} answered {what} with {status}: {detail}")]
    Status {
        /// Peer id.
        peer: String,
        /// The call.
        what: &'static str,
        /// The peer's status.
        status: StatusCode,
        /// The peer's `detail` (or the start of its body).
        detail: String,
        /// The version the peer named (`X-Mictlanx-Version`): of the tombstone of a 404,
        /// or the one a stale write must beat in a 409.
        version: Option<Version>,
        /// Whether the peer said the key was deleted (a 404 with a tombstone).
        deleted: bool,
    },
    /// The exchange broke after it started.
    #[error("{peer} failed during {what}: {source}")]
    Transport {
        /// Peer id.
        peer: String,
        /// The call.
        what: &'static str,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The peer's answer could not be read as the expected JSON.
    #[error("{peer} sent an unreadable answer to {what}: {reason}")]
    Decode {
        /// Peer id.
        peer: String,
        /// The call.
        what: &'static str,
        /// Why.
        reason: String,
    },
}

impl PeerError {
    /// The peer's status, when it answered.
    pub(crate) fn status(&self) -> Option<StatusCode> {
        match self {
            PeerError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The version the peer named with its error (see [`PeerError::Status`]).
    pub(crate) fn version(&self) -> Option<Version> {
        match self {
            PeerError::Status { version, .. } => *version,
            _ => None,
        }
    }

    /// The version of the tombstone, when the peer answered 404 because the key was deleted.
    pub(crate) fn deleted_at(&self) -> Option<Version> {
        match self {
            PeerError::Status {
                deleted: true,
                version,
                ..
            } => *version,
            _ => None,
        }
    }

    /// A 409 for a write older than what the peer has: retry with a newer version.
    pub(crate) fn is_stale(&self) -> bool {
        matches!(self, PeerError::Status { status, version: Some(_), .. } if *status == StatusCode::CONFLICT)
    }

    /// The peer could not be connected to: it is marked down until a probe says otherwise.
    /// (A timeout is not enough: a busy peer is slow, not gone.)
    pub(crate) fn is_connect_failure(&self) -> bool {
        matches!(self, PeerError::Unreachable { .. })
    }

    /// The peer gave no answer at all (unreachable or timed out), as opposed to a wrong one.
    pub(crate) fn is_no_answer(&self) -> bool {
        matches!(
            self,
            PeerError::Unreachable { .. } | PeerError::Timeout { .. }
        )
    }

    /// The peer's id.
    pub(crate) fn peer(&self) -> &str {
        match self {
            PeerError::Unreachable { peer, .. }
            | PeerError::Timeout { peer, .. }
            | PeerError::Status { peer, .. }
            | PeerError::Transport { peer, .. }
            | PeerError::Decode { peer, .. } => peer,
        }
    }

    /// The peer's `detail` for an error status, else the error's text.
    pub(crate) fn detail(&self) -> String {
        match self {
            PeerError::Status { detail, .. } => detail.clone(),
            other => other.to_string(),
        }
    }

    fn from_reqwest(peer: &str, what: &'static str, e: reqwest::Error) -> Self {
        let peer = peer.to_string();
        if e.is_timeout() {
            PeerError::Timeout { peer, what }
        } else if e.is_connect() {
            PeerError::Unreachable {
                peer,
                what,
                source: e,
            }
        } else {
            PeerError::Transport {
                peer,
                what,
                source: e,
            }
        }
    }
}

/// The router's client of the peer API. Cheap to clone (one shared connection pool).
#[derive(Debug, Clone)]
pub(crate) struct PeerClient {
    http: reqwest::Client,
    call_timeout: Duration,
    probe_timeout: Duration,
}

impl PeerClient {
    /// A client with the given connect timeout; small calls time out after `call_timeout`,
    /// probes after `probe_timeout`. Streams have no overall timeout (a 10 GiB object takes
    /// what it takes); their callers bound the idle time between pieces instead.
    ///
    /// Every call carries `cluster_token` (peers that have one refuse changes without it),
    /// and `https` peers are verified against the public roots plus `trust`.
    pub(crate) fn new(
        connect_timeout: Duration,
        call_timeout: Duration,
        probe_timeout: Duration,
        cluster_token: Option<&ClusterToken>,
        trust: &[CertificateDer<'static>],
    ) -> reqwest::Result<Self> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = cluster_token {
            headers.insert(reqwest::header::AUTHORIZATION, token.authorization());
        }
        let mut builder = reqwest::Client::builder().default_headers(headers);
        for ca in trust {
            builder = builder.add_root_certificate(reqwest::Certificate::from_der(ca)?);
        }
        let http = builder
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true)
            // Below a peer's header-read timeout (10 s by default), which also closes its
            // idle keep-alive connections: we drop ours first rather than race its close.
            .pool_idle_timeout(Duration::from_secs(5))
            // Peers are addressed directly; a proxy from the environment would be wrong.
            .no_proxy()
            // Peers never redirect. Not following keeps a peer from sending the router (and
            // its cluster token) elsewhere, and spares the redirect layer on every call.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            http,
            call_timeout,
            probe_timeout,
        })
    }

    fn url(peer: &PeerView, path: &str) -> String {
        format!("{}{path}", peer.base_url)
    }

    /// A small call to `path` on `peer`, bounded by the call timeout.
    fn call(&self, method: Method, peer: &PeerView, path: &str) -> RequestBuilder {
        self.http
            .request(method, Self::url(peer, path))
            .timeout(self.call_timeout)
    }

    async fn send(
        peer: &PeerView,
        what: &'static str,
        req: RequestBuilder,
    ) -> Result<Response, PeerError> {
        req.send()
            .await
            .map_err(|e| PeerError::from_reqwest(&peer.id, what, e))
    }

    /// [`send`](Self::send), with `None` for a 404: the peer does not hold what was asked.
    async fn send_found(
        peer: &PeerView,
        what: &'static str,
        req: RequestBuilder,
    ) -> Result<Option<Response>, PeerError> {
        let resp = Self::send(peer, what, req).await?;
        Ok((resp.status() != StatusCode::NOT_FOUND).then_some(resp))
    }

    /// [`send_found`](Self::send_found) for calls answered by a status alone: `false` for a
    /// 404, `true` for a 2xx, any other status an error.
    async fn send_if_found(
        peer: &PeerView,
        what: &'static str,
        req: RequestBuilder,
    ) -> Result<bool, PeerError> {
        match Self::send_found(peer, what, req).await? {
            Some(resp) => Self::check(peer, what, resp).await.map(|_| true),
            None => Ok(false),
        }
    }

    /// Turns a non-2xx answer into [`PeerError::Status`], reading a bounded error body.
    pub(crate) async fn check(
        peer: &PeerView,
        what: &'static str,
        resp: Response,
    ) -> Result<Response, PeerError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let version = version_of(&resp);
        let deleted = resp.headers().contains_key(TOMBSTONE_HEADER);
        let mut body = Vec::new();
        let mut stream = resp.bytes_stream();
        let read = async {
            while let Some(Ok(piece)) = stream.next().await {
                body.extend_from_slice(&piece);
                if body.len() >= MAX_ERROR_BODY {
                    body.truncate(MAX_ERROR_BODY);
                    break;
                }
            }
        };
        // A peer that sends an error status and then stalls must not hold the caller.
        let _ = tokio::time::timeout(ERROR_BODY_TIMEOUT, read).await;
        let detail = match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(e) => e.text(),
            Err(_) => String::from_utf8_lossy(&body).trim().to_string(),
        };
        Err(PeerError::Status {
            peer: peer.id.clone(),
            what,
            status,
            detail,
            version,
            deleted,
        })
    }

    async fn json<T: DeserializeOwned>(
        peer: &PeerView,
        what: &'static str,
        resp: Response,
    ) -> Result<T, PeerError> {
        let resp = Self::check(peer, what, resp).await?;
        let body = resp
            .bytes()
            .await
            .map_err(|e| PeerError::from_reqwest(&peer.id, what, e))?;
        serde_json::from_slice(&body).map_err(|e| PeerError::Decode {
            peer: peer.id.clone(),
            what,
            reason: e.to_string(),
        })
    }

    /// Sends `req` and reads a 2xx answer as JSON (an error status becomes
    /// [`PeerError::Status`]).
    async fn send_json<T: DeserializeOwned>(
        peer: &PeerView,
        what: &'static str,
        req: RequestBuilder,
    ) -> Result<T, PeerError> {
        let resp = Self::send(peer, what, req).await?;
        Self::json(peer, what, resp).await
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        peer: &PeerView,
        what: &'static str,
        path: &str,
    ) -> Result<T, PeerError> {
        Self::send_json(peer, what, self.call(Method::GET, peer, path)).await
    }

    /// PS2: the probe.
    pub(crate) async fn ufs(&self, peer: &PeerView) -> Result<UfsResponse, PeerError> {
        let req = self
            .http
            .get(Self::url(peer, "/api/v4/stats/ufs"))
            .timeout(self.probe_timeout);
        Self::send_json(peer, "probe", req).await
    }

    /// PM1: announces an object; the peer creates its pending upload under `task_id`.
    pub(crate) async fn put_metadata(
        &self,
        peer: &PeerView,
        bucket: &str,
        body: &PeerPutMetadataRequest,
        task_id: &str,
        write: Write,
    ) -> Result<PeerPutMetadataResponse, PeerError> {
        let json = serde_json::to_vec(body).map_err(|e| PeerError::Decode {
            peer: peer.id.clone(),
            what: "put-metadata",
            reason: format!("cannot encode the request: {e}"),
        })?;
        let req = self
            .call(
                Method::POST,
                peer,
                &format!("/api/v4/buckets/{}/metadata", url_segment(bucket)),
            )
            .header(TASK_ID, task_id)
            .header(UPDATE, flag_value(write.update))
            .header(VERSION_HEADER, write.version.header_value())
            .header(REPLICATION_HEADER, write.replication_factor)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(json);
        Self::send_json(peer, "put-metadata", req).await
    }

    /// PD2: streams the bytes of a pending upload.
    pub(crate) async fn put_chunked(
        &self,
        peer: &PeerView,
        task_id: &str,
        body: reqwest::Body,
    ) -> Result<PeerPutChunkedResponse, PeerError> {
        let req = self
            .http
            .post(Self::url(
                peer,
                &format!("/api/v4/buckets/data/{}/chunked", url_segment(task_id)),
            ))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body);
        Self::send_json(peer, "upload", req).await
    }

    /// PD3: starts a data read; the caller streams the body. Non-2xx answers are errors.
    pub(crate) async fn get_data(
        &self,
        peer: &PeerView,
        bucket: &str,
        key: &str,
        range: Option<&HeaderValue>,
        idle: Duration,
    ) -> Result<Response, PeerError> {
        let mut req = self.http.get(Self::url(
            peer,
            &format!(
                "/api/v4/buckets/{}/{}",
                url_segment(bucket),
                url_segment(key)
            ),
        ));
        if let Some(r) = range {
            req = req.header(reqwest::header::RANGE, r.clone());
        }
        let resp = tokio::time::timeout(idle, Self::send(peer, "get", req))
            .await
            .map_err(|_| PeerError::Timeout {
                peer: peer.id.clone(),
                what: "get",
            })??;
        Self::check(peer, "get", resp).await
    }

    /// PM2: the metadata of a key; `None` when the peer does not have it. The flag says
    /// whether the peer reported it as pending (its bytes have not arrived).
    pub(crate) async fn get_metadata(
        &self,
        peer: &PeerView,
        bucket: &str,
        key: &str,
    ) -> Result<Option<(GetMetadataResponse, bool)>, PeerError> {
        Ok(match self.key_report(peer, bucket, key).await? {
            KeyReport::Present {
                metadata, pending, ..
            } => Some((*metadata, pending)),
            KeyReport::Deleted(_) | KeyReport::Absent => None,
        })
    }

    /// PM2, with what the peer says of the key's version: present (committed or pending),
    /// deleted (a tombstone), or absent.
    pub(crate) async fn key_report(
        &self,
        peer: &PeerView,
        bucket: &str,
        key: &str,
    ) -> Result<KeyReport, PeerError> {
        let what = "metadata";
        let req = self.call(
            Method::GET,
            peer,
            &format!(
                "/api/v4/buckets/{}/metadata/{}",
                url_segment(bucket),
                url_segment(key)
            ),
        );
        let resp = Self::send(peer, what, req).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(match version_of(&resp) {
                Some(v) if resp.headers().contains_key(TOMBSTONE_HEADER) => KeyReport::Deleted(v),
                _ => KeyReport::Absent,
            });
        }
        let pending = resp
            .headers()
            .get(X_STATE)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"pending"));
        let version = version_of(&resp).unwrap_or(Version::ZERO);
        Ok(KeyReport::Present {
            metadata: Box::new(Self::json(peer, what, resp).await?),
            pending,
            version,
        })
    }

    /// PM3, one page: up to `limit` keys of a bucket after `after` (our token of that
    /// key), with versions and tombstones. A MictlanX peer ignores the paging and answers
    /// the whole bucket, untruncated.
    pub(crate) async fn bucket_page(
        &self,
        peer: &PeerView,
        bucket: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<PeerBucketMetadata, PeerError> {
        let mut path = format!(
            "/api/v4/buckets/{}/metadata?limit={limit}",
            url_segment(bucket)
        );
        if let Some(key) = after {
            path.push_str("&continuation_token=");
            path.push_str(&crate::paging::encode_token(key));
        }
        self.get_json(peer, "bucket-listing", &path).await
    }

    /// PM4: every key of a ball on this peer; `None` when it has none.
    pub(crate) async fn ball_group(
        &self,
        peer: &PeerView,
        bucket: &str,
        ball: &str,
    ) -> Result<Option<GroupedBallResponse>, PeerError> {
        let what = "ball-listing";
        let req = self.call(
            Method::GET,
            peer,
            &format!(
                "/api/v4/buckets/{}/metadata/{}/group",
                url_segment(bucket),
                url_segment(ball)
            ),
        );
        match Self::send_found(peer, what, req).await? {
            Some(resp) => Self::json(peer, what, resp).await.map(Some),
            None => Ok(None),
        }
    }

    /// PM6: the size of a key on this peer (0 when absent).
    pub(crate) async fn size(
        &self,
        peer: &PeerView,
        bucket: &str,
        key: &str,
    ) -> Result<SizeByKey, PeerError> {
        self.get_json(
            peer,
            "size",
            &format!(
                "/api/v4/buckets/{}/{}/size",
                url_segment(bucket),
                url_segment(key)
            ),
        )
        .await
    }

    fn n_deletes(resp: &Response) -> i64 {
        resp.headers()
            .get(N_DELETES)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(-1)
    }

    /// PD4: deletes a key; `None` when the peer did not have it, else its `n-deletes`
    /// (`-1` when the header is missing).
    pub(crate) async fn delete(
        &self,
        peer: &PeerView,
        bucket: &str,
        key: &str,
        force: bool,
        deletion: Deletion,
    ) -> Result<Option<i64>, PeerError> {
        let what = "delete";
        let mut req = self
            .call(
                Method::DELETE,
                peer,
                &format!(
                    "/api/v4/buckets/{}/{}",
                    url_segment(bucket),
                    url_segment(key)
                ),
            )
            .header(FORCE, flag_value(force));
        if let Some(v) = deletion.version {
            req = req.header(VERSION_HEADER, v.header_value());
        }
        if deletion.tombstone_always {
            req = req.header(TOMBSTONE_HEADER, "1");
        }
        let Some(resp) = Self::send_found(peer, what, req).await? else {
            return Ok(None);
        };
        let resp = Self::check(peer, what, resp).await?;
        Ok(Some(Self::n_deletes(&resp)))
    }

    /// PD4 with `Task-Id`: drops the pending upload `task_id` of the key, and nothing else
    /// (a withdrawn announcement). A peer that has no such upload answers 404: fine too.
    pub(crate) async fn withdraw(
        &self,
        peer: &PeerView,
        bucket: &str,
        key: &str,
        task_id: &str,
    ) -> Result<(), PeerError> {
        let what = "withdraw";
        let req = self
            .call(
                Method::DELETE,
                peer,
                &format!(
                    "/api/v4/buckets/{}/{}",
                    url_segment(bucket),
                    url_segment(key)
                ),
            )
            .header(TASK_ID, task_id);
        Self::send_if_found(peer, what, req).await.map(|_| ())
    }

    /// `GET /api/v4/xversions`: the page of the peer's keys and versions after `after`.
    pub(crate) async fn xversions(
        &self,
        peer: &PeerView,
        after: Option<&(String, String)>,
    ) -> Result<KeyVersionsPage, PeerError> {
        let mut req = self.call(Method::GET, peer, "/api/v4/xversions");
        if let Some((bucket, key)) = after {
            req = req.query(&[("after_bucket", bucket), ("after_key", key)]);
        }
        Self::send_json(peer, "versions", req).await
    }

    /// `DELETE /api/v4/xtombstones/{bucket}/{key}`: the peer forgets the key's tombstone of
    /// `version`; `false` when it has none of that version.
    pub(crate) async fn purge_tombstone(
        &self,
        peer: &PeerView,
        bucket: &str,
        key: &str,
        version: Version,
    ) -> Result<bool, PeerError> {
        let what = "purge-tombstone";
        let req = self
            .call(
                Method::DELETE,
                peer,
                &format!(
                    "/api/v4/xtombstones/{}/{}",
                    url_segment(bucket),
                    url_segment(key)
                ),
            )
            .header(VERSION_HEADER, version.header_value());
        Self::send_if_found(peer, what, req).await
    }

    /// PD5: deletes every key of a ball; its `n-deletes` (0 when it had none).
    pub(crate) async fn delete_ball(
        &self,
        peer: &PeerView,
        bucket: &str,
        ball: &str,
        force: bool,
        version: Version,
    ) -> Result<i64, PeerError> {
        let what = "delete-ball";
        let req = self
            .call(
                Method::DELETE,
                peer,
                &format!(
                    "/api/v4/buckets/{}/bid/{}",
                    url_segment(bucket),
                    url_segment(ball)
                ),
            )
            .header(FORCE, flag_value(force))
            .header(VERSION_HEADER, version.header_value());
        let Some(resp) = Self::send_found(peer, what, req).await? else {
            return Ok(0);
        };
        let resp = Self::check(peer, what, resp).await?;
        Ok(Self::n_deletes(&resp).max(0))
    }

    /// PM7: disables a key; `false` when the peer did not have it.
    pub(crate) async fn disable(
        &self,
        peer: &PeerView,
        bucket: &str,
        key: &str,
        version: Version,
    ) -> Result<bool, PeerError> {
        let what = "disable";
        let req = self
            .call(
                Method::POST,
                peer,
                &format!(
                    "/api/v4/buckets/{}/{}/disable",
                    url_segment(bucket),
                    url_segment(key)
                ),
            )
            .header(VERSION_HEADER, version.header_value());
        Self::send_if_found(peer, what, req).await
    }

    /// PS1: the peer's stats.
    pub(crate) async fn stats(
        &self,
        peer: &PeerView,
        start: i64,
        end: i64,
    ) -> Result<PeerStats, PeerError> {
        let path = if end > 0 {
            format!("/api/v4/stats?start={start}&end={end}")
        } else {
            format!("/api/v4/stats?start={start}")
        };
        self.get_json(peer, "stats", &path).await
    }

    /// PS4, one page: up to 1,000 committed keys after the page of `token` (`None`: from
    /// the first), and the token of the next page when more follow. A MictlanX peer
    /// answers every key at once, without a token.
    pub(crate) async fn xballs_page(
        &self,
        peer: &PeerView,
        token: Option<&str>,
    ) -> Result<(Vec<BallBasicData>, Option<String>), PeerError> {
        let what = "xballs";
        let mut path = format!("/api/v4/xballs?limit={}", crate::paging::MAX_LIMIT);
        if let Some(t) = token {
            path.push_str("&continuation_token=");
            path.push_str(t);
        }
        let resp = Self::send(peer, what, self.call(Method::GET, peer, &path)).await?;
        let next = resp
            .headers()
            .get(crate::paging::NEXT_TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok((Self::json(peer, what, resp).await?, next))
    }
}

/// Reads the next piece of a peer's body, giving up after `idle`.
pub(crate) async fn next_piece<S>(
    peer: &str,
    stream: &mut S,
    idle: Duration,
) -> Result<Option<Bytes>, PeerError>
where
    S: futures::Stream<Item = reqwest::Result<Bytes>> + Unpin,
{
    match tokio::time::timeout(idle, stream.next()).await {
        Err(_) => Err(PeerError::Timeout {
            peer: peer.to_string(),
            what: "get",
        }),
        Ok(None) => Ok(None),
        Ok(Some(Ok(b))) => Ok(Some(b)),
        Ok(Some(Err(e))) => Err(PeerError::from_reqwest(peer, "get", e)),
    }
}
