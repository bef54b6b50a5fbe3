//! Wire types of the MictlanX API v4: what routers and peers send and receive.
//!
//! Field names are exactly those on the wire, odd ones included (`tasks_ids`, the peer's
//! `is_disable`, the router listing's `peers_ids`), so that this crate's client talks to a
//! MictlanX router and the published Python client talks to ours. The server crate uses these
//! same types; they live here so that the SDK never depends on the server.
//!
//! Deserialisation is lenient where the original is: fields the references list as optional
//! get their documented defaults, and unknown fields are ignored. Serialisation always emits
//! every field.
//!
//! # Examples
//!
//! ```
//! use mictlanx::model::{tag, Metadata};
//!
//! let json = r#"{"key":"pic_0","size":3,"checksum":"ab","tags":{"index":"0","num_chunks":"2"},
//!               "content_type":"image/png","producer_id":"client-0","ball_id":"pic"}"#;
//! let meta: Metadata = serde_json::from_str(json)?;
//! assert_eq!(meta.bucket_id, "");          // defaulted
//! assert!(!meta.is_disabled);              // defaulted
//! assert_eq!(meta.tag(tag::NUM_CHUNKS), Some("2"));
//! assert_eq!(meta.num_chunks(), Some(2));
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Tags: a string → string map, ordered so that serialised metadata is stable.
pub type Tags = BTreeMap<String, String>;

pub mod metadata_header;

/// The content type the original client sends for every chunk.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// Names of the system tags the client writes on every chunk (client reference §4.3).
pub mod tag {
    /// Chunk index, a decimal string.
    pub const INDEX: &str = "index";
    /// Byte length of this chunk, a decimal string.
    pub const CHUNK_SIZE: &str = "chunk_size";
    /// The ball id the chunk belongs to.
    pub const GROUP_ID: &str = "group_id";
    /// Total number of chunks of the ball, a decimal string.
    pub const NUM_CHUNKS: &str = "num_chunks";
    /// SHA-256 (hex) of the whole ball.
    pub const FULL_CHECKSUM: &str = "full_checksum";
    /// Write time (integer, epoch); the router uses it for last-writer-wins in listings.
    pub const UPDATED_AT: &str = "updated_at";
    /// File name with extension, used for `Content-Disposition`.
    pub const FULLNAME: &str = "fullname";
    /// File name without extension.
    pub const FILENAME: &str = "filename";
    /// File extension.
    pub const EXTENSION: &str = "extension";

    /// The tags the SDK computes itself; on a put they win over user tags of the same name.
    pub const SYSTEM: [&str; 5] = [INDEX, CHUNK_SIZE, GROUP_ID, NUM_CHUNKS, FULL_CHECKSUM];
}

fn default_content_type() -> String {
    DEFAULT_CONTENT_TYPE.to_string()
}

fn default_replication_factor() -> u32 {
    1
}

fn default_n_deletes() -> i64 {
    -1
}

/// Metadata of one stored object (one chunk), as routers and peers report it (§4.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Object key; for chunks `<ball_id>_<index>`.
    pub key: String,
    /// Bytes of this object.
    pub size: u64,
    /// SHA-256 (lowercase hex) of this object's bytes, as declared by the writer.
    pub checksum: String,
    /// User and system tags.
    #[serde(default)]
    pub tags: Tags,
    /// Media type.
    #[serde(default = "default_content_type")]
    pub content_type: String,
    /// Id of the client that wrote it.
    #[serde(default)]
    pub producer_id: String,
    /// The ball (logical object) this key belongs to.
    #[serde(default)]
    pub ball_id: String,
    /// Bucket id (defaults to `""` on the wire).
    #[serde(default)]
    pub bucket_id: String,
    /// Soft-delete flag.
    #[serde(default)]
    pub is_disabled: bool,
}

impl Metadata {
    /// The value of tag `name`, if present.
    pub fn tag(&self, name: &str) -> Option<&str> {
        self.tags.get(name).map(String::as_str)
    }

    /// The `index` tag parsed as an integer.
    pub fn index(&self) -> Option<u64> {
        self.tag(tag::INDEX)?.trim().parse().ok()
    }

    /// The `num_chunks` tag parsed as an integer; `None` when missing, malformed or zero.
    pub fn num_chunks(&self) -> Option<u64> {
        self.tag(tag::NUM_CHUNKS)?
            .trim()
            .parse()
            .ok()
            .filter(|n| *n > 0)
    }

    /// The `full_checksum` tag, if present and non-empty.
    pub fn full_checksum(&self) -> Option<&str> {
        self.tag(tag::FULL_CHECKSUM).filter(|s| !s.is_empty())
    }

    /// The `updated_at` tag as an integer; `-1` when missing or malformed (the router's default).
    pub fn updated_at(&self) -> i64 {
        self.tag(tag::UPDATED_AT)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(-1)
    }
}

/// Sorts the chunks of a ball by their `index` tag, numerically (`ball_2` before `ball_10`);
/// chunks without one go last; ties and the rest by key.
///
/// # Examples
///
/// ```
/// use mictlanx::model::{sort_chunks, Metadata};
///
/// let chunk = |key: &str, index: &str| -> Result<Metadata, serde_json::Error> {
///     let json = format!(r#"{{"key":"{key}","size":1,"checksum":"","tags":{{"index":"{index}"}}}}"#);
///     serde_json::from_str(&json)
/// };
/// let mut chunks = vec![chunk("b_10", "10")?, chunk("b_2", "2")?, chunk("x", "")?];
/// sort_chunks(&mut chunks);
/// let keys: Vec<&str> = chunks.iter().map(|c| c.key.as_str()).collect();
/// assert_eq!(keys, ["b_2", "b_10", "x"]);
/// # Ok::<(), serde_json::Error>(())
/// ```
pub fn sort_chunks(chunks: &mut [Metadata]) {
    chunks.sort_by(|a, b| match (a.index(), b.index()) {
        (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.key.cmp(&b.key)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.key.cmp(&b.key),
    });
}

// ---------------------------------------------------------------------------------------------
// Router API (client reference §2.1, server reference §2)
// ---------------------------------------------------------------------------------------------

/// R1 request body: `POST /api/v4/buckets/{bucket_id}/metadata` on a router (`PutMetadataDTO`).
/// Also the body of R11 (`POST /api/v4/u/buckets/{bucket_id}/{key}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutMetadataRequest {
    /// Bucket id; must match the path's after sanitising.
    pub bucket_id: String,
    /// Object (chunk) key.
    pub key: String,
    /// Ball id.
    pub ball_id: String,
    /// SHA-256 (hex) of the object's bytes.
    pub checksum: String,
    /// Bytes the data upload will carry.
    pub size: u64,
    /// Id of the writing client.
    pub producer_id: String,
    /// Tags (default empty).
    #[serde(default)]
    pub tags: Tags,
    /// Media type (default `application/octet-stream`).
    #[serde(default = "default_content_type")]
    pub content_type: String,
    /// Soft-delete flag (default false).
    #[serde(default)]
    pub is_disabled: bool,
    /// Number of replicas to place (default 1).
    #[serde(default = "default_replication_factor")]
    pub replication_factor: u32,
}

/// R1 response: where the replicas go and the task id to upload the bytes to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PutMetadataResponse {
    /// The (sanitised) key.
    pub key: String,
    /// Router service time, in seconds.
    #[serde(default)]
    pub service_time: f64,
    /// Upload task ids; the client uploads to the first one.
    #[serde(default)]
    pub tasks_ids: Vec<String>,
    /// Bucket id.
    #[serde(default)]
    pub bucket_id: String,
    /// Ids of the peers chosen for the replicas.
    #[serde(default)]
    pub replicas: Vec<String>,
    /// Free-form extras (always `{}` in the original).
    #[serde(default)]
    pub extra: BTreeMap<String, Value>,
}

/// R2 response: `POST /api/v4/buckets/data/{task_id}/chunked` on a router.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterPutChunkedResponse {
    /// Peers that stored the bytes.
    #[serde(default)]
    pub peer_ids: Vec<String>,
    /// `"{bucket_id}@{key}"`.
    #[serde(default)]
    pub combined_key: String,
    /// Bucket id.
    #[serde(default)]
    pub bucket_id: String,
    /// Key.
    #[serde(default)]
    pub key: String,
    /// Size in bytes.
    #[serde(default)]
    pub size: u64,
}

/// R4 (router) and PM2 (peer) response: metadata of one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetMetadataResponse {
    /// Service time, in milliseconds (an integer on the wire).
    #[serde(default)]
    pub service_time: u64,
    /// Peer that holds the data.
    #[serde(default)]
    pub peer_id: String,
    /// Peer that answered.
    #[serde(default)]
    pub local_peer_id: String,
    /// The metadata.
    pub metadata: Metadata,
}

/// R6 response: `GET /api/v4/buckets/{bucket_id}/metadata/{ball_id}/chunks` (`BallMetadata`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BallMetadata {
    /// Bucket id.
    pub bucket_id: String,
    /// Ball id.
    pub ball_id: String,
    /// Human size of the ball (decimal units, e.g. `"1.5 MB"`, `"21 bytes"`).
    pub size: String,
    /// Size of the ball in bytes.
    pub size_bytes: u64,
    /// `full_checksum` of the first chunk, `""` when the chunks carry none.
    pub checksum: String,
    /// Metadata of every chunk.
    pub chunks: Vec<Metadata>,
}

/// R7 response: `GET /api/v4/buckets/{bucket_id}/metadata` on a router (as emitted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterBucketMetadata {
    /// Bucket id.
    pub bucket_id: String,
    /// Peers that answered. Spelled `peers_ids` on the wire (the Python model says
    /// `peer_ids`; both are accepted on input).
    #[serde(default, alias = "peer_ids")]
    pub peers_ids: Vec<String>,
    /// Chunk metadata of the bucket (of this page, for a paged listing).
    #[serde(default)]
    pub balls: Vec<Metadata>,
    /// More records follow: ask again with `next_continuation_token` (paged listings of
    /// our routers; absent, so `false`, elsewhere).
    #[serde(default)]
    pub is_truncated: bool,
    /// The token of the next page, when `is_truncated`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_continuation_token: Option<String>,
}

/// R8 response: `DELETE /api/v4/buckets/{bucket_id}/{key}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedByKeyResponse {
    /// Replicas deleted.
    #[serde(default = "default_n_deletes")]
    pub n_deletes: i64,
    /// The (sanitised) key.
    pub key: String,
}

/// R9 response: `DELETE /api/v4/buckets/{bucket_id}/bid/{ball_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedByBallIdResponse {
    /// Objects deleted, replicas included.
    #[serde(default = "default_n_deletes")]
    pub n_deletes: i64,
    /// The (sanitised) ball id.
    pub ball_id: String,
}

/// A value of R12 (`GET /api/v4/peers/stats`) and PS1 (`GET /api/v4/stats` on a peer).
///
/// Exactly these seven fields: the Python client builds it with keyword arguments and rejects
/// any extra key, so never add one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerStats {
    /// Peer id.
    #[serde(default)]
    pub peer_id: String,
    /// Bytes used.
    #[serde(default)]
    pub used_disk: u64,
    /// Capacity in bytes.
    #[serde(default)]
    pub total_disk: u64,
    /// `total_disk - used_disk`.
    #[serde(default)]
    pub available_disk: u64,
    /// Utilisation factor, `used / total` (0 when total is 0).
    #[serde(default)]
    pub disk_uf: f64,
    /// Metadata of (a page of) the stored objects.
    #[serde(default)]
    pub balls: Vec<Metadata>,
    /// Peers this peer knows.
    #[serde(default)]
    pub peers: Vec<String>,
}

/// R12 response: peer id → stats.
pub type PeersStatsResponse = BTreeMap<String, PeerStats>;

/// An element of the R13 body (`POST /api/v4/xpeers`) and the P3 body (`POST /api/v4/peers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerPayload {
    /// `http` or `https`.
    pub protocol: String,
    /// Peer id.
    pub peer_id: String,
    /// Host name (may carry a path).
    pub hostname: String,
    /// Port; `-1` or `0` means "no port in the URL".
    pub port: i32,
}

/// A peer as listed by P2 (`GET /api/v4/peers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// Peer id.
    pub peer_id: String,
    /// Host name.
    pub ip_addr: String,
    /// Port (`-1` = none).
    pub port: i32,
    /// `http` or `https`.
    #[serde(default = "default_protocol")]
    pub protocol: String,
    /// API version (4).
    #[serde(default = "default_api_version")]
    pub api_version: u32,
}

fn default_protocol() -> String {
    "http".to_string()
}

fn default_api_version() -> u32 {
    4
}

/// P2 response: `GET /api/v4/peers`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeersListResponse {
    /// Peers that answered the last probe.
    #[serde(default)]
    pub available: Vec<PeerInfo>,
    /// Peers that did not.
    #[serde(default)]
    pub unavailable: Vec<PeerInfo>,
}

/// B1 (router, one per replica) and PM6 (peer) element: `GET .../{bucket_id}/{key}/size`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizeByKey {
    /// Bucket id.
    pub bucket_id: String,
    /// Key.
    pub key: String,
    /// Peer that answered.
    pub peer_id: String,
    /// Size in bytes (0 when the peer does not hold the key).
    pub size: u64,
}

/// The `detail` object of the router's "not enough peers" 404 (`code` 666).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoAvailablePeersDetail {
    /// Message, `"No available peers."`.
    pub msg: String,
    /// What to do about it.
    #[serde(default)]
    pub suggestion: String,
    /// Bucket id.
    #[serde(default)]
    pub bucket_id: String,
    /// Key.
    #[serde(default)]
    pub key: String,
    /// Peers already holding the key.
    #[serde(default)]
    pub replicas: Vec<String>,
    /// Always [`NO_AVAILABLE_PEERS_CODE`].
    pub code: i64,
}

/// The error code of "max availability reached / not enough peers".
pub const NO_AVAILABLE_PEERS_CODE: i64 = 666;

/// An error body: `{"detail": <string | object>}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A message, or an object with at least `msg` and `code`.
    pub detail: Value,
}

impl ErrorBody {
    /// An error body whose detail is a plain message.
    pub fn message(msg: impl Into<String>) -> Self {
        Self {
            detail: Value::String(msg.into()),
        }
    }

    /// The human message: the string detail, or `detail.msg` of an object.
    pub fn text(&self) -> String {
        match &self.detail {
            Value::String(s) => s.clone(),
            Value::Object(map) => match map.get("msg") {
                Some(Value::String(s)) => s.clone(),
                _ => self.detail.to_string(),
            },
            other => other.to_string(),
        }
    }

    /// `detail.code` when the detail is an object that carries an integer code.
    pub fn code(&self) -> Option<i64> {
        self.detail.get("code").and_then(Value::as_i64)
    }
}

// ---------------------------------------------------------------------------------------------
// Peer API (client reference §3, server reference §4)
// ---------------------------------------------------------------------------------------------

/// PM1 request body: `POST /api/v4/buckets/{bucket_id}/metadata` on a peer.
///
/// Note `is_disable` (not `is_disabled`) and no replication factor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerPutMetadataRequest {
    /// Key.
    pub key: String,
    /// Bytes the upload will carry.
    pub size: u64,
    /// Declared SHA-256 (hex) of the bytes; other values are kept as given, unverified.
    pub checksum: String,
    /// Tags.
    #[serde(default)]
    pub tags: Tags,
    /// Id of the writer.
    #[serde(default)]
    pub producer_id: String,
    /// Media type.
    #[serde(default = "default_content_type")]
    pub content_type: String,
    /// Ball id.
    #[serde(default)]
    pub ball_id: String,
    /// Bucket id.
    #[serde(default)]
    pub bucket_id: String,
    /// Soft-delete flag.
    #[serde(default, alias = "is_disabled")]
    pub is_disable: bool,
}

/// PM1 response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerPutMetadataResponse {
    /// Key.
    pub key: String,
    /// Service time in milliseconds (an integer on the wire).
    #[serde(default)]
    pub service_time: u64,
    /// The task to upload the bytes to.
    pub task_id: String,
    /// The peer's id.
    #[serde(default)]
    pub node_id: String,
}

/// PD2 response: `POST /api/v4/buckets/data/{task_id}/chunked` on a peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerPutChunkedResponse {
    /// The peer's id.
    pub node_id: String,
    /// `"{bucket_id}@{key}"`.
    pub combined_key: String,
    /// Bucket id.
    pub bucket_id: String,
    /// Key.
    pub key: String,
    /// Bytes stored.
    pub size: u64,
    /// Bytes per second of the upload.
    #[serde(default)]
    pub throughput: f64,
    /// Seconds the upload took.
    #[serde(default)]
    pub service_time: f64,
}

/// PM3 response: `GET /api/v4/buckets/{bucket_id}/metadata` on a peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerBucketMetadata {
    /// The peer's id.
    #[serde(default)]
    pub peer_id: String,
    /// Metadata of every key of the bucket on this peer.
    #[serde(default)]
    pub balls: Vec<Metadata>,
    /// The version of each key of `balls` (our peers; absent from MictlanX peers). Routers
    /// keep, of each key, the copy with the newest version.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub versions: BTreeMap<String, String>,
    /// Keys of the bucket this peer deleted, with the version of the delete (our peers). A
    /// router hides a key whose newest version is a deletion.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tombstones: BTreeMap<String, String>,
    /// More keys follow (a paged listing of our peers; absent, so `false`, elsewhere).
    #[serde(default)]
    pub is_truncated: bool,
    /// The token of the next page, when `is_truncated`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_continuation_token: Option<String>,
}

/// PM4 response: `GET /api/v4/buckets/{bucket_id}/metadata/{ball_id}/group` on a peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupedBallResponse {
    /// Bucket id.
    pub bucket_id: String,
    /// Ball id.
    pub ball_id: String,
    /// Sum of the sizes of `balls`.
    #[serde(default)]
    pub size: u64,
    /// Metadata of every key of the ball on this peer.
    #[serde(default)]
    pub balls: Vec<Metadata>,
    /// The version of each key of `balls` (our peers; see [`PeerBucketMetadata::versions`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub versions: BTreeMap<String, String>,
    /// Deleted keys of the ball, with the version of the delete (our peers).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tombstones: BTreeMap<String, String>,
}

/// PS2 response: `GET /api/v4/stats/ufs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UfsResponse {
    /// Capacity in bytes.
    pub total_disk: u64,
    /// Bytes used.
    pub used_disk: u64,
    /// `used / total`.
    pub disk_uf: f64,
    /// Our extension: the peer hashes every upload whose declared checksum is a SHA-256 and
    /// refuses one that does not match, so a router may leave that check to it. MictlanX
    /// peers do not send it (`false`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub verifies_uploads: bool,
}

/// PS3 response: `GET /api/v4/balls/len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BallsLenResponse {
    /// Number of stored keys.
    pub len: u64,
}

/// PS4 element: `GET /api/v4/xballs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BallBasicData {
    /// Bucket id.
    pub bucket_id: String,
    /// Key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
}

/// One key a peer holds or deleted, with its version: an element of
/// [`KeyVersionsPage`] (`GET /api/v4/xversions` on our peers; routers compare these to
/// repair replicas).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyVersionEntry {
    /// Bucket id.
    pub bucket_id: String,
    /// Key.
    pub key: String,
    /// Its version (`<stamp>.<tag>`).
    pub version: String,
    /// Whether this is a deletion (a tombstone) rather than a copy.
    #[serde(default)]
    pub deleted: bool,
    /// Bytes of the copy (0 for a deletion).
    #[serde(default)]
    pub size: u64,
    /// Replicas its writer asked for (0: not said).
    #[serde(default)]
    pub replication_factor: u32,
    /// The ball the key belongs to (copies only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ball_id: String,
    /// The `num_chunks` tag of a chunk of a multi-chunk ball (0: none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub num_chunks: u64,
    /// The `full_checksum` tag of such a chunk: every chunk of one put has the same.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub full_checksum: String,
    /// When the copy was written here (ms since the Unix epoch).
    #[serde(default)]
    pub written_at_ms: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A page of a peer's keys and versions, in key order (`GET /api/v4/xversions`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyVersionsPage {
    /// The keys of this page.
    #[serde(default)]
    pub entries: Vec<KeyVersionEntry>,
    /// Whether more keys follow the last one of this page.
    #[serde(default)]
    pub more: bool,
}

/// PS5 element: `GET /api/v4/xballs/size`, a 3-element array `[bucket_id, key, size]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BallSizeTuple(pub String, pub String, pub u64);

/// PD6 response: `POST /api/v4/buckets/{bucket_id}/{key}/replicate` on a peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicateResponse {
    /// Peer that answered.
    pub peer_id: String,
    /// Peer the replica came from.
    pub replica_peer_id: String,
    /// Bucket id.
    pub bucket_id: String,
    /// Key.
    pub key: String,
    /// Bytes replicated.
    pub size: u64,
    /// Whether it worked.
    pub ok: bool,
    /// Milliseconds.
    pub response_time: u64,
}

/// PS7 body and response: `POST /api/v4/nodes` (peer-to-peer handshake).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeHandshake {
    /// Peer id.
    pub id: String,
    /// Disk capacity in bytes.
    pub disk: u64,
    /// Memory capacity in bytes.
    pub memory: u64,
    /// Host.
    pub ip_addr: String,
    /// Port.
    pub port: i32,
    /// Weight.
    pub weight: f64,
    /// Disk used.
    pub used_disk: u64,
    /// Memory used.
    pub used_memory: u64,
}

/// A node of [`PeerCurrentState`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Node id.
    pub node_id: String,
    /// Host.
    pub ip_addr: String,
    /// Port.
    pub port: i32,
}

/// Where a key lives, in [`PeerCurrentState`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BallLocations {
    /// Peers holding it.
    pub locations: Vec<String>,
    /// Size in bytes.
    pub size: u64,
}

/// PS6 response: `GET /api/v4/peers/state`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerCurrentState {
    /// Known nodes.
    #[serde(default)]
    pub nodes: Vec<NodeInfo>,
    /// Key → locations.
    #[serde(default)]
    pub balls: BTreeMap<String, BallLocations>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;
    use serde_json::json;

    /// Parses `sample`, serialises the value back, and checks that nothing was lost: every
    /// key of the sample comes back with the same value.
    fn round_trip<T: DeserializeOwned + Serialize>(sample: Value) -> T {
        let value: T = serde_json::from_value(sample.clone()).expect("sample parses");
        let back = serde_json::to_value(&value).expect("serialises");
        if let (Value::Object(sample), Value::Object(back)) = (&sample, &back) {
            for (k, v) in sample {
                assert_eq!(back.get(k), Some(v), "field {k} changed in a round trip");
            }
        } else {
            assert_eq!(sample, back);
        }
        let again: T = serde_json::from_value(back).expect("reparses");
        assert_eq!(
            serde_json::to_value(&again).unwrap(),
            serde_json::to_value(&value).unwrap()
        );
        value
    }

    fn metadata_sample() -> Value {
        json!({"key":"report_c_0","size":21,"checksum":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
               "tags":{"index":"0","num_chunks":"1","chunk_size":"21","group_id":"report_c",
                       "full_checksum":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                       "extension":"pdf","updated_at":"1700000000000"},
               "content_type":"application/octet-stream","producer_id":"client-0",
               "ball_id":"report_c","bucket_id":"b1","is_disabled":false})
    }

    #[test]
    fn metadata_round_trip_and_tag_helpers() {
        let m: Metadata = round_trip(metadata_sample());
        assert_eq!(m.index(), Some(0));
        assert_eq!(m.num_chunks(), Some(1));
        assert_eq!(m.updated_at(), 1_700_000_000_000);
        assert_eq!(m.tag(tag::EXTENSION), Some("pdf"));
        assert!(m.full_checksum().is_some());
    }

    #[test]
    fn metadata_defaults_for_optional_fields() {
        let m: Metadata = serde_json::from_value(json!({
            "key":"k","size":0,"checksum":"","tags":{},"content_type":"text/plain",
            "producer_id":"p","ball_id":"k"}))
        .unwrap();
        assert_eq!(m.bucket_id, "");
        assert!(!m.is_disabled);
        assert_eq!(m.num_chunks(), None);
        assert_eq!(m.updated_at(), -1);
        // Tag values must be strings, as the router's DTO enforces.
        assert!(serde_json::from_value::<Metadata>(json!({
            "key":"k","size":0,"checksum":"","tags":{"index":0}}))
        .is_err());
    }

    #[test]
    fn num_chunks_zero_or_garbage_is_none() {
        let mut m: Metadata = serde_json::from_value(metadata_sample()).unwrap();
        m.tags.insert(tag::NUM_CHUNKS.into(), "0".into());
        assert_eq!(m.num_chunks(), None);
        m.tags.insert(tag::NUM_CHUNKS.into(), "x".into());
        assert_eq!(m.num_chunks(), None);
    }

    #[test]
    fn put_metadata_request_defaults() {
        let r: PutMetadataRequest = serde_json::from_value(json!({
            "bucket_id":"b","key":"k_0","ball_id":"k","checksum":"c","size":10,"producer_id":"p"}))
        .unwrap();
        assert_eq!(r.replication_factor, 1);
        assert_eq!(r.content_type, DEFAULT_CONTENT_TYPE);
        assert!(r.tags.is_empty());
        assert!(!r.is_disabled);
        round_trip::<PutMetadataRequest>(json!({
            "bucket_id":"b","key":"k_0","ball_id":"k","checksum":"c","size":10,"producer_id":"p",
            "tags":{"a":"b"},"content_type":"x/y","is_disabled":true,"replication_factor":2}));
    }

    #[test]
    fn put_metadata_response_wire_names() {
        let r: PutMetadataResponse = round_trip(json!({
            "key":"k_0","service_time":0.0123,"tasks_ids":["V1StGXR8_Z5jdHi6B-myT"],
            "bucket_id":"b","replicas":["peer-0","peer-1"],"extra":{}}));
        assert_eq!(r.tasks_ids.len(), 1);
        // Missing fields default as in the Python model.
        let r: PutMetadataResponse = serde_json::from_value(json!({"key":"k"})).unwrap();
        assert!(r.tasks_ids.is_empty() && r.replicas.is_empty() && r.extra.is_empty());
    }

    #[test]
    fn router_responses_round_trip() {
        round_trip::<RouterPutChunkedResponse>(json!({
            "peer_ids":["peer-0"],"combined_key":"b@k","bucket_id":"b","key":"k","size":1000000}));
        let g: GetMetadataResponse = round_trip(json!({
            "service_time":12,"peer_id":"peer-1","local_peer_id":"peer-0","metadata":metadata_sample()}));
        assert_eq!(g.metadata.key, "report_c_0");
        round_trip::<BallMetadata>(json!({
            "bucket_id":"b","ball_id":"report_c","size":"21 bytes","size_bytes":21,
            "checksum":"","chunks":[metadata_sample()]}));
        round_trip::<DeletedByKeyResponse>(json!({"n_deletes":2,"key":"k"}));
        round_trip::<DeletedByBallIdResponse>(json!({"n_deletes":0,"ball_id":"b"}));
        round_trip::<SizeByKey>(json!({"bucket_id":"b","key":"k","peer_id":"p","size":0}));
        round_trip::<PeersListResponse>(json!({
            "available":[{"peer_id":"peer-0","ip_addr":"127.0.0.1","port":25000,"protocol":"http","api_version":4}],
            "unavailable":[]}));
        round_trip::<Vec<PeerPayload>>(json!([
            {"protocol":"http","peer_id":"peer-9","hostname":"localhost","port":25009}]));
    }

    #[test]
    fn bucket_listing_emits_peers_ids_and_accepts_peer_ids() {
        let r: RouterBucketMetadata = round_trip(json!({
            "bucket_id":"b","peers_ids":["peer-0"],"balls":[metadata_sample()]}));
        assert_eq!(r.peers_ids, vec!["peer-0"]);
        let r: RouterBucketMetadata =
            serde_json::from_value(json!({"bucket_id":"b","peer_ids":["p"],"balls":[]})).unwrap();
        assert_eq!(r.peers_ids, vec!["p"]);
    }

    #[test]
    fn peer_stats_has_exactly_seven_fields() {
        let s: PeerStats = round_trip(json!({
            "peer_id":"peer-0","used_disk":20,"total_disk":100,"available_disk":80,
            "disk_uf":0.2,"balls":[],"peers":["peer-1"]}));
        let v = serde_json::to_value(&s).unwrap();
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "available_disk",
                "balls",
                "disk_uf",
                "peer_id",
                "peers",
                "total_disk",
                "used_disk"
            ]
        );
        let m: PeersStatsResponse = serde_json::from_value(json!({"peer-0": v})).unwrap();
        assert_eq!(m["peer-0"].total_disk, 100);
    }

    #[test]
    fn error_body_text_and_code() {
        let e: ErrorBody = round_trip(json!({"detail":{"msg":"No available peers.",
            "suggestion":"Add more peers or delete replicas.","bucket_id":"b","key":"k",
            "replicas":["peer-0"],"code":666}}));
        assert_eq!(e.text(), "No available peers.");
        assert_eq!(e.code(), Some(NO_AVAILABLE_PEERS_CODE));
        let d: NoAvailablePeersDetail = serde_json::from_value(e.detail).unwrap();
        assert_eq!(d.replicas, vec!["peer-0"]);
        let e = ErrorBody::message("b@k not found");
        assert_eq!(e.text(), "b@k not found");
        assert_eq!(e.code(), None);
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"detail":"b@k not found"}"#
        );
    }

    #[test]
    fn peer_put_metadata_uses_is_disable() {
        let r: PeerPutMetadataRequest = round_trip(json!({
            "key":"k","size":3,"checksum":"abc","tags":{},"producer_id":"p",
            "content_type":"application/octet-stream","ball_id":"k","bucket_id":"b","is_disable":false}));
        let v = serde_json::to_value(&r).unwrap();
        assert!(v.get("is_disable").is_some() && v.get("is_disabled").is_none());
        round_trip::<PeerPutMetadataResponse>(json!({
            "key":"k","service_time":3,"task_id":"t-1","node_id":"peer-0"}));
    }

    #[test]
    fn peer_responses_round_trip() {
        round_trip::<PeerPutChunkedResponse>(json!({
            "node_id":"peer-0","combined_key":"b@k","bucket_id":"b","key":"k","size":10,
            "throughput":1000.5,"service_time":0.01}));
        round_trip::<PeerBucketMetadata>(json!({"peer_id":"peer-0","balls":[metadata_sample()]}));
        round_trip::<GroupedBallResponse>(json!({
            "bucket_id":"b","ball_id":"report_c","size":21,"balls":[metadata_sample()]}));
        round_trip::<UfsResponse>(json!({"total_disk":100,"used_disk":50,"disk_uf":0.5}));
        round_trip::<BallsLenResponse>(json!({"len":3}));
        round_trip::<Vec<BallBasicData>>(json!([{"bucket_id":"b","key":"k","size":1}]));
        let t: Vec<BallSizeTuple> = round_trip(json!([["b", "k", 10]]));
        assert_eq!(t[0].2, 10);
        round_trip::<ReplicateResponse>(json!({
            "peer_id":"peer-1","replica_peer_id":"peer-0","bucket_id":"b","key":"k","size":1,
            "ok":true,"response_time":5}));
        round_trip::<NodeHandshake>(json!({
            "id":"peer-1","disk":100,"memory":2000000000u64,"ip_addr":"127.0.0.1","port":25001,
            "weight":1.0,"used_disk":0,"used_memory":0}));
        round_trip::<PeerCurrentState>(json!({
            "nodes":[{"node_id":"peer-0","ip_addr":"127.0.0.1","port":25000}],
            "balls":{"k":{"locations":["peer-0"],"size":3}}}));
    }
}
