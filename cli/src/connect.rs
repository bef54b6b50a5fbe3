//! Building the client from flags, `MICTLANX_*` variables and `./.env`, in that order.

use mictlanx::{Client, ClientBuilder};

/// A client for `uri` when given, else for the environment (`MICTLANX_URI`,
/// `MICTLANX_ROUTERS`, `./.env`). With no router anywhere, says how to get one.
pub fn client(uri: Option<&str>) -> Result<Client, String> {
    build(uri, |b| b)
}

/// Like [`client`], with a change to the builder (e.g. a balancer that reads disk use).
pub fn build(
    uri: Option<&str>,
    adjust: impl FnOnce(ClientBuilder) -> ClientBuilder,
) -> Result<Client, String> {
    let mut builder = ClientBuilder::from_env().default_client_id("mictlanx-cli");
    if let Some(uri) = uri {
        if uri.contains("://") && !uri.starts_with("mictlanx://") {
            return Err(format!(
                "--uri {uri:?} is not a router address: use \
                 mictlanx://router-0@HOST:PORT/?protocol=http (or the older id:host:port form)"
            ));
        }
        builder = builder.routers_uri(uri);
    }
    adjust(builder).build().map_err(|e| {
        let msg = e.message();
        if msg.contains("no routers") {
            "no router configured: pass --uri mictlanx://router-0@HOST:PORT/?protocol=http or set \
             MICTLANX_URI (start a local cluster with `mictlanx up`, which prints the URI)"
                .to_string()
        } else {
            format!("bad client configuration: {msg}")
        }
    })
}
