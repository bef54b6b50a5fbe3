//! Writes: put-metadata (R1), the data upload (R2 streamed, R3 multipart) and the
//! metadata update (R11).

use std::collections::HashSet;
use std::time::Instant;

use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use bytes::Bytes;
use futures::Stream;
use mictlanx::checksum::is_sha256_hex;
use mictlanx::id::{validate, IdKind};
use mictlanx::model::{
    PeerPutMetadataRequest, PutMetadataRequest, PutMetadataResponse, RouterPutChunkedResponse,
};
use tokio_util::sync::CancellationToken;

use crate::error::{ApiError, ApiJson, ApiPath};

use super::super::fanout::{self, DropReason, Expect, PumpError};
use super::super::headers::{flag, UPDATE};
use super::super::lookup::{ask_all, locate};
use super::super::peer_client::PeerError;
use super::super::peers::PeerView;
use super::super::placement;
use super::super::state::RouterState;
use super::super::tasks::{new_group_id, BeginError, UploadTask};
use super::{all_refused, bucket_and_key, put_metadata_error};

/// What a peer answers in `task_id` when it already holds exactly these bytes and only the
/// metadata changed: nothing to upload.
const NOTHING_TO_UPLOAD: &str = "0";

/// R1 `POST /api/v4/buckets/{bucket_id}/metadata`.
pub(crate) async fn put_metadata(
    State(st): State<RouterState>,
    ApiPath(bucket): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<PutMetadataRequest>,
) -> Result<Json<PutMetadataResponse>, ApiError> {
    put_metadata_in(&st, &bucket, &headers, req).await.map(Json)
}

/// R1 for a bucket given by the caller (also reached through `POST /buckets/data/metadata`).
///
/// Placement: the healthy peers already holding the key are targets again (the peer judges
/// whether the same bytes are being put again, or refuses different ones with 409 unless
/// `Update: 1`), and new peers are chosen for the remaining replicas. The original instead
/// put every request on peers not holding the key, so a client retrying a put got its chunk
/// stored twice or a 666.
pub(crate) async fn put_metadata_in(
    st: &RouterState,
    raw_bucket: &str,
    headers: &HeaderMap,
    req: PutMetadataRequest,
) -> Result<PutMetadataResponse, ApiError> {
    let started = Instant::now();
    let bucket = validate(IdKind::Bucket, raw_bucket)?;
    same_bucket(&bucket, &req)?;
    let key = validate(IdKind::Key, &req.key)?;
    let ball_id = ball_id_or_key(&req, &key)?;
    if req.replication_factor == 0 {
        return Err(ApiError::bad_request(
            "replication_factor must be at least 1",
        ));
    }
    let rf = usize::try_from(req.replication_factor).unwrap_or(usize::MAX);
    let update = flag(headers, UPDATE, false);
    st.require_healthy()?;

    let (holders, new) = holders_and_new(st, &bucket, &key, rf, req.size).await?;
    st.peers.reserve(&new, req.size);
    let targets: Vec<PeerView> = holders
        .into_iter()
        .chain(new.iter().filter_map(|id| st.peers.view(id)))
        .collect();

    let group_id = new_group_id();
    let size = req.size;
    let checksum = req.checksum.clone();
    let peer_req = peer_request(req, &bucket, &key, ball_id);
    let answers = futures::future::join_all(targets.iter().map(|p| {
        st.client
            .put_metadata(p, &bucket, &peer_req, &group_id, update)
    }))
    .await;

    let mut accepted = Vec::new();
    let mut failure: Option<PeerError> = None;
    for (peer, answer) in targets.iter().zip(answers) {
        match answer {
            Ok(resp) => accepted.push((peer.clone(), resp.task_id)),
            Err(e) => {
                st.note_failure(&e);
                tracing::warn!(event = "PUT.METADATA.FAILED", bucket_id = %bucket, key = %key, peer = %peer.id, error = %e);
                failure.get_or_insert(e);
            }
        }
    }
    if let Some(e) = failure {
        rollback(st, &bucket, &key, &accepted, &new).await;
        st.peers.release(&new, size);
        return Err(put_metadata_error(&e));
    }

    let (done, upload): (Vec<_>, Vec<_>) = accepted
        .iter()
        .cloned()
        .partition(|(_, task_id)| task_id == NOTHING_TO_UPLOAD);
    let replicas: Vec<String> = targets.iter().map(|p| p.id.clone()).collect();
    let task = UploadTask {
        group_id: group_id.clone(),
        bucket_id: bucket.clone(),
        key: key.clone(),
        size,
        checksum,
        upload_peers: upload.into_iter().map(|(p, t)| (p.id, t)).collect(),
        done_peers: done.into_iter().map(|(p, _)| p.id).collect(),
        reserved_peers: new.clone(),
    };
    if st.tasks.insert(task).is_err() {
        rollback(st, &bucket, &key, &accepted, &new).await;
        st.peers.release(&new, size);
        return Err(ApiError::unavailable(
            "Too many uploads are pending; try again later",
        ));
    }
    // The key exists from now on (metadata GET, disable and delete must find it).
    st.replicas.add(&bucket, &key, &replicas);
    let service_time = started.elapsed().as_secs_f64();
    tracing::info!(
        event = "PUT.METADATA",
        bucket_id = %bucket,
        key = %key,
        size,
        replicas = ?replicas,
        update,
        group_id = %group_id,
        response_time = service_time
    );
    Ok(PutMetadataResponse {
        key,
        service_time,
        tasks_ids: vec![group_id],
        bucket_id: bucket,
        replicas,
        extra: Default::default(),
    })
}

/// The healthy peers holding the key, and the new peers chosen for the missing replicas.
///
/// When the replica map knows a healthy holder, that is the answer (as for reads). Otherwise
/// the new replicas are placed first and only the *other* healthy peers are asked whether
/// they hold the key: a chosen peer that holds it answers the announcement itself (the same
/// bytes are accepted again, other bytes refused with 409 unless `Update`), so asking it as
/// well would cost one more call per replica and tell nothing. A holder found among the
/// others becomes a target again and the placement is redone around it.
///
/// # Errors
///
/// [`ApiError::no_available_peers`] (with every holder found) when too few peers can take
/// the missing replicas.
async fn holders_and_new(
    st: &RouterState,
    bucket: &str,
    key: &str,
    rf: usize,
    size: u64,
) -> Result<(Vec<PeerView>, Vec<String>), ApiError> {
    let known = st.replicas.get(bucket, key);
    let knows_a_healthy_holder = known
        .iter()
        .any(|id| st.peers.view(id).is_some_and(|p| p.up));
    let all = if knows_a_healthy_holder {
        known
    } else {
        match placement::choose(&st.peers.candidates(), &known, rf, size) {
            Ok(tentative) => {
                let mut exclude: HashSet<String> = known.iter().cloned().collect();
                exclude.extend(tentative.iter().cloned());
                let found = ask_all(st, bucket, key, &exclude).await;
                if found.is_empty() {
                    let holders = st.peers.up_views(&known);
                    return Ok((holders, tentative));
                }
                known
                    .into_iter()
                    .chain(found.into_iter().map(|p| p.id))
                    .collect()
            }
            // Too few peers for a fresh placement: find every holder, for the error and for
            // the client's check of an identical re-put.
            Err(_) => locate(st, bucket, key).await,
        }
    };
    let holders = st.peers.up_views(&all);
    let new = placement::choose(
        &st.peers.candidates(),
        &all,
        rf.saturating_sub(holders.len()),
        size,
    )
    .map_err(|_| ApiError::no_available_peers(bucket, key, all.clone()))?;
    Ok((holders, new))
}

/// Undoes an announcement on the peers chosen for new replicas that accepted it.
///
/// Peers that already held the key are left alone: deleting there would destroy an existing
/// replica. A chosen peer was not asked beforehand (see [`holders_and_new`]), so each one is
/// asked now, on this rare path: one that reports the key committed held it before (the
/// announcement only added a pending upload, which its sweeper expires). A MictlanX peer
/// does not say whether a key is pending, so its announcement is left to expire as well.
async fn rollback(
    st: &RouterState,
    bucket: &str,
    key: &str,
    accepted: &[(PeerView, String)],
    new: &[String],
) {
    let chosen: Vec<&PeerView> = accepted
        .iter()
        .filter(|(p, _)| new.contains(&p.id))
        .map(|(p, _)| p)
        .collect();
    let states = futures::future::join_all(
        chosen
            .iter()
            .map(|p| st.client.get_metadata(p, bucket, key)),
    )
    .await;
    let undo: Vec<&PeerView> = chosen
        .into_iter()
        .zip(states)
        .filter(|(_, state)| !matches!(state, Ok(Some((_, false)))))
        .map(|(p, _)| p)
        .collect();
    let results =
        futures::future::join_all(undo.iter().map(|p| st.client.delete(p, bucket, key, true)))
            .await;
    for (peer, result) in undo.into_iter().zip(results) {
        match result {
            Ok(_) => {
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

    // Replicas that failed keep only a pending record, which reads must not try.
    st.replicas.add(&task.bucket_id, &task.key, &stored);
    st.replicas
        .remove_peer(&task.bucket_id, &task.key, &failed_ids);
    st.peers.release(&task.reserved_peers, task.size);
    lease.complete();
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

/// Refuses (400) a body that names another bucket than the path.
fn same_bucket(bucket: &str, req: &PutMetadataRequest) -> Result<(), ApiError> {
    let body_bucket = validate(IdKind::Bucket, &req.bucket_id)?;
    if bucket != body_bucket {
        return Err(ApiError::bad_request(format!(
            "Bucket ID mismatch: {bucket} != {body_bucket}"
        )));
    }
    Ok(())
}

/// The body's ball id, validated and sanitised; the key when the body names none.
fn ball_id_or_key(req: &PutMetadataRequest, key: &str) -> Result<String, ApiError> {
    if req.ball_id.is_empty() {
        Ok(key.to_string())
    } else {
        Ok(validate(IdKind::Ball, &req.ball_id)?)
    }
}

/// What the peers are sent for a client's put-metadata, with the sanitised ids.
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
    ApiPath((bucket, key)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<PutMetadataRequest>,
) -> Result<StatusCode, ApiError> {
    let started = Instant::now();
    let (bucket, key) = bucket_and_key(&bucket, &key)?;
    same_bucket(&bucket, &req)?;
    let body_key = validate(IdKind::Key, &req.key)?;
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
    let mut updated = Vec::new();
    let errors = st
        .ask_each(
            &replicas,
            |p| st.client.put_metadata(p, &bucket, &peer_req, &group_id, true),
            |peer, resp| {
                if resp.task_id != NOTHING_TO_UPLOAD {
                    tracing::warn!(event = "UPDATE.METADATA.UNEXPECTED.TASK", bucket_id = %bucket, key = %key, peer = %peer.id, task_id = %resp.task_id);
                }
                updated.push(peer.id.clone());
            },
        )
        .await;
    if updated.is_empty() {
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
            in_flight: 0,
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
