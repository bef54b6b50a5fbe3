//! # mictlanx-server
//!
//! The MictlanX storage **peer**, the **router**, and [`LocalCluster`] (a router and N peers
//! in one process on loopback), wire-compatible with MictlanX API v4.
#![deny(missing_docs)]

pub mod alloc;
pub mod args;
pub mod auth;
mod cluster;
pub mod config;
mod elastic;
pub mod error;
pub mod logging;
pub mod metrics;
pub mod paging;
pub mod peer;
pub mod router;
pub mod serve;
pub mod storage;
pub mod tls;
pub mod version;

pub use cluster::{ClusterError, ClusterStateError, LocalCluster, LocalClusterBuilder};
pub use config::{PeerConfig, RouterConfig};
pub use serve::ServerHandle;
