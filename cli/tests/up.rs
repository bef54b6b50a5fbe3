//! `mictlanx up` keeps its cluster: the peers an availability policy started come back at
//! the next `up` on the same data directory, after a kill -9, with every ball readable.

#[path = "../../tests/support/pki.rs"]
mod pki;
mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{mictlanx, run, stderr};

/// Declares two peers nobody runs, so that `up` starts them; its trigger never fires.
const POLICY: &str = "apac: v1
available-resources:
    pool-1:
        - peer-1
        - peer-2
who: pool-1.peer-1
what:
    - keep.ball-00
where:
    - pool-1.peer-1
    - pool-1.peer-2
how: PASSIVE
when:
    - keep.ball-00: $ACCESS_COUNT >= 1000000
";

const ELASTIC: [&str; 2] = ["pool-1.peer-1", "pool-1.peer-2"];
const BALLS: usize = 12;

/// A running `mictlanx up`, killed (by its pid) when dropped, test failure included.
struct Up {
    child: Child,
    /// Kept open: `up` must never write to a closed pipe.
    _stdout: BufReader<ChildStdout>,
    /// Its first line, `--json`.
    started: Value,
    /// The router's base URL.
    router: String,
}

impl Up {
    fn start(dir: &Path, peers: &str) -> Self {
        Self::start_with(dir, &["--peers", peers])
    }

    /// `mictlanx --json up --port 0 --data-dir data` and `extra`.
    fn start_with(dir: &Path, extra: &[&str]) -> Self {
        let mut args = vec!["--json", "up", "--port", "0", "--data-dir", "data"];
        args.extend_from_slice(extra);
        let mut child = mictlanx(dir, &args)
            .env_remove("MICTLANX_CA_FILE")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        // Ends at the first line, or at EOF if `up` fails (then the parse below says so).
        stdout.read_line(&mut line).unwrap();
        let started: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("up printed {line:?}: {e}"));
        let uri = started["uri"].as_str().expect("a uri").to_string();
        let router = mictlanx::uri::parse_routers(&uri).unwrap()[0].base_url();
        Self {
            child,
            _stdout: stdout,
            started,
            router,
        }
    }

    fn uri(&self) -> &str {
        self.started["uri"].as_str().expect("a uri")
    }

    /// Waits (at most `timeout`) for the child to exit.
    fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                return exit;
            }
            assert!(Instant::now() < deadline, "up did not exit in {timeout:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `GET url` as JSON.
fn get_json(rt: &tokio::runtime::Runtime, url: &str) -> Value {
    rt.block_on(async {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let resp = client
            .get(url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
        serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap()
    })
}

/// The router's peers that answered their last probe: `(id, base URL)`.
fn peers_up(rt: &tokio::runtime::Runtime, router: &str) -> Vec<(String, String)> {
    let list = get_json(rt, &format!("{router}/api/v4/peers"));
    let mut out: Vec<(String, String)> = list["available"]
        .as_array()
        .expect("available")
        .iter()
        .map(|p| {
            let id = p["peer_id"].as_str().unwrap().to_string();
            let url = format!(
                "http://{}:{}",
                p["ip_addr"].as_str().unwrap(),
                p["port"].as_i64().unwrap()
            );
            (id, url)
        })
        .collect();
    out.sort();
    out
}

/// Waits (at most 30 s) until the router sees `n` peers up, and returns them.
fn wait_peers_up(rt: &tokio::runtime::Runtime, router: &str, n: usize) -> Vec<(String, String)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let peers = peers_up(rt, router);
        if peers.len() >= n {
            return peers;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {n} peers up: {peers:?}",
            peers.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Ball `i`'s bytes: distinct content and sizes, some inline, some in files of their own.
fn ball(i: usize) -> Vec<u8> {
    let len = 1_000 + i * 9_000;
    (0..len).map(|j| ((j * 31 + i * 7) % 251) as u8).collect()
}

#[test]
fn up_brings_back_the_peers_policies_started_and_every_ball_is_read_again() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("p.apac"), POLICY).unwrap();

    let mut first = Up::start(d, "3");
    assert_eq!(first.started["peers"], 3);
    let out = run(d, &["--uri", first.uri(), "policy", "apply", "p.apac"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let peers = wait_peers_up(&rt, &first.router, 5);
    for id in ELASTIC {
        assert!(peers.iter().any(|(p, _)| p == id), "{peers:?}");
    }

    // One replica each: a ball placed on an elastic peer is only there.
    for i in 0..BALLS {
        let file = format!("ball-{i:02}");
        std::fs::write(d.join(&file), ball(i)).unwrap();
        let args = [
            "--uri",
            first.uri(),
            "-q",
            "put",
            file.as_str(),
            "-b",
            "keep",
            "-k",
            file.as_str(),
            "--rf",
            "1",
        ];
        let out = run(d, &args);
        assert!(out.status.success(), "put {file}: {}", stderr(&out));
    }
    let on_elastic: u64 = peers
        .iter()
        .filter(|(id, _)| ELASTIC.contains(&id.as_str()))
        .map(|(_, url)| {
            get_json(&rt, &format!("{url}/api/v4/balls/len"))["len"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert!(on_elastic > 0, "no ball landed on an elastic peer");
    let state: Value =
        serde_json::from_slice(&std::fs::read(d.join("data/cluster.json")).unwrap()).unwrap();
    assert_eq!(state["peers"].as_array().map(Vec::len), Some(5), "{state}");

    // A crash: nothing is shut down cleanly.
    first.child.kill().unwrap();
    first.wait_exit(Duration::from_secs(20));
    drop(first);

    // Fewer peers asked for than remembered: every remembered one comes back anyway.
    let mut second = Up::start(d, "2");
    assert_eq!(second.started["peers"], 5, "{}", second.started);
    assert_eq!(second.started["elastic_peers"], serde_json::json!(ELASTIC));
    let peers = wait_peers_up(&rt, &second.router, 5);
    assert_eq!(peers.len(), 5, "{peers:?}");
    for i in 0..BALLS {
        let key = format!("ball-{i:02}");
        let target = format!("back-{i:02}");
        let args = [
            "--uri",
            second.uri(),
            "-q",
            "get",
            "keep",
            key.as_str(),
            "-o",
            target.as_str(),
        ];
        let out = run(d, &args);
        assert!(out.status.success(), "get {key}: {}", stderr(&out));
        assert!(std::fs::read(d.join(&target)).unwrap() == ball(i), "{key}");
    }

    // The policy applied again finds its peers running: no duplicate starts.
    let out = run(d, &["--uri", second.uri(), "policy", "apply", "p.apac"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list = get_json(&rt, &format!("{}/api/v4/peers", second.router));
    let all =
        list["available"].as_array().unwrap().len() + list["unavailable"].as_array().unwrap().len();
    assert_eq!(all, 5, "{list}");

    // SIGTERM: a clean stop, and the list is still whole for the next start.
    let killed = Command::new("kill")
        .args(["-TERM", &second.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let exit = second.wait_exit(Duration::from_secs(20));
    assert!(exit.success(), "{exit:?}");
    let state: Value =
        serde_json::from_slice(&std::fs::read(d.join("data/cluster.json")).unwrap()).unwrap();
    let peers = state["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 5, "{state}");
    assert_eq!(
        peers.iter().filter(|p| p["elastic"] == true).count(),
        2,
        "{state}"
    );
}

#[test]
fn a_damaged_cluster_file_stops_up_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("data")).unwrap();
    std::fs::write(d.join("data/cluster.json"), b"{\"version\":1,\"peers\":[").unwrap();
    let out = run(d, &["up", "--port", "0", "--data-dir", "data"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("cluster.json is damaged"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // Nothing was started, nor the file replaced.
    assert!(!d.join("data/peer-0").exists());
    assert_eq!(
        std::fs::read(d.join("data/cluster.json")).unwrap(),
        b"{\"version\":1,\"peers\":["
    );
}

#[test]
fn up_prints_a_quoted_export_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut child = mictlanx(
        d,
        &["up", "--peers", "1", "--port", "0", "--data-dir", "data"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let uri = line
        .trim()
        .strip_prefix("export MICTLANX_URI='")
        .and_then(|rest| rest.strip_suffix('\''))
        .unwrap_or_else(|| panic!("{line:?}"));
    assert!(uri.starts_with("mictlanx://") && uri.contains('?'), "{uri}");
}

#[test]
fn up_takes_tokens_and_tls_like_the_server_cluster_command() {
    const WRITE: &str = "up-write-token-0123456789";
    let pki = pki::Pki::generate("up");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("tokens"), format!("write {WRITE} ingest\n")).unwrap();
    std::fs::write(d.join("in.bin"), ball(3)).unwrap();
    let (cert, key, ca) = (
        pki.cert.to_str().unwrap(),
        pki.key.to_str().unwrap(),
        pki.ca.to_str().unwrap(),
    );
    // No --cluster-token: the members share a random one, so the router can reach them.
    let up = Up::start_with(
        d,
        &[
            "--peers",
            "2",
            "--capacity",
            "1GB",
            "--auth-tokens",
            "tokens",
            "--tls-cert",
            cert,
            "--tls-key",
            key,
            "--ca-file",
            ca,
        ],
    );
    assert!(up.uri().contains("protocol=https"), "{}", up.uri());
    let put = |token: Option<&str>| {
        let mut cmd = mictlanx(
            d,
            &[
                "--uri",
                up.uri(),
                "-q",
                "put",
                "in.bin",
                "-b",
                "sec",
                "-k",
                "k",
            ],
        );
        cmd.env("MICTLANX_CA_FILE", ca)
            .env("MICTLANX_TIMEOUT_SECS", "10");
        match token {
            Some(t) => cmd.env("MICTLANX_TOKEN", t),
            None => cmd.env_remove("MICTLANX_TOKEN"),
        };
        cmd.output().unwrap()
    };
    let out = put(None);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a put without a token is refused"
    );
    let out = put(Some(WRITE));
    assert!(out.status.success(), "{}", stderr(&out));
    let state: Value =
        serde_json::from_slice(&std::fs::read(d.join("data/cluster.json")).unwrap()).unwrap();
    assert_eq!(state["peers"][0]["capacity"], 1_000_000_000u64, "{state}");
}
