//! Peer storage: files and metadata.
