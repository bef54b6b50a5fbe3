//! The query of a listing: a page (`limit`, `continuation_token`) or the whole listing
//! (the original `start`/`end` offsets).

use serde::Deserialize;

use super::{decode_token, MAX_LIMIT};
use crate::error::ApiError;

/// `?limit=&continuation_token=` or `?start=&end=`. Values are kept as text so that the
/// empty values the Python client sends (`?start=&end=`) mean "unset" instead of failing.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    end: Option<String>,
    #[serde(default)]
    limit: Option<String>,
    #[serde(default)]
    continuation_token: Option<String>,
}

/// What a listing request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListMode {
    /// Up to `limit` entries after the key `after` (`None`: from the first).
    Page {
        /// Entries wanted, 1 to [`MAX_LIMIT`].
        limit: usize,
        /// The last key of the previous page.
        after: Option<String>,
    },
    /// Every entry `[start, end)` (`end` = `None`: to the last), streamed.
    Whole {
        /// Entries skipped first.
        start: u64,
        /// Where to stop.
        end: Option<u64>,
    },
}

fn set(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn integer(name: &str, v: &Option<String>) -> Result<Option<i64>, ApiError> {
    set(v)
        .map(|s| {
            s.parse().map_err(|_| {
                ApiError::bad_request(format!("query parameter {name} is not an integer: {s:?}"))
            })
        })
        .transpose()
}

impl ListQuery {
    /// The mode asked for. A `limit` over [`MAX_LIMIT`] is [`MAX_LIMIT`]; a missing one is
    /// [`MAX_LIMIT`] too. For offsets, a missing or negative start is 0, a missing end or
    /// one ≤ 0 means "to the last".
    ///
    /// # Errors
    ///
    /// 400 for a `limit` below 1 or not an integer, a token this server did not give out,
    /// offsets mixed with paging, or offsets that are not integers.
    pub(crate) fn mode(&self) -> Result<ListMode, ApiError> {
        let paged = set(&self.limit).is_some() || set(&self.continuation_token).is_some();
        if !paged {
            let start = integer("start", &self.start)?.unwrap_or(0).max(0);
            let end = integer("end", &self.end)?.filter(|e| *e > 0);
            return Ok(ListMode::Whole {
                start: start.unsigned_abs(),
                end: end.map(i64::unsigned_abs),
            });
        }
        if set(&self.start).is_some() || set(&self.end).is_some() {
            return Err(ApiError::bad_request(
                "start/end and limit/continuation_token do not go together",
            ));
        }
        let limit = match integer("limit", &self.limit)? {
            None => MAX_LIMIT,
            Some(n) if n < 1 => {
                return Err(ApiError::bad_request(format!(
                    "limit must be at least 1 (at most {MAX_LIMIT} are listed), not {n}"
                )))
            }
            Some(n) => usize::try_from(n).unwrap_or(MAX_LIMIT).min(MAX_LIMIT),
        };
        let after = set(&self.continuation_token)
            .map(decode_token)
            .transpose()?;
        Ok(ListMode::Page { limit, after })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paging::encode_token;

    fn q(pairs: &[(&str, &str)]) -> ListQuery {
        let mut q = ListQuery::default();
        for (k, v) in pairs {
            let v = Some(v.to_string());
            match *k {
                "start" => q.start = v,
                "end" => q.end = v,
                "limit" => q.limit = v,
                _ => q.continuation_token = v,
            }
        }
        q
    }

    #[test]
    fn modes() {
        let whole = |start, end| ListMode::Whole { start, end };
        assert_eq!(q(&[]).mode().unwrap(), whole(0, None));
        assert_eq!(
            q(&[("start", ""), ("end", "")]).mode().unwrap(),
            whole(0, None)
        );
        assert_eq!(
            q(&[("start", "2"), ("end", "5")]).mode().unwrap(),
            whole(2, Some(5))
        );
        assert_eq!(
            q(&[("start", "-3"), ("end", "0")]).mode().unwrap(),
            whole(0, None)
        );
        assert!(q(&[("start", "x")]).mode().is_err());
        let page = |limit, after: Option<&str>| ListMode::Page {
            limit,
            after: after.map(String::from),
        };
        assert_eq!(q(&[("limit", "1")]).mode().unwrap(), page(1, None));
        assert_eq!(q(&[("limit", "1000")]).mode().unwrap(), page(1000, None));
        assert_eq!(q(&[("limit", "5000")]).mode().unwrap(), page(1000, None));
        let token = encode_token("k");
        assert_eq!(
            q(&[("continuation_token", &token)]).mode().unwrap(),
            page(1000, Some("k"))
        );
        for bad in [
            q(&[("limit", "0")]),
            q(&[("limit", "-1")]),
            q(&[("limit", "x")]),
            q(&[("continuation_token", "garbage")]),
            q(&[("limit", "1"), ("start", "1")]),
        ] {
            assert_eq!(bad.mode().unwrap_err().status, 400, "{bad:?}");
        }
    }
}
