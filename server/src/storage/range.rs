//! HTTP `Range` for data GETs: a single byte range (RFC 9110 §14).
//!
//! Only one range is served. A header this module does not understand (another unit, a
//! list of ranges, bad syntax, `last < first`) is ignored, as RFC 9110 §14.2 allows, and the
//! whole object is answered; a well-formed range that lies outside the object is not
//! satisfiable (416).

/// A parsed `Range: bytes=...` specifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// `bytes=first-last` (inclusive).
    FromTo(u64, u64),
    /// `bytes=first-`.
    From(u64),
    /// `bytes=-n`: the last `n` bytes.
    Suffix(u64),
}

/// A satisfiable range of an object: bytes `start..=end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Last byte (inclusive).
    pub end: u64,
}

impl ByteRange {
    /// Number of bytes in the range.
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// Always false: a satisfiable range holds at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The `Content-Range` value for an object of `size` bytes.
    pub fn content_range(&self, size: u64) -> String {
        format!("bytes {}-{}/{}", self.start, self.end, size)
    }
}

/// Parses a `Range` header value; `None` means "ignore it and answer the whole object".
///
/// # Examples
///
/// ```
/// use mictlanx_server::storage::{parse_range, RangeSpec};
///
/// assert_eq!(parse_range("bytes=0-99"), Some(RangeSpec::FromTo(0, 99)));
/// assert_eq!(parse_range("bytes=-5"), Some(RangeSpec::Suffix(5)));
/// assert_eq!(parse_range("bytes=0-1,4-5"), None);
/// ```
pub fn parse_range(header: &str) -> Option<RangeSpec> {
    let (unit, set) = header.trim().split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") || set.contains(',') {
        return None;
    }
    let (first, last) = set.trim().split_once('-')?;
    let number = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    match (first.is_empty(), last.is_empty()) {
        (true, true) => None,
        (true, false) => number(last).map(RangeSpec::Suffix),
        (false, true) => number(first).map(RangeSpec::From),
        (false, false) => {
            let (a, b) = (number(first)?, number(last)?);
            (a <= b).then_some(RangeSpec::FromTo(a, b))
        }
    }
}

impl RangeSpec {
    /// The bytes this specifier selects in an object of `size` bytes; `None` when it is not
    /// satisfiable (416).
    pub fn resolve(self, size: u64) -> Option<ByteRange> {
        let last = size.checked_sub(1)?;
        match self {
            RangeSpec::FromTo(a, b) if a < size => Some(ByteRange {
                start: a,
                end: b.min(last),
            }),
            RangeSpec::From(a) if a < size => Some(ByteRange {
                start: a,
                end: last,
            }),
            RangeSpec::Suffix(n) if n > 0 => Some(ByteRange {
                start: size - n.min(size),
                end: last,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(parse_range("bytes=0-0"), Some(RangeSpec::FromTo(0, 0)));
        assert_eq!(parse_range("bytes=10-"), Some(RangeSpec::From(10)));
        assert_eq!(parse_range("bytes=-10"), Some(RangeSpec::Suffix(10)));
        assert_eq!(parse_range(" Bytes = 1-2 "), Some(RangeSpec::FromTo(1, 2)));
    }

    #[test]
    fn ignores_what_it_does_not_understand() {
        for h in [
            "",
            "bytes",
            "bytes=",
            "bytes=-",
            "items=0-1",
            "bytes=a-b",
            "bytes=5-1",
            "bytes=0-1,2-3",
            "bytes=+1-2",
            "bytes=1-2-3",
            "bytes= 1 - 2x",
            "bytes=99999999999999999999999-",
        ] {
            assert_eq!(parse_range(h), None, "{h:?}");
        }
    }

    #[test]
    fn resolves_against_the_size() {
        let r = |s: RangeSpec, size| s.resolve(size).map(|r| (r.start, r.end));
        assert_eq!(r(RangeSpec::FromTo(0, 9), 100), Some((0, 9)));
        assert_eq!(
            r(RangeSpec::FromTo(90, 200), 100),
            Some((90, 99)),
            "end clamped"
        );
        assert_eq!(
            r(RangeSpec::FromTo(100, 200), 100),
            None,
            "starts past the end"
        );
        assert_eq!(r(RangeSpec::From(99), 100), Some((99, 99)));
        assert_eq!(r(RangeSpec::From(100), 100), None);
        assert_eq!(r(RangeSpec::Suffix(10), 100), Some((90, 99)));
        assert_eq!(
            r(RangeSpec::Suffix(1000), 100),
            Some((0, 99)),
            "whole object"
        );
        assert_eq!(r(RangeSpec::Suffix(0), 100), None);
        assert_eq!(r(RangeSpec::From(0), 0), None, "nothing in an empty object");
        assert_eq!(r(RangeSpec::Suffix(5), 0), None);
        let br = RangeSpec::FromTo(2, 4).resolve(10).unwrap();
        assert_eq!(br.len(), 3);
        assert_eq!(br.content_range(10), "bytes 2-4/10");
    }
}
