//! The `mictlanx` command against a cluster that requires tokens and speaks TLS: the token
//! and the CA come from the environment or `./.env`, as every other setting does.

#[path = "../../tests/support/pki.rs"]
mod pki;

use std::path::Path;
use std::process::{Command, Output};

use mictlanx_server::auth::{ClusterToken, Role, TokenSet};
use mictlanx_server::tls::TlsFiles;
use mictlanx_server::LocalCluster;

const WRITE: &str = "cli-write-token-0123456789";

fn mictlanx(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mictlanx"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("MICTLANX_URI")
        .env_remove("MICTLANX_ROUTERS")
        .env_remove("MICTLANX_TOKEN")
        .env_remove("MICTLANX_CA_FILE")
        .env("MICTLANX_LOG", "error")
        .env("MICTLANX_TIMEOUT_SECS", "10");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("mictlanx runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn token_and_ca_from_env_and_dotenv_reach_a_tls_cluster() {
    let pki = pki::Pki::generate("cli");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let cluster = rt
        .block_on(
            LocalCluster::builder()
                .peers(1)
                .auth_tokens(
                    TokenSet::new()
                        .with(Role::Write, WRITE, None)
                        .expect("token"),
                )
                .cluster_token(ClusterToken::new("cli-cluster-token-0123456789").expect("token"))
                .tls(TlsFiles::new(&pki.cert, &pki.key), &pki.ca)
                .start(),
        )
        .expect("cluster starts");
    let uri = cluster.uri();
    let ca = pki.ca.to_string_lossy().into_owned();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(d.join("in.bin"), vec![9u8; 120_000]).expect("input");

    // Without a token: the router says 401, the command fails with exit code 1.
    let out = mictlanx(
        d,
        &["put", "-b", "sec", "-k", "k", "in.bin"],
        &[("MICTLANX_URI", &uri), ("MICTLANX_CA_FILE", &ca)],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("AuthenticationError"),
        "{}",
        stderr(&out)
    );

    // Without the CA: the certificate is refused, clearly.
    let out = mictlanx(
        d,
        &["put", "-b", "sec", "-k", "k", "in.bin"],
        &[("MICTLANX_URI", &uri), ("MICTLANX_TOKEN", WRITE)],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("not trusted"), "{}", stderr(&out));

    // Token and CA in ./.env: put and get work, and the bytes come back.
    std::fs::write(
        d.join(".env"),
        format!("MICTLANX_URI={uri}\nMICTLANX_TOKEN={WRITE}\nMICTLANX_CA_FILE={ca}\n"),
    )
    .expect(".env");
    let out = mictlanx(
        d,
        &["--quiet", "put", "-b", "sec", "-k", "k", "in.bin"],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = mictlanx(d, &["--quiet", "get", "sec", "k", "-o", "out.bin"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(d.join("out.bin")).expect("output"),
        vec![9u8; 120_000]
    );
    rt.block_on(cluster.shutdown());
}
