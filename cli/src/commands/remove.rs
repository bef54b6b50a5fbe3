//! `rm` and `rm-bucket`.

use mictlanx::Client;
use serde_json::json;

use crate::output::{failure, Output};

/// `mictlanx rm BUCKET KEY`: deletes a ball (every chunk, every replica).
pub async fn rm(client: &Client, out: Output, bucket: &str, key: &str) -> Result<(), String> {
    let res = client
        .delete(bucket, key)
        .await
        .map_err(|e| failure(&format!("deleting {bucket}/{key}"), &e))?;
    out.emit(
        json!({"bucket_id": bucket, "ball_id": res.ball_id, "n_deletes": res.n_deletes}),
        || {
            format!(
                "deleted {bucket}/{} ({} objects)",
                res.ball_id, res.n_deletes
            )
        },
    );
    Ok(())
}

/// `mictlanx rm-bucket BUCKET`: deletes every ball of a bucket.
pub async fn rm_bucket(client: &Client, out: Output, bucket: &str) -> Result<(), String> {
    let res = client
        .delete_bucket(bucket)
        .await
        .map_err(|e| failure(&format!("deleting bucket {bucket}"), &e))?;
    out.emit(
        json!({"bucket_id": res.bucket_id, "deleted": res.deleted, "failed": res.failed,
               "total": res.total}),
        || {
            format!(
                "bucket {}: {} of {} balls deleted, {} failed",
                res.bucket_id, res.deleted, res.total, res.failed
            )
        },
    );
    if res.failed == 0 {
        Ok(())
    } else {
        Err(format!(
            "{} balls of bucket {bucket} could not be deleted",
            res.failed
        ))
    }
}
