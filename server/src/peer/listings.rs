//! The peer's listings, bounded: stats (PS1), `xballs` (PS4), `xballs/size` (PS5), the
//! peer state (PS6) and a bucket's keys (PM3). Each takes a slot of the peer's
//! [`ListingGate`](crate::paging::ListingGate), answers one page for `limit` /
//! `continuation_token`, and streams the whole listing a page at a time otherwise.

use mictlanx::id::BucketId;
use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use mictlanx::model::{BallBasicData, BallLocations, BallSizeTuple, NodeInfo, PeerBucketMetadata};
use serde::Serialize;

use super::state::PeerState;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::paging::{encode_token, page_headers, JsonStream, ListMode, ListQuery, MAX_LIMIT};
use crate::storage::ObjectRecord;

/// `bucket\0key` of a record: the cursor of the listings across buckets.
fn cursor(r: &ObjectRecord) -> String {
    format!("{}\0{}", r.metadata.bucket_id, r.metadata.key)
}

fn json_text<T: Serialize + ?Sized>(v: &T) -> Result<String, ApiError> {
    serde_json::to_string(v).map_err(|e| ApiError::internal("listing", e))
}

/// A listing of every committed object: `prefix`, one entry per object (`entry` gives an
/// array element, or an object member when it names a key), `suffix`.
async fn objects_listing<E, T>(
    st: &PeerState,
    q: &ListQuery,
    prefix: String,
    suffix: String,
    entry: E,
) -> Result<Response, ApiError>
where
    E: Fn(ObjectRecord) -> (Option<String>, T) + Send + 'static,
    T: Serialize + Send + Sync,
{
    let mode = q.mode()?;
    let slot = st.listings.enter().await?;
    let (after, limit, whole, mut skip, mut left) = match mode {
        ListMode::Page { limit, after } => (after, limit, false, 0, None),
        ListMode::Whole { start, end } => (
            None,
            MAX_LIMIT,
            true,
            start,
            end.map(|e| e.saturating_sub(start)),
        ),
    };
    // The first page is read before answering, so that a storage error is a status.
    let (first, mut more) = st.store.objects_page(after, limit).await?;
    let next = (!whole && more)
        .then(|| first.last().map(|r| encode_token(&cursor(r))))
        .flatten();
    let headers = page_headers(next.as_deref());
    let store = st.store.clone();
    Ok(JsonStream::respond(headers, move |mut out| async move {
        let _slot = slot;
        let mut page = first;
        if out.raw(prefix.as_bytes()).await.is_err() {
            return;
        }
        loop {
            let last = page.last().map(cursor);
            for rec in page {
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                if left == Some(0) {
                    break;
                }
                left = left.map(|n| n - 1);
                let (key, value) = entry(rec);
                let wrote = match key {
                    Some(k) => out.member(&k, &value).await,
                    None => out.element(&value).await,
                };
                if wrote.is_err() {
                    return;
                }
            }
            if !whole || !more || left == Some(0) {
                break;
            }
            match store.objects_page(last, MAX_LIMIT).await {
                Ok((p, m)) => (page, more) = (p, m),
                Err(e) => return out.fail(e).await,
            }
        }
        if out.raw(suffix.as_bytes()).await.is_ok() {
            out.finish().await;
        }
    }))
}

/// PS1 `GET /api/v4/stats`: exactly the seven `PeerStats` fields (the Python client
/// rejects extras, so paging travels in headers only).
pub(crate) async fn stats(
    State(st): State<PeerState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let u = st.store.usage();
    let peers: Vec<String> = st.nodes.all().into_iter().map(|n| n.id).collect();
    let prefix = format!(
        r#"{{"peer_id":{},"used_disk":{},"total_disk":{},"available_disk":{},"disk_uf":{},"balls":["#,
        json_text(&*st.id)?,
        u.used(),
        u.capacity,
        u.free(),
        json_text(&u.utilisation())?,
    );
    let suffix = format!(r#"],"peers":{}}}"#, json_text(&peers)?);
    objects_listing(&st, &q, prefix, suffix, |r| (None, r.metadata)).await
}

/// PS4 `GET /api/v4/xballs`: `[{bucket_id, key, size}]`.
pub(crate) async fn xballs(
    State(st): State<PeerState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    objects_listing(&st, &q, "[".into(), "]".into(), |r| {
        let ball = BallBasicData {
            bucket_id: r.metadata.bucket_id,
            key: r.metadata.key,
            size: r.stored_size,
        };
        (None, ball)
    })
    .await
}

/// PS5 `GET /api/v4/xballs/size`: `[[bucket_id, key, size]]`.
pub(crate) async fn xballs_size(
    State(st): State<PeerState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    objects_listing(&st, &q, "[".into(), "]".into(), |r| {
        let size = BallSizeTuple(r.metadata.bucket_id, r.metadata.key, r.stored_size);
        (None, size)
    })
    .await
}

/// PS6 `GET /api/v4/peers/state`: known nodes, and `bucket@key` → this peer.
pub(crate) async fn peers_state(
    State(st): State<PeerState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let nodes: Vec<NodeInfo> = st
        .nodes
        .all()
        .into_iter()
        .map(|n| NodeInfo {
            node_id: n.id,
            ip_addr: n.ip_addr,
            port: n.port,
        })
        .collect();
    let prefix = format!(r#"{{"nodes":{},"balls":{{"#, json_text(&nodes)?);
    let id = st.id.to_string();
    objects_listing(&st, &q, prefix, "}}".into(), move |r| {
        let locations = BallLocations {
            locations: vec![id.clone()],
            size: r.stored_size,
        };
        let name = format!("{}@{}", r.metadata.bucket_id, r.metadata.key);
        (Some(name), locations)
    })
    .await
}

/// PM3 `GET /api/v4/buckets/{bucket_id}/metadata`: the bucket's keys with their versions,
/// and its tombstones. A page also says `is_truncated` and `next_continuation_token` in
/// the body; the whole listing streams its records and then their versions.
pub(crate) async fn bucket(
    State(st): State<PeerState>,
    ApiPath(bucket_id): ApiPath<BucketId>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let mode = q.mode()?;
    let slot = st.listings.enter().await?;
    let (after, limit, whole) = match mode {
        ListMode::Page { limit, after } => (after, limit, false),
        // Offsets mean nothing to this route (the original has none): the whole bucket.
        ListMode::Whole { .. } => (None, MAX_LIMIT, true),
    };
    let page = st.store.bucket_page(&bucket_id, after, limit).await?;
    if !whole {
        let last = page
            .objects
            .last()
            .map(|o| o.metadata.key.as_str())
            .max(page.tombstones.last().map(|(k, _)| k.as_str()));
        let next = page.more.then(|| last.map(encode_token)).flatten();
        let body = PeerBucketMetadata {
            peer_id: st.id.to_string(),
            versions: page
                .objects
                .iter()
                .map(|o| (o.metadata.key.clone(), o.version.to_string()))
                .collect(),
            tombstones: page
                .tombstones
                .into_iter()
                .map(|(key, t)| (key, t.version.to_string()))
                .collect(),
            balls: page.objects.into_iter().map(|o| o.metadata).collect(),
            is_truncated: next.is_some(),
            next_continuation_token: next.clone(),
        };
        drop(slot);
        return Ok((
            axum::response::AppendHeaders(page_headers(next.as_deref())),
            ApiJson(body),
        )
            .into_response());
    }
    let prefix = format!(r#"{{"peer_id":{},"balls":["#, json_text(&*st.id)?);
    let store = st.store.clone();
    Ok(JsonStream::respond(
        page_headers(None),
        move |mut out| async move {
            let _slot = slot;
            // Versions are short; they are kept until the records are out, then written.
            let mut versions = BTreeMap::new();
            let mut tombstones = BTreeMap::new();
            let mut page = page;
            if out.raw(prefix.as_bytes()).await.is_err() {
                return;
            }
            loop {
                let last = page
                    .objects
                    .last()
                    .map(|o| o.metadata.key.clone())
                    .max(page.tombstones.last().map(|(k, _)| k.clone()));
                for (key, t) in page.tombstones {
                    tombstones.insert(key, t.version.to_string());
                }
                for o in page.objects {
                    versions.insert(o.metadata.key.clone(), o.version.to_string());
                    if out.element(&o.metadata).await.is_err() {
                        return;
                    }
                }
                if !page.more {
                    break;
                }
                match store.bucket_page(&bucket_id, last, MAX_LIMIT).await {
                    Ok(p) => page = p,
                    Err(e) => return out.fail(e).await,
                }
            }
            let tail = (|| -> serde_json::Result<String> {
                Ok(format!(
                    r#"],"versions":{},"tombstones":{},"is_truncated":false}}"#,
                    serde_json::to_string(&versions)?,
                    serde_json::to_string(&tombstones)?
                ))
            })();
            match tail {
                Ok(t) if out.raw(t.as_bytes()).await.is_ok() => out.finish().await,
                Ok(_) => {}
                Err(e) => out.fail(e).await,
            }
        },
    ))
}
