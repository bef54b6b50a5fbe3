//! The storage peer.
