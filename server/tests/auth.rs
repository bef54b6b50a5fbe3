//! Bearer-token auth end to end on a real `LocalCluster`: 401 and 403 on the router and on
//! a peer, the cluster token that alone lets a peer be changed, `/health` and `/metrics`.
//! (That tokens never reach a log line is `auth_logs.rs`: it needs a test binary of its own.)

use mictlanx::{Error, PutOptions};
use reqwest::{Method, StatusCode};

#[path = "support/secured_cluster.rs"]
mod secured;

use secured::*;

#[tokio::test]
async fn the_router_answers_401_without_a_valid_token_and_403_for_the_wrong_role() {
    let cluster = secured_cluster(false).await;
    let base = cluster.router_url();
    let peers = format!("{base}/api/v4/peers");

    // Open routes.
    assert_eq!(
        call(Method::GET, &format!("{base}/health"), None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(Method::GET, &format!("{base}/metrics"), None).await.0,
        StatusCode::OK
    );

    // No token: 401 with a bare challenge and our JSON error shape.
    let (status, challenge, detail) = call(Method::GET, &peers, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenge.as_deref(), Some("Bearer realm=\"mictlanx\""));
    assert!(detail.contains("missing"), "{detail}");
    // A wrong token, a cut token, another scheme, the cluster token, garbage: all 401.
    let cut = bearer(&READ[..READ.len() - 1]);
    let basic = format!("Basic {READ}");
    let cluster_token = bearer(CLUSTER);
    let huge = bearer(&"x".repeat(64 * 1024));
    for bad in [
        "Bearer not-a-token-of-ours-at-all",
        cut.as_str(),
        basic.as_str(),
        cluster_token.as_str(),
        "Bearer",
        huge.as_str(),
    ] {
        let (status, challenge, _) = call(Method::GET, &peers, Some(bad)).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{}",
            &bad[..bad.len().min(40)]
        );
        assert!(challenge.is_some_and(|c| c.starts_with("Bearer")));
    }
    // Right role: 200. Wrong role: 403 with insufficient_scope.
    assert_eq!(
        call(Method::GET, &peers, Some(&bearer(READ))).await.0,
        StatusCode::OK
    );
    let (status, challenge, detail) = call(
        Method::POST,
        &format!("{base}/api/v4/xpeers"),
        Some(&bearer(WRITE)),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(challenge.is_some_and(|c| c.contains("insufficient_scope")));
    assert!(detail.contains("admin"), "{detail}");

    // Through the client: a read token cannot put, a write token can, and cannot delete.
    let data = vec![7u8; 300_000];
    let reader = client(&cluster, Some(READ));
    let err = reader
        .put_bytes("b", "k", data.clone(), PutOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");
    assert_eq!(err.class_name(), "PermissionError");
    let anonymous = client(&cluster, None);
    let err = anonymous.get_bytes("b", "k").await.unwrap_err();
    assert!(matches!(err, Error::Authentication { .. }), "{err}");
    assert_eq!(err.class_name(), "AuthenticationError");

    let writer = client(&cluster, Some(WRITE));
    writer
        .put_bytes("b", "k", data.clone(), PutOptions::default())
        .await
        .expect("a write token puts (and the router reaches the peer with the cluster token)");
    assert_eq!(
        &reader.get_bytes("b", "k").await.expect("read").data[..],
        &data[..]
    );
    let err = writer.delete("b", "k").await.unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");
    client(&cluster, Some(ADMIN))
        .delete("b", "k")
        .await
        .expect("an admin token deletes");
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_peer_takes_changes_only_with_the_cluster_token() {
    let cluster = secured_cluster(true).await;
    let peer = cluster.peer_urls().remove(0);

    assert_eq!(
        call(Method::GET, &format!("{peer}/health"), None).await.0,
        StatusCode::OK
    );
    // --protect-metrics: /metrics needs a read token.
    let metrics = format!("{peer}/metrics");
    assert_eq!(
        call(Method::GET, &metrics, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(Method::GET, &metrics, Some(&bearer(READ))).await.0,
        StatusCode::OK
    );

    // Reads: a read token or the cluster token.
    let ufs = format!("{peer}/api/v4/stats/ufs");
    assert_eq!(
        call(Method::GET, &ufs, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(Method::GET, &ufs, Some(&bearer(READ))).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(Method::GET, &ufs, Some(&bearer(CLUSTER))).await.0,
        StatusCode::OK
    );

    // Changes: even an admin token is refused (403); only the cluster token gets through
    // (to a 404: there is no such key).
    let key = format!("{peer}/api/v4/buckets/b/missing-key");
    let upload = format!("{peer}/api/v4/buckets/data/no-such-task/chunked");
    for url in [&key, &upload] {
        let method = if url == &key {
            Method::DELETE
        } else {
            Method::POST
        };
        assert_eq!(
            call(method.clone(), url, None).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            call(method.clone(), url, Some("Bearer forged-token-0123456789"))
                .await
                .0,
            StatusCode::UNAUTHORIZED
        );
        let (status, _, detail) = call(method.clone(), url, Some(&bearer(ADMIN))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{url}");
        assert!(detail.contains("cluster token"), "{detail}");
        let (status, _, _) = call(method, url, Some(&bearer(CLUSTER))).await;
        assert!(
            status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
            "{url}: {status}"
        );
    }
    cluster.shutdown().await;
}
