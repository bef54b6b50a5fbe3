//! What the HTTP client carries on every request: the bearer token, the trusted CAs, and
//! (only when asked for explicitly) no certificate verification at all.

use reqwest::header::{HeaderMap, AUTHORIZATION};

use super::ClientConfig;
use crate::Error;

/// Applies the token and TLS settings of `config` to `builder`.
///
/// # Errors
///
/// [`Error::Validation`] when the token cannot be a header or the CA file cannot be read or
/// holds no certificate.
pub(crate) fn configure(
    mut builder: reqwest::ClientBuilder,
    config: &ClientConfig,
) -> Result<reqwest::ClientBuilder, Error> {
    if let Some(token) = &config.token {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, token.authorization()?);
        builder = builder.default_headers(headers);
    }
    if let Some(path) = &config.ca_file {
        let bad = |why: String| Error::Validation {
            message: format!("MICTLANX_CA_FILE {}: {why}", path.display()),
        };
        let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("no PEM certificate in it".to_string()));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    if config.danger_accept_invalid_certs {
        tracing::warn!(
            event = "TLS.VERIFY.OFF",
            client_id = %config.client_id,
            "certificate verification is off: any server can pose as the routers"
        );
        builder = builder.danger_accept_invalid_certs(true);
    }
    Ok(builder)
}
