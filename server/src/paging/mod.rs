//! Bounded listings, shared by the peer and the router: the query (`limit` and an opaque
//! `continuation_token`, in the style of S3 ListObjectsV2), the token, the concurrency
//! gate, and answers streamed as their entries are read.
//!
//! A request with `limit` or `continuation_token` gets one page of at most
//! [`MAX_LIMIT`] entries in key order, with `X-Mictlanx-Is-Truncated` and, when more
//! follow, `X-Mictlanx-Next-Continuation-Token` (object answers also carry
//! `is_truncated` and `next_continuation_token` in the body). A request without them (the
//! original API, which the Python client uses) gets the whole listing, but streamed a page
//! at a time, so memory stays bounded whatever the listing's length.

mod gate;
mod query;
mod stream;
mod token;

pub use gate::{ListingGate, ListingLimits};
pub(crate) use query::{ListMode, ListQuery};
pub(crate) use stream::{page_headers, JsonStream};
pub(crate) use token::{decode_token, encode_token};

use axum::http::HeaderName;

/// The most entries a page holds, and the default `limit`.
pub const MAX_LIMIT: usize = 1000;

/// `true` when more pages follow, `false` on the last one.
pub const IS_TRUNCATED_HEADER: HeaderName = HeaderName::from_static("x-mictlanx-is-truncated");

/// The token asking for the next page (only when more follow).
pub const NEXT_TOKEN_HEADER: HeaderName =
    HeaderName::from_static("x-mictlanx-next-continuation-token");
