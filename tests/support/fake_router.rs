//! A fake MictlanX router (R1–R10) over an in-memory store, for fault tests: a `faults`
//! closure sees every request first (with how many times its route was hit) and may answer
//! instead of the store.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use mictlanx::model::{
    BallMetadata, DeletedByBallIdResponse, DeletedByKeyResponse, GetMetadataResponse, Metadata,
    PutMetadataRequest, PutMetadataResponse, RouterBucketMetadata, RouterPutChunkedResponse,
};

use super::{Request, Response, ScriptedServer};

/// A fault script: `(request, nth hit of the same method+path, 1-based)` → an answer, or
/// `None` to let the store answer.
pub type Faults = Arc<dyn Fn(&Request, usize) -> Option<Response> + Send + Sync>;

#[derive(Default)]
pub struct Store {
    /// (bucket, key) → metadata.
    pub metadata: BTreeMap<(String, String), Metadata>,
    /// (bucket, key) → bytes.
    pub data: BTreeMap<(String, String), Vec<u8>>,
    tasks: BTreeMap<String, (String, String, u32)>,
    hits: BTreeMap<(String, String), usize>,
}

pub struct FakeRouter {
    pub server: ScriptedServer,
    pub store: Arc<Mutex<Store>>,
}

impl FakeRouter {
    /// A router over `peers` fake peers (replication factors above it get the 666 answer).
    pub async fn start(peers: u32, faults: Option<Faults>) -> Self {
        let store = Arc::new(Mutex::new(Store::default()));
        let handler_store = Arc::clone(&store);
        let next_task = Arc::new(AtomicU64::new(0));
        let server = ScriptedServer::start(move |req| {
            let nth = {
                let mut s = handler_store.lock().unwrap();
                let hits = s
                    .hits
                    .entry((req.method.clone(), req.path.clone()))
                    .or_insert(0);
                *hits += 1;
                *hits
            };
            if let Some(f) = &faults {
                if let Some(answer) = f(req, nth) {
                    return answer;
                }
            }
            let task = next_task.fetch_add(1, Ordering::SeqCst);
            answer(&handler_store, peers, req, task)
        })
        .await;
        Self { server, store }
    }

    pub fn uri(&self) -> String {
        self.server.uri("fake-router")
    }

    /// Keys stored in `bucket` (metadata), sorted.
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        self.store
            .lock()
            .unwrap()
            .metadata
            .keys()
            .filter(|(b, _)| b == bucket)
            .map(|(_, k)| k.clone())
            .collect()
    }

    pub fn metadata(&self, bucket: &str, key: &str) -> Option<Metadata> {
        self.store
            .lock()
            .unwrap()
            .metadata
            .get(&(bucket.to_owned(), key.to_owned()))
            .cloned()
    }
}

fn segments(path: &str) -> Vec<String> {
    let path = path.split('?').next().unwrap_or("");
    path.trim_start_matches('/')
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

fn peer_ids(n: u32) -> Vec<String> {
    (0..n).map(|i| format!("peer-{i}")).collect()
}

fn answer(store: &Mutex<Store>, peers: u32, req: &Request, task: u64) -> Response {
    let seg = segments(&req.path);
    let seg: Vec<&str> = seg.iter().map(String::as_str).collect();
    let mut s = store.lock().unwrap();
    match (req.method.as_str(), seg.as_slice()) {
        ("GET", ["health"]) => Response::empty(200),
        // R2
        ("POST", ["api", "v4", "buckets", "data", task_id, "chunked"]) => {
            let Some((bucket, key, rf)) = s.tasks.remove(*task_id) else {
                return Response::detail(500, "task not found");
            };
            let size = req.body.len() as u64;
            s.data
                .insert((bucket.clone(), key.clone()), req.body.clone());
            Response::json(
                200,
                &RouterPutChunkedResponse {
                    peer_ids: peer_ids(rf),
                    combined_key: format!("{bucket}@{key}"),
                    bucket_id: bucket,
                    key,
                    size,
                },
            )
        }
        // R1
        ("POST", ["api", "v4", "buckets", bucket, "metadata"]) => {
            let put: PutMetadataRequest = serde_json::from_slice(&req.body).unwrap();
            let id = (bucket.to_string(), put.key.clone());
            if put.replication_factor > peers || s.metadata.contains_key(&id) {
                let holders = if s.metadata.contains_key(&id) {
                    peer_ids(peers)
                } else {
                    Vec::new()
                };
                return Response::json(
                    404,
                    &serde_json::json!({"detail": {"msg": "No available peers.",
                        "suggestion": "Add more peers or delete replicas.", "bucket_id": bucket,
                        "key": put.key, "replicas": holders, "code": 666}}),
                );
            }
            let task_id = format!("task-{task}");
            s.tasks.insert(
                task_id.clone(),
                (bucket.to_string(), put.key.clone(), put.replication_factor),
            );
            let meta = Metadata {
                key: put.key.clone(),
                size: put.size,
                checksum: put.checksum,
                tags: put.tags,
                content_type: put.content_type,
                producer_id: put.producer_id,
                ball_id: put.ball_id,
                bucket_id: bucket.to_string(),
                is_disabled: false,
            };
            s.metadata.insert(id, meta);
            Response::json(
                200,
                &PutMetadataResponse {
                    key: put.key,
                    service_time: 0.001,
                    tasks_ids: vec![task_id],
                    bucket_id: bucket.to_string(),
                    replicas: peer_ids(put.replication_factor),
                    extra: Default::default(),
                },
            )
        }
        // R7
        ("GET", ["api", "v4", "buckets", bucket, "metadata"]) => {
            let balls: Vec<Metadata> = s
                .metadata
                .iter()
                .filter(|((b, _), _)| b == bucket)
                .map(|(_, m)| m.clone())
                .collect();
            // Listed once per peer, as the original router does.
            let balls = (0..peers).flat_map(|_| balls.clone()).collect();
            Response::json(
                200,
                &RouterBucketMetadata {
                    bucket_id: bucket.to_string(),
                    peers_ids: peer_ids(peers),
                    balls,
                    is_truncated: false,
                    next_continuation_token: None,
                },
            )
        }
        // R6
        ("GET", ["api", "v4", "buckets", bucket, "metadata", ball, "chunks"]) => {
            let chunks: Vec<Metadata> = s
                .metadata
                .iter()
                .filter(|((b, _), m)| b == bucket && m.ball_id == *ball)
                .map(|(_, m)| m.clone())
                .collect();
            if chunks.is_empty() {
                return Response::detail(404, &format!("{bucket}@{ball} not found"));
            }
            let size_bytes = chunks.iter().map(|c| c.size).sum();
            let checksum = chunks[0].full_checksum().unwrap_or("").to_owned();
            Response::json(
                200,
                &BallMetadata {
                    bucket_id: bucket.to_string(),
                    ball_id: ball.to_string(),
                    size: format!("{size_bytes} bytes"),
                    size_bytes,
                    checksum,
                    chunks,
                },
            )
        }
        // R4
        ("GET", ["api", "v4", "buckets", bucket, "metadata", key]) => {
            match s.metadata.get(&(bucket.to_string(), key.to_string())) {
                Some(m) => Response::json(
                    200,
                    &GetMetadataResponse {
                        service_time: 1,
                        peer_id: "peer-0".into(),
                        local_peer_id: "peer-0".into(),
                        metadata: m.clone(),
                    },
                ),
                None => Response::detail(404, &format!("No metadata found for {bucket}@{key}")),
            }
        }
        // R10
        ("POST", ["api", "v4", "buckets", bucket, key, "disable"]) => {
            match s.metadata.get_mut(&(bucket.to_string(), key.to_string())) {
                Some(m) => {
                    m.is_disabled = true;
                    Response::empty(204)
                }
                None => Response::detail(404, "not found"),
            }
        }
        // R5
        ("GET", ["api", "v4", "buckets", bucket, key]) => {
            match s.data.get(&(bucket.to_string(), key.to_string())) {
                Some(d) => Response::bytes(200, d.clone()),
                None => Response::detail(404, &format!("{bucket}@{key} not found")),
            }
        }
        // R9
        ("DELETE", ["api", "v4", "buckets", bucket, "bid", ball]) => {
            let keys: Vec<(String, String)> = s
                .metadata
                .iter()
                .filter(|((b, _), m)| b == bucket && m.ball_id == *ball)
                .map(|(k, _)| k.clone())
                .collect();
            for k in &keys {
                s.metadata.remove(k);
                s.data.remove(k);
            }
            Response::json(
                200,
                &DeletedByBallIdResponse {
                    n_deletes: keys.len() as i64,
                    ball_id: ball.to_string(),
                },
            )
        }
        // R8
        ("DELETE", ["api", "v4", "buckets", bucket, key]) => {
            let id = (bucket.to_string(), key.to_string());
            if s.metadata.remove(&id).is_none() {
                return Response::detail(404, &format!("{bucket}@{key} not found"));
            }
            s.data.remove(&id);
            Response::json(
                200,
                &DeletedByKeyResponse {
                    n_deletes: 1,
                    key: key.to_string(),
                },
            )
        }
        _ => Response::detail(404, "Not Found"),
    }
}
