//! Router and peer addresses: `mictlanx://` URIs and the older `id:host:port` strings.
//!
//! A MictlanX deployment is reached through one or more routers (and a router reaches its
//! peers) named in a URI such as
//!
//! ```text
//! mictlanx://router-0@10.0.0.1:60666,router-1@10.0.0.2:60666/?protocol=http&api_version=4&http2=0
//! ```
//!
//! ([`parse_routers`], [`parse_peers`], [`build_uri`]; reference §5.2) or, in older
//! configurations, a whitespace-separated list of `id:host:port` items where port `-1` means
//! "no port" ([`parse_legacy`]; reference §5.3). [`parse_addresses`] accepts both.
//!
//! # Examples
//!
//! ```
//! use mictlanx::uri::{parse_routers, Protocol};
//!
//! let routers = parse_routers("mictlanx://r0@localhost:60666?protocol=http")?;
//! assert_eq!(routers[0].protocol, Protocol::Http);
//! assert_eq!(routers[0].base_url(), "http://localhost:60666");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::str::FromStr;

use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The scheme every MictlanX URI starts with.
pub const SCHEME: &str = "mictlanx://";

/// The API version used when a URI or legacy string does not say (`/api/v4/...`).
pub const DEFAULT_API_VERSION: u32 = 4;

/// Why an address list could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum UriError {
    /// The URI does not start with [`SCHEME`].
    #[error("URI must start with mictlanx:// (got {uri:?})")]
    InvalidScheme {
        /// The URI as given, truncated to 64 characters.
        uri: String,
    },
    /// The protocol is neither `http` nor `https`.
    #[error("invalid protocol {value:?}: expected http or https")]
    InvalidProtocol {
        /// The protocol as given.
        value: String,
    },
    /// The URI or string lists no address at all.
    #[error("no router or peer address given")]
    NoRouters,
    /// An address has no `:port`.
    #[error("address {spec:?} has no port (expected [id@]host:port)")]
    MissingPort {
        /// The address as given.
        spec: String,
    },
    /// An address has an empty host.
    #[error("address {spec:?} has an empty host")]
    EmptyHost {
        /// The address as given.
        spec: String,
    },
    /// An address has a host containing whitespace or control characters.
    #[error("address {spec:?} has an invalid host (it contains whitespace or control characters)")]
    InvalidHost {
        /// The address as given.
        spec: String,
    },
    /// A port is not an integer in 1..=65535.
    #[error("address {spec:?} has an invalid port {port:?}: expected an integer from 1 to 65535")]
    InvalidPort {
        /// The address as given.
        spec: String,
        /// The port as given.
        port: String,
    },
    /// The `api_version` query parameter is not a positive integer.
    #[error("invalid api_version {value:?}: expected a positive integer")]
    InvalidApiVersion {
        /// The value as given.
        value: String,
    },
    /// A legacy item is not of the form `id:host:port`.
    #[error("legacy address {entry:?} is not of the form id:host:port")]
    InvalidLegacyEntry {
        /// The item as given.
        entry: String,
    },
}

/// The protocol used to reach a router or peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

impl Protocol {
    /// The lowercase name, as used in URLs: `"http"` or `"https"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Https => "https",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Protocol {
    type Err = UriError;

    /// Parses `http` or `https`, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("http") {
            Ok(Protocol::Http)
        } else if s.eq_ignore_ascii_case("https") {
            Ok(Protocol::Https)
        } else {
            Err(UriError::InvalidProtocol {
                value: s.to_owned(),
            })
        }
    }
}

/// The address of one router or peer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeAddress {
    /// The node's id (`router-0`, `peer-1`), if the configuration names it.
    pub id: Option<String>,
    /// Host name or IP address, possibly followed by a path for reverse-proxied deployments
    /// (`example.org/v0/mictlanx/router`). An IPv6 address is kept without brackets.
    pub host: String,
    /// The port, or `None` to leave it out of URLs (the protocol's default port).
    pub port: Option<u16>,
    /// `http` or `https`.
    pub protocol: Protocol,
    /// The API version, the `N` of `/api/vN/...` (4 in practice).
    pub api_version: u32,
    /// Whether to speak HTTP/2 to this node.
    pub http2: bool,
}

impl NodeAddress {
    /// An address without id, with API version 4 and without HTTP/2.
    ///
    /// # Examples
    ///
    /// ```
    /// use mictlanx::uri::{NodeAddress, Protocol};
    ///
    /// let node = NodeAddress::new("127.0.0.1", Some(25000), Protocol::Http).with_id("peer-0");
    /// assert_eq!(node.label(), "peer-0");
    /// assert_eq!(node.base_url(), "http://127.0.0.1:25000");
    /// ```
    pub fn new(host: impl Into<String>, port: Option<u16>, protocol: Protocol) -> Self {
        Self {
            id: None,
            host: host.into(),
            port,
            protocol,
            api_version: DEFAULT_API_VERSION,
            http2: false,
        }
    }

    /// The same address with the given id.
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The base URL of the node: `"{protocol}://{host}"`, or `"{protocol}://{host}:{port}"`
    /// when a port is set.
    ///
    /// A host carrying a path is concatenated, with the port placed before the path
    /// (`example.org:8080/v0/router`; the Python client appends it after the path, which no
    /// HTTP client reads as a port). An IPv6 host (one containing `:` before its path) is
    /// wrapped in brackets. Unlike the original Python client, which drops
    /// the port of every `https` router, an explicit port is **kept** for `https` too: a
    /// router behind a TLS proxy on its default port is written without a port (port `-1` in
    /// legacy strings), and one on 8443 then works.
    ///
    /// # Examples
    ///
    /// ```
    /// use mictlanx::uri::{NodeAddress, Protocol};
    ///
    /// let proxied = NodeAddress::new("example.org/v0/mictlanx/router", None, Protocol::Https);
    /// assert_eq!(proxied.base_url(), "https://example.org/v0/mictlanx/router");
    /// let tls = NodeAddress::new("example.org", Some(8443), Protocol::Https);
    /// assert_eq!(tls.base_url(), "https://example.org:8443");
    /// let path_and_port = NodeAddress::new("example.org/v0/router", Some(8080), Protocol::Http);
    /// assert_eq!(path_and_port.base_url(), "http://example.org:8080/v0/router");
    /// let v6 = NodeAddress::new("::1", Some(60666), Protocol::Http);
    /// assert_eq!(v6.base_url(), "http://[::1]:60666");
    /// ```
    pub fn base_url(&self) -> String {
        let (authority, path) = match self.host.find('/') {
            Some(i) => self.host.split_at(i),
            None => (self.host.as_str(), ""),
        };
        let authority = if authority.contains(':') && !authority.starts_with('[') {
            format!("[{authority}]")
        } else {
            authority.to_owned()
        };
        match self.port {
            Some(port) => format!("{}://{authority}:{port}{path}", self.protocol),
            None => format!("{}://{authority}{path}", self.protocol),
        }
    }

    /// A short name for logs: the id if there is one, else `host:port` (or `host`).
    ///
    /// # Examples
    ///
    /// ```
    /// use mictlanx::uri::{NodeAddress, Protocol};
    ///
    /// assert_eq!(NodeAddress::new("h", Some(1), Protocol::Http).label(), "h:1");
    /// assert_eq!(NodeAddress::new("h", None, Protocol::Http).label(), "h");
    /// ```
    pub fn label(&self) -> String {
        match (&self.id, self.port) {
            (Some(id), _) => id.clone(),
            (None, Some(port)) => format!("{}:{port}", self.host),
            (None, None) => self.host.clone(),
        }
    }
}

/// Parses a `mictlanx://` URI of routers; the protocol defaults to `https`.
///
/// The format is `mictlanx://<spec>[,<spec>...][/][?protocol=..&api_version=..&http2=..]`:
///
/// * the text after the first `?` is the query: `&`-separated `key=value` pairs, percent-decoded;
///   a leading `/` on a key is ignored (so the malformed `...:60666?/api_version=4` found in
///   MictlanX examples works), unknown keys and empty values are ignored, the first occurrence
///   of a key wins, and the query applies to every node;
/// * `protocol` is `http` or `https` (any case); `api_version` a positive integer (default 4);
///   `http2` is true for `1`, `true`, `yes`, `on` (any case) and false otherwise;
/// * the rest is split on `,`; each spec is trimmed of whitespace and `/`, empty specs are
///   dropped;
/// * a spec is `[id@]host:port`, split on the first `@` (an empty id counts as none) and on the
///   **last** `:`, so `2001:db8::1:60666` is host `2001:db8::1`, port 60666 (a bracketed
///   `[2001:db8::1]` loses its brackets); the host may carry a path
///   (`apix.tamps.cinvestav.mx/mictlanxx:60667`); the port must be an integer 1..=65535.
///
/// # Errors
///
/// [`UriError::InvalidScheme`], [`UriError::NoRouters`] when no spec is left,
/// [`UriError::MissingPort`], [`UriError::InvalidPort`], [`UriError::EmptyHost`],
/// [`UriError::InvalidHost`], [`UriError::InvalidProtocol`], [`UriError::InvalidApiVersion`].
///
/// # Examples
///
/// ```
/// use mictlanx::uri::{parse_routers, Protocol};
///
/// let routers = parse_routers("mictlanx://r0@localhost:60666,r1@localhost:60667/?http2=1")?;
/// assert_eq!(routers.len(), 2);
/// assert_eq!(routers[1].id.as_deref(), Some("r1"));
/// assert_eq!(routers[1].port, Some(60667));
/// assert_eq!(routers[1].protocol, Protocol::Https);
/// assert!(routers[1].http2);
/// assert!(parse_routers("http://r0@h:1").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn parse_routers(uri: &str) -> Result<Vec<NodeAddress>, UriError> {
    parse_uri(uri, Protocol::Https)
}

/// Parses a `mictlanx://` URI of peers; the protocol defaults to `http`.
///
/// Same rules as [`parse_routers`].
///
/// # Errors
///
/// As [`parse_routers`].
///
/// # Examples
///
/// ```
/// use mictlanx::uri::{parse_peers, Protocol};
///
/// let peers = parse_peers("mictlanx://peer-0@127.0.0.1:25000,peer-1@127.0.0.1:25001")?;
/// assert_eq!(peers[0].protocol, Protocol::Http);
/// assert_eq!(peers[0].api_version, 4);
/// assert_eq!(peers[1].base_url(), "http://127.0.0.1:25001");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn parse_peers(uri: &str) -> Result<Vec<NodeAddress>, UriError> {
    parse_uri(uri, Protocol::Http)
}

/// The query parameters of a `mictlanx://` URI.
struct Query {
    protocol: Protocol,
    api_version: u32,
    http2: bool,
}

fn parse_uri(uri: &str, default_protocol: Protocol) -> Result<Vec<NodeAddress>, UriError> {
    let rest = uri
        .strip_prefix(SCHEME)
        .ok_or_else(|| UriError::InvalidScheme {
            uri: uri.chars().take(64).collect(),
        })?;
    let (specs, query) = match rest.split_once('?') {
        Some((specs, query)) => (specs, query),
        None => (rest, ""),
    };
    let query = parse_query(query, default_protocol)?;

    let mut nodes = Vec::new();
    for spec in specs.split(',') {
        let spec = spec.trim_matches(|c: char| c.is_whitespace() || c == '/');
        if spec.is_empty() {
            continue;
        }
        nodes.push(parse_spec(spec, &query)?);
    }
    if nodes.is_empty() {
        return Err(UriError::NoRouters);
    }
    Ok(nodes)
}

fn decode(s: &str) -> String {
    // As application/x-www-form-urlencoded (Python's parse_qs): `+` is a space.
    let s = s.replace('+', " ");
    percent_decode_str(&s).decode_utf8_lossy().into_owned()
}

fn parse_query(query: &str, default_protocol: Protocol) -> Result<Query, UriError> {
    let mut protocol = None;
    let mut api_version = None;
    let mut http2 = None;
    for pair in query.split('&') {
        let Some((key, value)) = pair.split_once('=') else {
            continue;
        };
        let key = decode(key);
        let value = decode(value);
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        let slot = match key.trim().trim_start_matches('/') {
            "protocol" => &mut protocol,
            "api_version" => &mut api_version,
            "http2" => &mut http2,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(value.to_owned());
        }
    }
    let protocol = match protocol {
        Some(p) => p.parse()?,
        None => default_protocol,
    };
    let api_version = match api_version {
        Some(v) => match v.parse::<u32>() {
            Ok(n) if n > 0 => n,
            _ => return Err(UriError::InvalidApiVersion { value: v }),
        },
        None => DEFAULT_API_VERSION,
    };
    let http2 = http2.is_some_and(|v| {
        ["1", "true", "yes", "on"]
            .iter()
            .any(|t| v.eq_ignore_ascii_case(t))
    });
    Ok(Query {
        protocol,
        api_version,
        http2,
    })
}

fn parse_spec(spec: &str, query: &Query) -> Result<NodeAddress, UriError> {
    let (id, location) = match spec.split_once('@') {
        Some((id, location)) => (Some(id.trim()).filter(|id| !id.is_empty()), location),
        None => (None, spec),
    };
    let (host, port) = location
        .rsplit_once(':')
        .ok_or_else(|| UriError::MissingPort {
            spec: spec.to_owned(),
        })?;
    let host = check_host(host, spec)?;
    let port = port.trim();
    let port = match port.parse::<u16>() {
        Ok(p) if p > 0 => p,
        _ => {
            return Err(UriError::InvalidPort {
                spec: spec.to_owned(),
                port: port.to_owned(),
            })
        }
    };
    Ok(NodeAddress {
        id: id.map(str::to_owned),
        host,
        port: Some(port),
        protocol: query.protocol,
        api_version: query.api_version,
        http2: query.http2,
    })
}

/// Trims the host, removes IPv6 brackets, refuses empty hosts and hosts with whitespace.
fn check_host(host: &str, spec: &str) -> Result<String, UriError> {
    let host = host.trim();
    let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(inner) => inner,
        None => host,
    };
    if host.is_empty() {
        return Err(UriError::EmptyHost {
            spec: spec.to_owned(),
        });
    }
    if host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(UriError::InvalidHost {
            spec: spec.to_owned(),
        });
    }
    Ok(host.to_owned())
}

/// Builds the canonical URI `mictlanx://id@host:port,…/?protocol=P&api_version=V&http2=0|1`.
///
/// The query is taken from the first node. Parsing the result with [`parse_routers`] or
/// [`parse_peers`] gives the nodes back when every node has a port and shares the first
/// node's protocol, API version and HTTP/2 flag, and ids and hosts are free of `,`, `?`, `@`
/// and surrounding `/` or whitespace. A node without a port is written without one (and
/// cannot be parsed back: use [`parse_legacy`] with port `-1` for such nodes). No nodes give
/// `"mictlanx://"`.
///
/// # Examples
///
/// ```
/// use mictlanx::uri::{build_uri, parse_routers, NodeAddress, Protocol};
///
/// let nodes = vec![
///     NodeAddress::new("localhost", Some(60666), Protocol::Http).with_id("r0"),
///     NodeAddress::new("localhost", Some(60667), Protocol::Http).with_id("r1"),
/// ];
/// let uri = build_uri(&nodes);
/// assert_eq!(
///     uri,
///     "mictlanx://r0@localhost:60666,r1@localhost:60667/?protocol=http&api_version=4&http2=0"
/// );
/// assert_eq!(parse_routers(&uri)?, nodes);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn build_uri(nodes: &[NodeAddress]) -> String {
    let Some(first) = nodes.first() else {
        return SCHEME.to_owned();
    };
    let specs: Vec<String> = nodes
        .iter()
        .map(|n| {
            let mut spec = String::new();
            if let Some(id) = &n.id {
                spec.push_str(id);
                spec.push('@');
            }
            spec.push_str(&n.host);
            if let Some(port) = n.port {
                spec.push(':');
                spec.push_str(&port.to_string());
            }
            spec
        })
        .collect();
    format!(
        "{SCHEME}{}/?protocol={}&api_version={}&http2={}",
        specs.join(","),
        first.protocol,
        first.api_version,
        u8::from(first.http2)
    )
}

/// Parses the legacy whitespace-separated `id:host:port` list (reference §5.3).
///
/// The id is the text before the first `:`, the port the text after the last `:`, and the
/// host everything in between, so hosts may carry a path or be IPv6 addresses
/// (`mictlanx-router-0:alpha.tamps.cinvestav.mx/v0/mictlanx/router:-1`). Port `-1` or `0`
/// means no port in URLs; any other port must be in 1..=65535. Every node gets `protocol`,
/// API version 4 and no HTTP/2.
///
/// # Errors
///
/// [`UriError::NoRouters`] for blank input, [`UriError::InvalidLegacyEntry`] for an item
/// without id or without two `:`, [`UriError::EmptyHost`], [`UriError::InvalidHost`] and
/// [`UriError::InvalidPort`].
///
/// # Examples
///
/// ```
/// use mictlanx::uri::{parse_legacy, Protocol};
///
/// let routers = parse_legacy(
///     "mictlanx-router-0:alpha.tamps.cinvestav.mx/v0/mictlanx/router:-1",
///     Protocol::Https,
/// )?;
/// assert_eq!(routers[0].port, None);
/// assert_eq!(
///     routers[0].base_url(),
///     "https://alpha.tamps.cinvestav.mx/v0/mictlanx/router"
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn parse_legacy(s: &str, protocol: Protocol) -> Result<Vec<NodeAddress>, UriError> {
    let nodes = s
        .split_whitespace()
        .map(|item| parse_legacy_item(item, protocol))
        .collect::<Result<Vec<_>, _>>()?;
    if nodes.is_empty() {
        return Err(UriError::NoRouters);
    }
    Ok(nodes)
}

fn parse_legacy_item(item: &str, protocol: Protocol) -> Result<NodeAddress, UriError> {
    let invalid = || UriError::InvalidLegacyEntry {
        entry: item.to_owned(),
    };
    let (id, rest) = item.split_once(':').ok_or_else(invalid)?;
    let (host, port) = rest.rsplit_once(':').ok_or_else(invalid)?;
    if id.is_empty() {
        return Err(invalid());
    }
    let host = check_host(host, item)?;
    let port = match port.parse::<i64>() {
        Ok(-1 | 0) => None,
        Ok(p) => match u16::try_from(p) {
            Ok(p) => Some(p),
            Err(_) => {
                return Err(UriError::InvalidPort {
                    spec: item.to_owned(),
                    port: port.to_owned(),
                })
            }
        },
        Err(_) => {
            return Err(UriError::InvalidPort {
                spec: item.to_owned(),
                port: port.to_owned(),
            })
        }
    };
    Ok(NodeAddress {
        id: Some(id.to_owned()),
        host,
        port,
        protocol,
        api_version: DEFAULT_API_VERSION,
        http2: false,
    })
}

/// Parses either form: a `mictlanx://` URI (with `default_protocol` when its query names
/// none) or a legacy `id:host:port` list with protocol `default_protocol`.
///
/// Surrounding whitespace is ignored when choosing the form.
///
/// # Errors
///
/// As [`parse_routers`] or [`parse_legacy`].
///
/// # Examples
///
/// ```
/// use mictlanx::uri::{parse_addresses, Protocol};
///
/// let a = parse_addresses("mictlanx://r0@h:60666", Protocol::Http)?;
/// let b = parse_addresses("r0:h:60666", Protocol::Http)?;
/// assert_eq!(a, b);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn parse_addresses(s: &str, default_protocol: Protocol) -> Result<Vec<NodeAddress>, UriError> {
    let s = s.trim();
    if s.starts_with(SCHEME) {
        parse_uri(s, default_protocol)
    } else {
        parse_legacy(s, default_protocol)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(id: Option<&str>, host: &str, port: Option<u16>, protocol: Protocol) -> NodeAddress {
        NodeAddress {
            id: id.map(str::to_owned),
            host: host.to_owned(),
            port,
            protocol,
            api_version: 4,
            http2: false,
        }
    }

    #[test]
    fn two_routers_canonical() {
        let r = parse_routers(
            "mictlanx://r0@localhost:60666,r1@localhost:60667/?protocol=http&api_version=4&http2=0",
        )
        .unwrap();
        assert_eq!(
            r,
            vec![
                node(Some("r0"), "localhost", Some(60666), Protocol::Http),
                node(Some("r1"), "localhost", Some(60667), Protocol::Http),
            ]
        );
        let r = parse_routers(
            "mictlanx://mictlanx-router-0@localhost:60666,mictlanx-router-1@localhost:60667/?protocol=http&api_version=4&http2=0",
        )
        .unwrap();
        assert_eq!(r[0].id.as_deref(), Some("mictlanx-router-0"));
        assert_eq!(r[1].id.as_deref(), Some("mictlanx-router-1"));
    }

    #[test]
    fn host_with_path() {
        let r = parse_routers(
            "mictlanx://r0@localhost:60666,apix.tamps.cinvestav.mx/mictlanxx:60667/?protocol=https&api_version=4&http2=0",
        )
        .unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].id, None);
        assert_eq!(r[1].host, "apix.tamps.cinvestav.mx/mictlanxx");
        assert_eq!(r[1].port, Some(60667));
        assert_eq!(r[1].protocol, Protocol::Https);
        assert_eq!(
            r[1].base_url(),
            "https://apix.tamps.cinvestav.mx:60667/mictlanxx"
        );
    }

    #[test]
    fn single_router_with_http2_false() {
        let r =
            parse_routers("mictlanx://r0@127.0.0.1:60666?protocol=http&api_version=4&http2=false")
                .unwrap();
        assert_eq!(
            r,
            vec![node(Some("r0"), "127.0.0.1", Some(60666), Protocol::Http)]
        );
    }

    #[test]
    fn ipv6_like_host_splits_on_last_colon() {
        let r = parse_routers("mictlanx://r0@2001:db8::1:60666?protocol=http").unwrap();
        assert_eq!(
            r,
            vec![node(Some("r0"), "2001:db8::1", Some(60666), Protocol::Http)]
        );
        assert_eq!(r[0].base_url(), "http://[2001:db8::1]:60666");
        let r = parse_routers("mictlanx://r0@[2001:db8::1]:60666?protocol=http").unwrap();
        assert_eq!(r[0].host, "2001:db8::1");
    }

    #[test]
    fn http2_values() {
        for (value, expected) in [
            (Some("1"), true),
            (Some("true"), true),
            (Some("yes"), true),
            (Some("on"), true),
            (Some("TRUE"), true),
            (Some("On"), true),
            (Some("0"), false),
            (Some("false"), false),
            (Some("no"), false),
            (Some("off"), false),
            (Some("weird"), false),
            (Some(""), false),
            (None, false),
        ] {
            let uri = match value {
                Some(v) => format!("mictlanx://r0@h:1?protocol=http&api_version=4&http2={v}"),
                None => "mictlanx://r0@h:1?protocol=http&api_version=4".to_owned(),
            };
            let r = parse_routers(&uri).unwrap();
            assert_eq!(r[0].http2, expected, "{value:?}");
        }
    }

    #[test]
    fn query_details() {
        // The malformed form used in MictlanX examples.
        let r =
            parse_routers("mictlanx://r0@localhost:60666?/api_version=4&protocol=http").unwrap();
        assert_eq!(r[0].protocol, Protocol::Http);
        assert_eq!(r[0].api_version, 4);
        let r =
            parse_routers("mictlanx://r0@h:1?/protocol=HTTP&api_version=5&unknown=x&flag").unwrap();
        assert_eq!(r[0].protocol, Protocol::Http);
        assert_eq!(r[0].api_version, 5);
        // Empty values are ignored, the first occurrence wins, values are decoded.
        let r =
            parse_routers("mictlanx://r0@h:1?protocol=&api_version=3&api_version=9&http2=%74rue")
                .unwrap();
        assert_eq!(r[0].protocol, Protocol::Https);
        assert_eq!(r[0].api_version, 3);
        assert!(r[0].http2);
        assert!(matches!(
            parse_routers("mictlanx://r0@h:1?protocol=ftp"),
            Err(UriError::InvalidProtocol { .. })
        ));
        for bad in ["0", "-1", "abc", "4.0"] {
            assert_eq!(
                parse_routers(&format!("mictlanx://r0@h:1?api_version={bad}")),
                Err(UriError::InvalidApiVersion { value: bad.into() })
            );
        }
    }

    #[test]
    fn query_applies_to_all_nodes() {
        let r =
            parse_peers("mictlanx://a@h:1,b@h:2?protocol=https&api_version=7&http2=yes").unwrap();
        for n in &r {
            assert_eq!(n.protocol, Protocol::Https);
            assert_eq!(n.api_version, 7);
            assert!(n.http2);
        }
    }

    #[test]
    fn whitespace_and_empty_entries_ignored() {
        let r = parse_routers("mictlanx://a@h:1, ,b@h:2,").unwrap();
        assert_eq!(
            r.iter().map(|n| n.id.as_deref()).collect::<Vec<_>>(),
            vec![Some("a"), Some("b")]
        );
        let r = parse_routers("mictlanx://  r0@h:10  , , r1@h:11 ,, ?protocol=http&api_version=4")
            .unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].port, Some(11));
        assert_eq!(parse_routers("mictlanx://@h:1").unwrap()[0].id, None);
    }

    #[test]
    fn uri_errors() {
        let err = parse_routers("http://r0@h:1?protocol=http").unwrap_err();
        assert!(matches!(err, UriError::InvalidScheme { .. }));
        assert!(err.to_string().contains("must start with mictlanx://"));
        assert!(matches!(
            parse_peers("notmictlanx://id@127.0.0.1:9000"),
            Err(UriError::InvalidScheme { .. })
        ));
        assert_eq!(parse_routers("mictlanx://"), Err(UriError::NoRouters));
        assert_eq!(
            parse_routers("mictlanx://?protocol=http"),
            Err(UriError::NoRouters)
        );
        assert_eq!(parse_routers("mictlanx://,?"), Err(UriError::NoRouters));
        assert_eq!(
            parse_peers("mictlanx://,?protocol=http"),
            Err(UriError::NoRouters)
        );
        for (uri, port) in [
            ("mictlanx://r0@h:abc?protocol=http", "abc"),
            ("mictlanx://id@host:notaport", "notaport"),
            ("mictlanx://r0@h:0", "0"),
            ("mictlanx://r0@h:70000", "70000"),
            ("mictlanx://r0@h:-1", "-1"),
            ("mictlanx://r0@h:", ""),
        ] {
            for result in [parse_routers(uri), parse_peers(uri)] {
                match result {
                    Err(UriError::InvalidPort { port: p, .. }) => assert_eq!(p, port, "{uri}"),
                    other => panic!("{uri}: {other:?}"),
                }
            }
        }
        assert_eq!(
            parse_routers("mictlanx://r0@host"),
            Err(UriError::MissingPort {
                spec: "r0@host".into()
            })
        );
        assert!(matches!(
            parse_routers("mictlanx://r0@:1"),
            Err(UriError::EmptyHost { .. })
        ));
        assert!(matches!(
            parse_routers("mictlanx://r0@a b:1"),
            Err(UriError::InvalidHost { .. })
        ));
    }

    #[test]
    fn peers_defaults() {
        let p = parse_peers("mictlanx://nodeX@10.0.0.1:7000").unwrap();
        assert_eq!(
            p,
            vec![node(Some("nodeX"), "10.0.0.1", Some(7000), Protocol::Http)]
        );
        let p =
            parse_peers("mictlanx://peer1@127.0.0.1:5000/?protocol=http&api_version=4").unwrap();
        assert_eq!(
            p,
            vec![node(Some("peer1"), "127.0.0.1", Some(5000), Protocol::Http)]
        );
        let p = parse_peers(
            "mictlanx://pA@192.168.0.10:6000,pB@192.168.0.11:6001/?protocol=http&api_version=5",
        )
        .unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].host, "192.168.0.11");
        assert_eq!(p[1].api_version, 5);
        let r = parse_routers("mictlanx://r0@10.0.0.1:7000").unwrap();
        assert_eq!(r[0].protocol, Protocol::Https);
        assert_eq!(r[0].api_version, 4);
        assert!(!r[0].http2);
    }

    #[test]
    fn build_and_round_trip() {
        let mut nodes = vec![
            node(Some("r0"), "localhost", Some(60666), Protocol::Https),
            node(
                None,
                "apix.tamps.cinvestav.mx/mictlanxx",
                Some(60667),
                Protocol::Https,
            ),
            node(Some("r2"), "2001:db8::1", Some(1), Protocol::Https),
        ];
        for n in &mut nodes {
            n.http2 = true;
            n.api_version = 5;
        }
        let uri = build_uri(&nodes);
        assert_eq!(
            uri,
            "mictlanx://r0@localhost:60666,apix.tamps.cinvestav.mx/mictlanxx:60667,r2@2001:db8::1:1/?protocol=https&api_version=5&http2=1"
        );
        assert_eq!(parse_routers(&uri).unwrap(), nodes);
        assert_eq!(parse_peers(&uri).unwrap(), nodes);
        assert_eq!(build_uri(&[]), "mictlanx://");
    }

    #[test]
    fn base_urls() {
        assert_eq!(
            node(None, "127.0.0.1", Some(60666), Protocol::Http).base_url(),
            "http://127.0.0.1:60666"
        );
        assert_eq!(
            node(None, "example.org", Some(8443), Protocol::Https).base_url(),
            "https://example.org:8443"
        );
        assert_eq!(
            node(None, "example.org", None, Protocol::Https).base_url(),
            "https://example.org"
        );
        assert_eq!(
            node(
                None,
                "alpha.tamps.cinvestav.mx/v0/mictlanx/router",
                None,
                Protocol::Https
            )
            .base_url(),
            "https://alpha.tamps.cinvestav.mx/v0/mictlanx/router"
        );
        assert_eq!(
            node(None, "example.org/v0/router", Some(8080), Protocol::Http).base_url(),
            "http://example.org:8080/v0/router"
        );
        assert_eq!(
            node(None, "::1", Some(80), Protocol::Http).base_url(),
            "http://[::1]:80"
        );
        assert_eq!(
            node(None, "[::1]", None, Protocol::Http).base_url(),
            "http://[::1]"
        );
        assert_eq!(
            node(None, "fe80::1/x", None, Protocol::Http).base_url(),
            "http://[fe80::1]/x"
        );
    }

    #[test]
    fn labels() {
        assert_eq!(node(Some("r0"), "h", Some(1), Protocol::Http).label(), "r0");
        assert_eq!(node(None, "h", Some(1), Protocol::Http).label(), "h:1");
        assert_eq!(node(None, "h", None, Protocol::Http).label(), "h");
    }

    #[test]
    fn protocols() {
        assert_eq!("HTTPS".parse::<Protocol>(), Ok(Protocol::Https));
        assert_eq!("http".parse::<Protocol>(), Ok(Protocol::Http));
        assert_eq!(Protocol::Https.to_string(), "https");
        assert_eq!(
            "ftp".parse::<Protocol>(),
            Err(UriError::InvalidProtocol {
                value: "ftp".into()
            })
        );
        assert_eq!(serde_json::to_string(&Protocol::Http).unwrap(), "\"http\"");
    }

    #[test]
    fn legacy() {
        let r = parse_legacy("r0:localhost:60666 r1:10.0.0.2:60667", Protocol::Http).unwrap();
        assert_eq!(
            r,
            vec![
                node(Some("r0"), "localhost", Some(60666), Protocol::Http),
                node(Some("r1"), "10.0.0.2", Some(60667), Protocol::Http),
            ]
        );
        let r = parse_legacy(
            "  mictlanx-router-0:alpha.tamps.cinvestav.mx/v0/mictlanx/router:-1\n",
            Protocol::Https,
        )
        .unwrap();
        assert_eq!(
            r,
            vec![node(
                Some("mictlanx-router-0"),
                "alpha.tamps.cinvestav.mx/v0/mictlanx/router",
                None,
                Protocol::Https
            )]
        );
        assert_eq!(
            r[0].base_url(),
            "https://alpha.tamps.cinvestav.mx/v0/mictlanx/router"
        );
        assert_eq!(parse_legacy("p:h:0", Protocol::Http).unwrap()[0].port, None);
        assert_eq!(
            parse_legacy("p:2001:db8::1:25000", Protocol::Http).unwrap()[0].host,
            "2001:db8::1"
        );
        for (s, port) in [
            ("r0:h:abc", "abc"),
            ("r0:h:70000", "70000"),
            ("r0:h:-2", "-2"),
            ("r0:h:", ""),
        ] {
            assert_eq!(
                parse_legacy(s, Protocol::Http),
                Err(UriError::InvalidPort {
                    spec: s.into(),
                    port: port.into()
                })
            );
        }
        for s in ["r0", "r0:h", ":h:1"] {
            assert_eq!(
                parse_legacy(s, Protocol::Http),
                Err(UriError::InvalidLegacyEntry { entry: s.into() }),
                "{s}"
            );
        }
        assert!(matches!(
            parse_legacy("r0::1", Protocol::Http),
            Err(UriError::EmptyHost { .. })
        ));
        assert_eq!(parse_legacy("  ", Protocol::Http), Err(UriError::NoRouters));
    }

    #[test]
    fn addresses_either_form() {
        let a = parse_addresses(" mictlanx://r0@h:60666 ", Protocol::Http).unwrap();
        let b = parse_addresses("r0:h:60666", Protocol::Http).unwrap();
        assert_eq!(a, b);
        let c = parse_addresses("mictlanx://r0@h:60666", Protocol::Https).unwrap();
        assert_eq!(c[0].protocol, Protocol::Https);
        let d = parse_addresses("r0:h:-1", Protocol::Https).unwrap();
        assert_eq!(d[0].port, None);
        assert!(parse_addresses("http://x", Protocol::Http).is_err());
    }

    fn arb_host() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9][a-z0-9.-]{0,20}[a-z0-9]",
            "[a-z0-9][a-z0-9.-]{0,10}/[a-z0-9/_-]{0,10}[a-z0-9]",
            "[0-9a-f]{1,4}(:[0-9a-f]{0,4}){2,7}",
            "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
        ]
    }

    fn arb_protocol() -> impl Strategy<Value = Protocol> {
        prop_oneof![Just(Protocol::Http), Just(Protocol::Https)]
    }

    proptest! {
        #[test]
        fn build_parse_round_trip(
            specs in prop::collection::vec(
                (prop::option::of("[A-Za-z0-9][A-Za-z0-9._:-]{0,15}"), arb_host(), 1u16..),
                1..6,
            ),
            protocol in arb_protocol(),
            api_version in 1u32..,
            http2 in any::<bool>(),
        ) {
            let nodes: Vec<NodeAddress> = specs
                .into_iter()
                .map(|(id, host, port)| NodeAddress {
                    id,
                    host,
                    port: Some(port),
                    protocol,
                    api_version,
                    http2,
                })
                .collect();
            let uri = build_uri(&nodes);
            prop_assert_eq!(parse_routers(&uri), Ok(nodes.clone()));
            prop_assert_eq!(parse_peers(&uri), Ok(nodes));
        }

        #[test]
        fn parsers_never_panic(s in "\\PC{0,60}") {
            let _ = parse_routers(&s);
            let _ = parse_legacy(&s, Protocol::Http);
            let _ = parse_addresses(&format!("mictlanx://{s}"), Protocol::Http);
        }
    }
}
