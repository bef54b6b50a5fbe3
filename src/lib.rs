//! # mictlanx
//!
//! The async Rust client SDK for MictlanX, the elastic replicated storage system.
//!
//! Applications store **balls** (objects) in **buckets** through **routers**, which place
//! replicas on storage **peers**. A ball is split into chunks; chunk `i` of ball `b` is stored
//! under the key `b_i` with the system tags `index`, `chunk_size`, `group_id`, `num_chunks`
//! and `full_checksum`.
//!
//! This crate holds the wire types of MictlanX API v4 ([`model`]), the parsers for sizes
//! ([`size`]), identifiers ([`id`]) and router addresses ([`uri`]), chunk planning and
//! checksums ([`chunking`], [`checksum`]), Xolo keys and client-side encryption ([`xolo`])
//! and the one error type ([`Error`]).
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

pub mod ball;
#[doc(hidden)]
pub mod bench_api;
mod blocking;
pub mod blocks;
pub mod checksum;
pub mod chunking;
mod client;
mod error;
pub mod id;
pub mod model;
pub mod policy;
mod queue;
mod routers;
pub mod size;
pub mod uri;
pub mod xolo;

pub use ball::{Ball, Bucket};
pub use client::{
    BearerToken, Client, ClientBuilder, ClientConfig, ClientMetrics, DeleteBucketResult,
    GetFileResult, GetOptions, GetResult, Policies, Progress, ProgressFn, PutOptions, PutResult,
    RetryConfig, DEFAULT_CHUNK_SIZE, DEFAULT_CONNECT_TIMEOUT, DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_MAX_CONCURRENCY, DEFAULT_TIMEOUT, LARGE_BALL_CHUNK_SIZE, LARGE_BALL_THRESHOLD,
};
pub use error::{Error, Result};
pub use id::TaskId;
pub use queue::{
    AsyncClient, AsyncClientConfig, ByteStream, EnqueueError, GetDestination, GetJob, JobOutput,
    PutJob, PutSource, QueueMetrics, TaskCounts, TaskKind, TaskProgress, TaskState, TaskStatus,
    TaskSummary, DEFAULT_QUEUE_CAPACITY, DEFAULT_STATUS_TTL, DEFAULT_WORKERS,
};
pub use routers::{LbAlgorithm, ParseLbError, RouterMetrics};
