//! Writes: put-metadata (R1), the data upload (R2 streamed, R3 multipart) and the
//! metadata update (R11).

use std::time::Instant;

use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use bytes::Bytes;
use futures::Stream;
use mictlanx::checksum::is_sha256_hex;
use mictlanx::id::{BallId, BucketId, Key};
use mictlanx::model::{
    PeerPutMetadataRequest, PutMetadataRequest, PutMetadataResponse, RouterPutChunkedResponse,
};
use tokio_util::sync::CancellationToken;

use crate::version::Version;

use crate::error::{ApiError, ApiJson, ApiPath};

use super::super::copy::{copy_replica, Copied, NOTHING_TO_UPLOAD};
use super::super::fanout::{self, DropReason, Expect, PumpError};
use super::super::headers::{flag, UPDATE};
use super::super::lookup::locate;
use super::super::peer_client::{KeyReport, PeerError, Write};
use super::super::peers::PeerView;
use super::super::placement;
use super::super::state::RouterState;
use super::super::tasks::{new_group_id, BeginError, UploadTask};
use super::{all_refused, put_metadata_error};

/// R1 `POST /api/v4/buckets/{bucket_id}/metadata`.
pub(crate) async fn put_metadata(
    State(st): State<RouterState>,
    ApiPath(bucket): ApiPath<BucketId>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<PutMetadataRequest>,
) -> Result<Json<PutMetadataResponse>, ApiError> {
    put_metadata_in(&st, &bucket, &headers, req).await.map(Json)
}

/// R1 for a bucket given by the caller (also reached through `POST /buckets/data/metadata`).
///
/// Placement is computed, not looked up: the first `rf` peers of the key's rendezvous order
/// that are up and have room (see `placement`), so a put contacts only the peers it writes
/// to, and every router sends the same key to the same peers. Each announcement carries a
/// fresh version; a peer that already has a newer one refuses it as stale, and the round is
/// sent again with a version beyond it. The peer judges whether the same bytes are being
/// put again, or refuses different ones with 409 unless `Update: 1`.
pub(crate) async fn put_metadata_in(
    st: &RouterState,
    bucket: &BucketId,
    headers: &HeaderMap,
    req: PutMetadataRequest,
) -> Result<PutMetadataResponse, ApiError> {
    let started = Instant::now();
    same_bucket(bucket, &req)?;
    let key = Key::new(req.key.as_str())?;
    let ball_id = ball_id_or_key(&req, &key)?;
    if req.replication_factor == 0 {
        return Err(ApiError::bad_request(
            "replication_factor must be at least 1",
        ));
    }
    let replication_factor = req.replication_factor;
    let rf = usize::try_from(replication_factor).unwrap_or(usize::MAX);
    let update = flag(headers, UPDATE, false);
    st.require_healthy()?;

    let hash = placement::key_hash(bucket, &key);
    let mut chosen = placement::choose(&st.peers.candidates(), hash, &[], rf, req.size)
        .map_err(|_| ApiError::no_available_peers(bucket, &key, st.replicas.get(bucket, &key)))?;
    let mut targets = st.peers.up_views(&chosen);
    st.peers.reserve(&chosen, req.size);

    let group_id = new_group_id();
    let size = req.size;
    let checksum = req.checksum.clone();
    let peer_req = peer_request(req, bucket, &key, ball_id);
    let mut announced = announce(
        st,
        bucket,
        &targets,
        &peer_req,
        &group_id,
        update,
        replication_factor,
        None,
    )
    .await;
    // Peers that answered 507 are full (and marked so): the write goes to the next peers
    // of the key's order instead, with the same version.
    let mut tried = chosen.clone();
    for _ in 0..FULL_REPLACEMENT_ROUNDS {
        if announced.failure.is_none() || announced.full.len() != announced.failures {
            break;
        }
        let full = std::mem::take(&mut announced.full);
        st.peers.release(&full, size);
        chosen.retain(|id| !full.contains(id));
        targets.retain(|p| !full.contains(&p.id));
        let Ok(more) = placement::choose(&st.peers.candidates(), hash, &tried, full.len(), size)
        else {
            break;
        };
        tracing::info!(event = "PUT.METADATA.REPLACED.FULL", bucket_id = %bucket, key = %key, full = ?full, instead = ?more);
        tried.extend(more.iter().cloned());
        st.peers.reserve(&more, size);
        chosen.extend(more.iter().cloned());
        let more_targets = st.peers.up_views(&more);
        targets.extend(more_targets.iter().cloned());
        let again = announce(
            st,
            bucket,
            &more_targets,
            &peer_req,
            &group_id,
            update,
            replication_factor,
            Some(announced.version),
        )
        .await;
        announced.accepted.extend(again.accepted);
        announced.full = again.full;
        announced.failures = again.failures;
        announced.failure = again.failure;
        if again.version != announced.version && announced.failure.is_none() {
            // A newer version of the key showed up meanwhile: start over from the client.
            rollback(st, bucket, &key, &group_id, &announced.accepted).await;
            st.peers.release(&chosen, size);
            return Err(ApiError::conflict(format!(
                "{bucket}@{key} was written concurrently; put it again"
            )));
        }
    }
    let version = announced.version;
    if let Some(e) = announced.failure {
        rollback(st, bucket, &key, &group_id, &announced.accepted).await;
        st.peers.release(&chosen, size);
        return Err(put_metadata_error(&e));
    }

    let (done, upload): (Vec<_>, Vec<_>) = announced
        .accepted
        .iter()
        .cloned()
        .partition(|(_, task_id)| task_id == NOTHING_TO_UPLOAD);
    let replicas: Vec<String> = targets.iter().map(|p| p.id.clone()).collect();
    let task = UploadTask {
        group_id: group_id.clone(),
        bucket_id: bucket.to_string(),
        key: key.to_string(),
        size,
        checksum,
        upload_peers: upload.into_iter().map(|(p, t)| (p.id, t)).collect(),
        done_peers: done.into_iter().map(|(p, _)| p.id).collect(),
        reserved_peers: chosen.clone(),
        rf,
        version,
        metadata: peer_req,
    };
    if st.tasks.insert(task).is_err() {
        rollback(st, bucket, &key, &group_id, &announced.accepted).await;
        st.peers.release(&chosen, size);
        return Err(ApiError::unavailable(
            "Too many uploads are pending; try again later",
        ));
    }
    // The key exists from now on (metadata GET, disable and delete must find it).
    st.replicas.add(bucket, &key, &replicas);
    let service_time = started.elapsed().as_secs_f64();
    tracing::info!(
        event = "PUT.METADATA",
        bucket_id = %bucket,
        key = %key,
        size,
        replicas = ?replicas,
        update,
        version = %version,
        group_id = %group_id,
        response_time = service_time
    );
    Ok(PutMetadataResponse {
        key: key.to_string(),
        service_time,
        tasks_ids: vec![group_id],
        bucket_id: bucket.to_string(),
        replicas,
        extra: Default::default(),
    })
}

/// How many times the peers that answered 507 to an announcement are replaced by the next
/// ones of the key's order.
const FULL_REPLACEMENT_ROUNDS: usize = 3;

/// How many times an announcement is sent again with a newer version after a peer said it
/// holds a newer one (a writer whose clock lags, or a concurrent writer of the same key).
const STALE_RETRIES: usize = 3;

/// The outcome of [`announce`].
struct Announced {
    /// The version the peers accepted (the last one sent).
    version: Version,
    /// The peers that accepted, with the task id each gave.
    accepted: Vec<(PeerView, String)>,
    /// The first refusal, if any peer refused.
    failure: Option<PeerError>,
    /// How many peers refused.
    failures: usize,
    /// The peers that refused with 507 (no space).
    full: Vec<String>,
}

/// Sends the announcement of a write to every target at once, with a fresh version. When
/// the only refusals are "stale" (the peer holds a newer version of the key), the clock is
/// moved past the newest version they named and the round is sent again (same group id, so
/// a peer that accepted replaces its own pending upload), at most [`STALE_RETRIES`] times.
/// `first_version` is sent in the first round instead of a fresh one.
#[allow(clippy::too_many_arguments)]
async fn announce(
    st: &RouterState,
    bucket: &str,
    targets: &[PeerView],
    peer_req: &PeerPutMetadataRequest,
    group_id: &str,
    update: bool,
    replication_factor: u32,
    first_version: Option<Version>,
) -> Announced {
    let mut round = 0;
    loop {
        let version = match first_version {
            Some(v) if round == 0 => v,
            _ => st.clock.now(),
        };
        let write = Write {
            update,
            version,
            replication_factor,
        };
        let answers = futures::future::join_all(
            targets
                .iter()
                .map(|p| st.client.put_metadata(p, bucket, peer_req, group_id, write)),
        )
        .await;
        let mut accepted = Vec::new();
        let mut failure: Option<PeerError> = None;
        let mut failures = 0;
        let mut full = Vec::new();
        let mut only_stale = true;
        for (peer, answer) in targets.iter().zip(answers) {
            match answer {
                Ok(resp) => accepted.push((peer.clone(), resp.task_id)),
                Err(e) => {
                    failures += 1;
                    if e.status() == Some(StatusCode::INSUFFICIENT_STORAGE) {
                        full.push(peer.id.clone());
                    }
                    match e.version().filter(|_| e.is_stale()) {
                        Some(newer) => st.clock.observe(newer),
                        None => {
                            only_stale = false;
                            st.note_failure(&e);
                        }
                    }
                    tracing::warn!(event = "PUT.METADATA.FAILED", bucket_id = %bucket, key = %peer_req.key, peer = %peer.id, %version, error = %e);
                    failure.get_or_insert(e);
                }
            }
        }
        if failure.is_some() && only_stale && round < STALE_RETRIES {
            round += 1;
            continue;
        }
        return Announced {
            version,
            accepted,
            failure,
            failures,
            full,
        };
    }
}

/// Withdraws an announcement that will not be uploaded: each peer that accepted it drops
/// the pending upload of this group (`Task-Id`), and only that, so no committed version is
/// touched. A MictlanX peer cannot be asked for that; its pending upload expires instead.
async fn rollback(
    st: &RouterState,
    bucket: &str,
    key: &str,
    group_id: &str,
    accepted: &[(PeerView, String)],
) {
    let ours: Vec<&PeerView> = accepted
        .iter()
        .filter(|(p, task)| p.verifies_uploads && task != NOTHING_TO_UPLOAD)
        .map(|(p, _)| p)
        .collect();
    let results = futures::future::join_all(
        ours.iter()
            .map(|p| st.client.withdraw(p, bucket, key, group_id)),
    )
    .await;
    for (peer, result) in ours.into_iter().zip(results) {
        match result {
            Ok(()) => {
                tracing::info!(event = "PUT.METADATA.ROLLBACK", bucket_id = bucket, key, peer = %peer.id)
            }
            Err(e) => {
                tracing::warn!(event = "PUT.METADATA.ROLLBACK.FAILED", bucket_id = bucket, key, peer = %peer.id, error = %e)
            }
        }
    }
}

/// R2 `POST /api/v4/buckets/data/{task_id}/chunked`: the raw body, streamed to every replica.
pub(crate) async fn put_chunked(
    State(st): State<RouterState>,
    ApiPath(task_id): ApiPath<String>,
    body: Body,
) -> Result<Json<RouterPutChunkedResponse>, ApiError> {
    upload(&st, &task_id, body.into_data_stream())
        .await
        .map(Json)
}

/// R3 `POST /api/v4/buckets/data/{task_id}`: multipart, the bytes in the field `data`.
pub(crate) async fn put_multipart_in(
    st: &RouterState,
    task_id: &str,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<StatusCode, ApiError> {
    // An unknown task is a 404 whatever the body looks like.
    if st.tasks.get(task_id).is_none() {
        return Err(task_not_found(task_id));
    }
    let mut multipart = multipart?;
    loop {
        let field = multipart
            .next_field()
            .await
            .map_err(|e| ApiError::bad_request(format!("Malformed multipart body: {e}")))?;
        let Some(field) = field else {
            return Err(ApiError::bad_request(
                "The multipart body has no field named \"data\"",
            ));
        };
        if field.name() == Some("data") {
            upload(st, task_id, field).await?;
            return Ok(StatusCode::CREATED);
        }
        // Other fields are skipped; the next `next_field` drains this one.
    }
}

fn task_not_found(task_id: &str) -> ApiError {
    // Group ids are 21 url-safe characters; do not echo an arbitrary long path back.
    let shown: String = task_id.chars().take(64).collect();
    ApiError::not_found(format!("Task({shown}) not found"))
}

/// Streams one upload to the replicas of its group and reports who stored it.
///
/// # Errors
///
/// 404 unknown group; 409 the group is being uploaded by another request; 400 the body is
/// not of the declared size or checksum (nothing is stored then); 408 the client stalled;
/// 503 no replica is reachable; the common 4xx when every replica refused alike; else 502.
/// On any error the group stays, so the client can retry.
pub(crate) async fn upload<S, E>(
    st: &RouterState,
    task_id: &str,
    source: S,
) -> Result<RouterPutChunkedResponse, ApiError>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Display,
{
    let started = Instant::now();
    let lease = st.tasks.begin(task_id).map_err(|e| match e {
        BeginError::NotFound => task_not_found(task_id),
        BeginError::Busy => {
            ApiError::conflict(format!("Task({task_id}) is already being uploaded"))
        }
    })?;
    let task = lease.task().clone();
    let idle = st.config.peer_idle_timeout;

    let mut unavailable = Vec::new();
    let mut targets = Vec::new();
    for (peer_id, peer_task) in &task.upload_peers {
        match st.peers.view(peer_id) {
            Some(p) if p.up => targets.push((p, peer_task.clone())),
            Some(_) => unavailable.push(format!("{peer_id} is down")),
            None => unavailable.push(format!("{peer_id} is no longer registered")),
        }
    }
    if targets.is_empty() && task.done_peers.is_empty() {
        return Err(ApiError::unavailable(format!(
            "No replica of Task({task_id}) is reachable: {}",
            unavailable.join("; ")
        )));
    }

    let expect = upload_expectation(&task, targets.iter().map(|(p, _)| p));
    let pump_done = CancellationToken::new();
    let mut sinks = Vec::with_capacity(targets.len());
    let mut consumers = Vec::with_capacity(targets.len());
    for (peer, peer_task) in &targets {
        let (sink, body) = fanout::sink(st.config.fanout_buffer_pieces);
        let gone = sink.gone_token();
        sinks.push(sink);
        let client = st.client.clone();
        let pump_done = pump_done.clone();
        consumers.push(async move {
            let request = client.put_chunked(peer, peer_task, reqwest::Body::wrap_stream(body));
            tokio::pin!(request);
            let early = tokio::select! {
                answer = &mut request => Some(answer),
                () = pump_done.cancelled() => None,
            };
            let answer = match early {
                Some(answer) => answer,
                // The body is complete: the replica has `idle` to commit and answer.
                None => tokio::time::timeout(idle, request)
                    .await
                    .unwrap_or_else(|_| {
                        Err(PeerError::Timeout {
                            peer: peer.id.clone(),
                            what: "upload",
                        })
                    }),
            };
            gone.cancel();
            answer
        });
    }
    let pump = async {
        let report = fanout::pump(source, sinks, &expect, idle).await;
        pump_done.cancel();
        report
    };
    let (report, answers) = tokio::join!(pump, futures::future::join_all(consumers));
    st.metrics.add_bytes_in(report.bytes);

    match &report.result {
        Ok(()) | Err(PumpError::NoSinks) => {}
        Err(e @ PumpError::SourceIdle(_)) => {
            tracing::warn!(event = "PUT.DATA.ABORTED", bucket_id = %task.bucket_id, key = %task.key, reason = %e);
            return Err(ApiError::new(StatusCode::REQUEST_TIMEOUT, e.to_string()));
        }
        Err(e) => {
            tracing::warn!(event = "PUT.DATA.ABORTED", bucket_id = %task.bucket_id, key = %task.key, reason = %e);
            return Err(ApiError::bad_request(e.to_string()));
        }
    }

    let mut stored: Vec<String> = task.done_peers.clone();
    let mut failed_ids = Vec::new();
    let mut errors = Vec::new();
    for (((peer, _), answer), dropped) in targets.iter().zip(answers).zip(&report.dropped) {
        match answer {
            Ok(_) => stored.push(peer.id.clone()),
            // A newer write of the key committed there meanwhile: this write is superseded
            // on that replica, which is what last-writer-wins makes of it anyway.
            Err(e) if e.is_stale() => stored.push(peer.id.clone()),
            // Its pending upload is gone because a newer write of the key replaced it (or
            // committed) there: superseded too, not a failed replica. Copying this version
            // to a fallback peer would leave a stale extra copy behind.
            Err(e) if overtaken(st, peer, &task, &e).await => stored.push(peer.id.clone()),
            Err(e) => {
                st.note_failure(&e);
                failed_ids.push(peer.id.clone());
                let e = match dropped {
                    Some(DropReason::Stalled) => PeerError::Timeout {
                        peer: peer.id.clone(),
                        what: "upload",
                    },
                    _ => e,
                };
                tracing::warn!(event = "PUT.DATA.REPLICA.FAILED", bucket_id = %task.bucket_id, key = %task.key, peer = %peer.id, error = %e);
                errors.push(e);
            }
        }
    }
    if stored.is_empty() {
        return Err(all_refused(
            &format!("No replica stored Task({task_id})"),
            &errors,
            &unavailable,
        ));
    }
    // Full acknowledgement: every missing replica is copied to a fallback peer before the
    // client hears of success.
    if stored.len() < task.rf {
        let excluded: Vec<String> = stored.iter().chain(&failed_ids).cloned().collect();
        stored.extend(fill_to_rf(st, &task, &stored, &excluded).await);
    }
    // Replicas that failed keep only a pending record, which reads must not try.
    st.replicas.add(&task.bucket_id, &task.key, &stored);
    st.replicas
        .remove_peer(&task.bucket_id, &task.key, &failed_ids);
    st.peers.release(&task.reserved_peers, task.size);
    // The peers' pending uploads are used up either way: a retry starts again at R1.
    lease.complete();
    if stored.len() < task.rf {
        let mut reasons: Vec<String> = unavailable;
        reasons.extend(errors.iter().map(ToString::to_string));
        tracing::warn!(event = "PUT.DATA.UNDER.REPLICATED", bucket_id = %task.bucket_id, key = %task.key, stored = ?stored, rf = task.rf);
        return Err(ApiError::unavailable(format!(
            "{}@{}: only {} of {} replicas stored ({}); put it again",
            task.bucket_id,
            task.key,
            stored.len(),
            task.rf,
            reasons.join("; ")
        )));
    }
    let response_time = started.elapsed().as_secs_f64();
    tracing::info!(
        event = "PUT.DATA",
        bucket_id = %task.bucket_id,
        key = %task.key,
        size = task.size,
        peers = ?stored,
        failed = ?failed_ids,
        response_time
    );
    Ok(RouterPutChunkedResponse {
        combined_key: format!("{}@{}", task.bucket_id, task.key),
        peer_ids: stored,
        bucket_id: task.bucket_id.clone(),
        key: task.key.clone(),
        size: task.size,
    })
}

/// Whether an upload refused with 404 (task not found) was overtaken on `peer`: the peer
/// holds (or waits for) a newer version of the key, or deleted it at one.
async fn overtaken(st: &RouterState, peer: &PeerView, task: &UploadTask, e: &PeerError) -> bool {
    if e.status() != Some(StatusCode::NOT_FOUND) {
        return false;
    }
    match st.client.key_report(peer, &task.bucket_id, &task.key).await {
        Ok(KeyReport::Present { version, .. }) | Ok(KeyReport::Deleted(version)) => {
            version > task.version
        }
        Ok(KeyReport::Absent) | Err(_) => false,
    }
}

/// Copies the object of `task` from a replica that stored it to the next peers of its
/// placement order until it has `task.rf` replicas; returns the peers that got a copy.
/// `excluded` are the peers that hold it or just failed it.
async fn fill_to_rf(
    st: &RouterState,
    task: &UploadTask,
    stored: &[String],
    excluded: &[String],
) -> Vec<String> {
    let hash = placement::key_hash(&task.bucket_id, &task.key);
    let sources = st.peers.up_views(stored);
    let mut excluded = excluded.to_vec();
    let mut added = Vec::new();
    while stored.len() + added.len() < task.rf {
        let Ok(next) = placement::choose(&st.peers.candidates(), hash, &excluded, 1, task.size)
        else {
            break;
        };
        let Some(target) = next.first().and_then(|id| st.peers.view(id)) else {
            break;
        };
        excluded.push(target.id.clone());
        for source in &sources {
            match copy_replica(st, source, &target, &task.bucket_id, &task.metadata).await {
                // A newer write replaced this one at the source: it is overtaken, and a
                // copy now would be of the wrong bytes.
                Ok(Copied::SourceChanged) => return added,
                Ok(_) => {
                    tracing::info!(event = "PUT.DATA.FALLBACK", bucket_id = %task.bucket_id, key = %task.key, from = %source.id, to = %target.id);
                    added.push(target.id.clone());
                    break;
                }
                Err(e) => {
                    st.note_failure(&e);
                    tracing::warn!(event = "PUT.DATA.FALLBACK.FAILED", bucket_id = %task.bucket_id, key = %task.key, from = %source.id, to = %target.id, error = %e);
                }
            }
        }
    }
    added
}

/// Refuses (400) a body that names another bucket than the path.
fn same_bucket(bucket: &BucketId, req: &PutMetadataRequest) -> Result<(), ApiError> {
    let body_bucket = BucketId::new(req.bucket_id.as_str())?;
    if *bucket != body_bucket {
        return Err(ApiError::bad_request(format!(
            "Bucket ID mismatch: {bucket} != {body_bucket}"
        )));
    }
    Ok(())
}

/// The body's ball id, checked; the key when the body names none.
fn ball_id_or_key(req: &PutMetadataRequest, key: &Key) -> Result<String, ApiError> {
    if req.ball_id.is_empty() {
        Ok(key.to_string())
    } else {
        Ok(BallId::new(req.ball_id.as_str())?.into_inner())
    }
}

/// What the peers are sent for a client's put-metadata, with the checked ids.
fn peer_request(
    req: PutMetadataRequest,
    bucket: &str,
    key: &str,
    ball_id: String,
) -> PeerPutMetadataRequest {
    PeerPutMetadataRequest {
        key: key.to_string(),
        size: req.size,
        checksum: req.checksum,
        tags: req.tags,
        producer_id: req.producer_id,
        content_type: req.content_type,
        ball_id,
        bucket_id: bucket.to_string(),
        is_disable: req.is_disabled,
    }
}

/// R11 `POST /api/v4/u/buckets/{bucket_id}/{key}`: new metadata for the same bytes, sent
/// with `Update: 1` to every healthy replica.
///
/// A body whose size or checksum differs from the stored object is refused with 409: this
/// endpoint cannot carry bytes, and the peers would otherwise wait for an upload that never
/// comes. Put the object again with `Update: 1` instead.
pub(crate) async fn update_metadata(
    State(st): State<RouterState>,
    ApiPath((bucket, key)): ApiPath<(BucketId, Key)>,
    ApiJson(req): ApiJson<PutMetadataRequest>,
) -> Result<StatusCode, ApiError> {
    let started = Instant::now();
    same_bucket(&bucket, &req)?;
    let body_key = Key::new(req.key.as_str())?;
    if key != body_key {
        return Err(ApiError::bad_request(format!(
            "Key mismatch: {key} != {body_key}"
        )));
    }
    let ball_id = ball_id_or_key(&req, &key)?;
    st.require_healthy()?;
    let (_, current) = super::super::read::read_metadata(
        &st,
        &bucket,
        &key,
        ApiError::not_found(format!("{bucket}@{key} not found")),
    )
    .await?;
    if current.metadata.size != req.size || current.metadata.checksum != req.checksum {
        return Err(ApiError::conflict(format!(
            "{bucket}@{key}: the update changes the size or checksum; put the object again with Update: 1"
        )));
    }
    let replicas = st.peers.up_views(&locate(&st, &bucket, &key).await);
    let peer_req = peer_request(req, &bucket, &key, ball_id);
    let group_id = new_group_id();
    // 0: the replicas keep the replication factor they have.
    let announced = announce(&st, &bucket, &replicas, &peer_req, &group_id, true, 0, None).await;
    let mut updated = Vec::new();
    for (peer, task_id) in &announced.accepted {
        if task_id != NOTHING_TO_UPLOAD {
            tracing::warn!(event = "UPDATE.METADATA.UNEXPECTED.TASK", bucket_id = %bucket, key = %key, peer = %peer.id, task_id = %task_id);
        }
        updated.push(peer.id.clone());
    }
    if updated.is_empty() {
        let errors: Vec<PeerError> = announced.failure.into_iter().collect();
        return Err(all_refused(
            &format!("No replica of {bucket}@{key} was updated"),
            &errors,
            &[],
        ));
    }
    tracing::info!(event = "UPDATE.METADATA", bucket_id = %bucket, key = %key, peers = ?updated, response_time = started.elapsed().as_secs_f64());
    Ok(StatusCode::NO_CONTENT)
}

/// What the router checks of an upload's bytes on their way: always the size; the declared
/// SHA-256 only when some replica would not check it. Our peers hash what they receive
/// (transit included) and refuse a mismatch, so hashing here too would be one more pass
/// over every byte for nothing; a MictlanX peer is not known to, so the router does.
fn upload_expectation<'a>(
    task: &UploadTask,
    targets: impl Iterator<Item = &'a PeerView>,
) -> Expect {
    let mut targets = targets;
    let every_target_verifies = targets.all(|p| p.verifies_uploads);
    Expect {
        size: Some(task.size),
        sha256: (is_sha256_hex(&task.checksum) && !every_target_verifies)
            .then(|| task.checksum.to_ascii_lowercase()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(id: &str, verifies_uploads: bool) -> PeerView {
        PeerView {
            id: id.to_string(),
            base_url: format!("http://{id}"),
            up: true,
            verifies_uploads,
        }
    }

    fn task(checksum: &str) -> UploadTask {
        UploadTask {
            group_id: "g".into(),
            bucket_id: "b".into(),
            key: "k".into(),
            size: 3,
            checksum: checksum.into(),
            upload_peers: Vec::new(),
            done_peers: Vec::new(),
            reserved_peers: Vec::new(),
            rf: 1,
            version: Version::ZERO,
            metadata: Default::default(),
        }
    }

    #[test]
    fn the_router_hashes_uploads_unless_every_replica_does() {
        let sha = mictlanx::checksum::sha256_hex(b"abc");
        let ours = [peer("a", true), peer("b", true)];
        let mixed = [peer("a", true), peer("legacy", false)];
        let t = task(&sha.to_uppercase());
        assert_eq!(upload_expectation(&t, ours.iter()).sha256, None);
        assert_eq!(upload_expectation(&t, mixed.iter()).sha256, Some(sha));
        assert_eq!(upload_expectation(&t, mixed.iter()).size, Some(3));
        // A label is never hashed; the size always counts.
        let label = task("abc");
        assert_eq!(upload_expectation(&label, mixed.iter()).sha256, None);
    }
}
