//! [`BearerToken`]: the token a client sends as `Authorization: Bearer`, never printed.

use std::fmt;

use reqwest::header::HeaderValue;

use crate::Error;

/// A bearer token for routers that require one (`MICTLANX_TOKEN`,
/// [`ClientBuilder::token`](crate::ClientBuilder::token)).
///
/// Its `Debug` is redacted and the header it makes is marked sensitive, so neither the
/// client's `Debug`, its configuration nor an HTTP trace shows it.
///
/// # Examples
///
/// ```
/// use mictlanx::BearerToken;
///
/// let token = BearerToken::new("s3cr3t-token-0123456789");
/// assert_eq!(format!("{token:?}"), "BearerToken(<redacted>)");
/// assert_eq!(token.secret(), "s3cr3t-token-0123456789");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(String);

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

impl BearerToken {
    /// Wraps a token (checked by [`ClientBuilder::build`](crate::ClientBuilder::build)).
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// The token itself, for callers that must pass it on.
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// `Bearer TOKEN` as a sensitive header value.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] when the token is empty or has characters a header cannot carry
    /// (the message never quotes it).
    pub(crate) fn authorization(&self) -> Result<HeaderValue, Error> {
        let bad = |why: &str| Error::Validation {
            message: format!("the bearer token (MICTLANX_TOKEN) {why}"),
        };
        if self.0.is_empty() {
            return Err(bad("is empty"));
        }
        if !self.0.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad("must be visible ASCII without spaces"));
        }
        let mut value =
            HeaderValue::from_str(&format!("Bearer {}", self.0)).map_err(|_| bad("is invalid"))?;
        value.set_sensitive(true);
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_sensitive_and_bad_tokens_are_refused_unquoted() {
        let h = BearerToken::new("abc-0123456789").authorization().unwrap();
        assert!(h.is_sensitive());
        assert_eq!(h, "Bearer abc-0123456789");
        for bad in ["", "has space", "tab\there", "caf\u{e9}-token", "nul\0byte"] {
            let err = BearerToken::new(bad)
                .authorization()
                .unwrap_err()
                .to_string();
            assert!(err.contains("MICTLANX_TOKEN"), "{err}");
            if !bad.is_empty() {
                assert!(!err.contains(bad), "{err}");
            }
        }
    }
}
