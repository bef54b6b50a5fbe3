//! TLS end to end: a `LocalCluster` whose router and peers speak HTTPS with certificates
//! from a CA generated here (rcgen), a client that trusts that CA (put + get), clients
//! that do not (refused with a clear, non-retried error), and the explicit opt-out.

#[path = "support/pki.rs"]
mod pki;

use std::time::Duration;

use mictlanx::{Client, ClientBuilder, Error, PutOptions, RetryConfig};
use mictlanx_server::auth::{ClusterToken, Role, TokenSet};
use mictlanx_server::tls::TlsFiles;
use mictlanx_server::LocalCluster;
use pki::Pki;

/// Upper bound of any single step.
const STEP: Duration = Duration::from_secs(30);
const TOKEN: &str = "tls-test-token-0123456789";

async fn tls_cluster(pki: &Pki) -> LocalCluster {
    let start = LocalCluster::builder()
        .peers(2)
        .tls(TlsFiles::new(&pki.cert, &pki.key), &pki.ca)
        .auth_tokens(
            TokenSet::new()
                .with(Role::Admin, TOKEN, None)
                .expect("token"),
        )
        .cluster_token(ClusterToken::new("tls-cluster-token-0123456789").expect("token"))
        .start();
    tokio::time::timeout(STEP, start)
        .await
        .expect("cluster starts in time")
        .expect("cluster starts")
}

fn quick(builder: ClientBuilder) -> ClientBuilder {
    builder
        .heartbeat_interval(Duration::ZERO)
        .retry(RetryConfig {
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            ..RetryConfig::default()
        })
        .timeout(Duration::from_secs(10))
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test]
async fn a_tls_cluster_round_trips_through_a_client_that_trusts_its_ca() {
    let pki = Pki::generate("round-trip");
    let cluster = tls_cluster(&pki).await;
    let uri = cluster.uri();
    assert!(uri.contains("protocol=https"), "{uri}");
    assert!(cluster.router_url().starts_with("https://"));

    // Configured the way the CLI is: MICTLANX_URI, MICTLANX_TOKEN, MICTLANX_CA_FILE.
    let vars = [
        ("MICTLANX_URI".to_string(), uri.clone()),
        ("MICTLANX_TOKEN".to_string(), TOKEN.to_string()),
        (
            "MICTLANX_CA_FILE".to_string(),
            pki.ca.to_string_lossy().into_owned(),
        ),
    ];
    let client = quick(ClientBuilder::from_vars(vars))
        .chunk_size("100kb")
        .build()
        .expect("client");
    let body = data(350_000);
    let step = async {
        let put = client
            .put_bytes(
                "secure",
                "ball",
                body.clone(),
                PutOptions::default().with_replication_factor(2),
            )
            .await
            .expect("put over TLS");
        assert_eq!(put.size, 350_000);
        let got = client
            .get_bytes("secure", "ball")
            .await
            .expect("get over TLS");
        assert_eq!(got.data.len(), body.len());
        assert!(got.data[..] == body[..], "the bytes read back differ");
        client
            .delete("secure", "ball")
            .await
            .expect("delete over TLS");
    };
    tokio::time::timeout(STEP, step).await.expect("in time");

    // Plain HTTP to a TLS port gets no HTTP answer.
    let plain = cluster.router_url().replacen("https://", "http://", 1);
    let answer = tokio::time::timeout(STEP, reqwest::get(format!("{plain}/health")))
        .await
        .expect("in time");
    assert!(answer.is_err(), "a TLS port answered plain HTTP");
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_client_refuses_a_certificate_it_does_not_trust() {
    let pki = Pki::generate("refused");
    let other = Pki::generate("stranger");
    let cluster = tls_cluster(&pki).await;
    let uri = cluster.uri();

    // Verification is on by default: the public roots do not know our CA; another CA does
    // not either.
    for builder in [
        Client::builder().routers_uri(&uri),
        Client::builder().routers_uri(&uri).ca_file(&other.ca),
    ] {
        let client = quick(builder.token(TOKEN)).build().expect("client");
        let err = tokio::time::timeout(STEP, client.get_bytes("b", "k"))
            .await
            .expect("in time")
            .unwrap_err();
        assert!(matches!(err, Error::Tls { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("not trusted") && text.contains("MICTLANX_CA_FILE"),
            "{text}"
        );
        assert_eq!(err.class_name(), "ConnectFailedError");
        assert!(!err.is_retryable(), "a certificate failure is not retried");
    }

    // The right CA is accepted (a 404 for a key that is not there is an answer).
    let trusting = quick(
        Client::builder()
            .routers_uri(&uri)
            .token(TOKEN)
            .ca_file(&pki.ca),
    )
    .build()
    .expect("client");
    let err = tokio::time::timeout(STEP, trusting.get_bytes("b", "missing"))
        .await
        .expect("in time")
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");

    // Turning verification off is possible, explicitly.
    let reckless = quick(
        Client::builder()
            .routers_uri(&uri)
            .token(TOKEN)
            .danger_accept_invalid_certs(true),
    )
    .build()
    .expect("client");
    assert!(reckless.config().danger_accept_invalid_certs);
    let err = tokio::time::timeout(STEP, reckless.get_bytes("b", "missing"))
        .await
        .expect("in time")
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    cluster.shutdown().await;
}
