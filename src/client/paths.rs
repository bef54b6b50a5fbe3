//! URL paths of the router API (reference §2.1), with every segment percent-encoded.
//!
//! Ball ids may hold `/`, spaces and any script, so every segment goes through
//! [`crate::id::url_segment`]: an id stays one segment and can never add a query.

pub(crate) use crate::id::url_segment as segment;
use crate::routers::RouterState;

/// `{base}/api/v{n}{path}` on `router`.
pub(crate) fn url(router: &RouterState, path: &str) -> String {
    format!("{}/api/v{}{path}", router.base_url, router.api_version)
}

/// R1 `POST /buckets/{b}/metadata` and R7 `GET /buckets/{b}/metadata`.
pub(crate) fn bucket_metadata(bucket: &str) -> String {
    format!("/buckets/{}/metadata", segment(bucket))
}

/// R2 `POST /buckets/data/{task_id}/chunked`.
pub(crate) fn put_chunked(task_id: &str) -> String {
    format!("/buckets/data/{}/chunked", segment(task_id))
}

/// R4 `GET /buckets/{b}/metadata/{key}`.
pub(crate) fn key_metadata(bucket: &str, key: &str) -> String {
    format!("/buckets/{}/metadata/{}", segment(bucket), segment(key))
}

/// R5 `GET` and R8 `DELETE /buckets/{b}/{key}`.
pub(crate) fn key_data(bucket: &str, key: &str) -> String {
    format!("/buckets/{}/{}", segment(bucket), segment(key))
}

/// R6 `GET /buckets/{b}/metadata/{ball_id}/chunks`.
pub(crate) fn ball_chunks(bucket: &str, ball_id: &str) -> String {
    format!(
        "/buckets/{}/metadata/{}/chunks",
        segment(bucket),
        segment(ball_id)
    )
}

/// R9 `DELETE /buckets/{b}/bid/{ball_id}`.
pub(crate) fn ball_delete(bucket: &str, ball_id: &str) -> String {
    format!("/buckets/{}/bid/{}", segment(bucket), segment(ball_id))
}

/// R10 `POST /buckets/{b}/{key}/disable`.
pub(crate) fn disable(bucket: &str, key: &str) -> String {
    format!("/buckets/{}/{}/disable", segment(bucket), segment(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded_like_httpx() {
        assert_eq!(segment("a b"), "a%20b");
        assert_eq!(segment("report_c-0.x~"), "report_c-0.x~");
        assert_eq!(segment("a/b?c#d%"), "a%2Fb%3Fc%23d%25");
        assert_eq!(segment("ñ"), "%C3%B1");
    }

    #[test]
    fn paths_match_the_router_api() {
        assert_eq!(bucket_metadata("b1"), "/buckets/b1/metadata");
        assert_eq!(put_chunked("V1St_GX-8"), "/buckets/data/V1St_GX-8/chunked");
        assert_eq!(key_metadata("b", "k_0"), "/buckets/b/metadata/k_0");
        assert_eq!(key_data("b", "my key"), "/buckets/b/my%20key");
        assert_eq!(ball_chunks("b", "pic"), "/buckets/b/metadata/pic/chunks");
        assert_eq!(ball_delete("b", "pic"), "/buckets/b/bid/pic");
        assert_eq!(disable("b", "k"), "/buckets/b/k/disable");
    }
}
