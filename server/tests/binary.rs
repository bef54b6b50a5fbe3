//! The `mictlanx-server` binary: `cluster` prints a usable URI, serves, and stops cleanly on
//! SIGTERM (graceful shutdown, exit code 0).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn cluster_command_serves_then_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mictlanx-server"))
        .args(["cluster", "--peers", "2", "--port", "0", "--data-dir"])
        .arg(dir.path())
        .env("MICTLANX_LOG", "info")
        .env("MICTLANX_LOG_PATH", logs.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    // Quoted for a shell: the URI holds `?` and `&`.
    let uri = line
        .trim()
        .strip_prefix("export MICTLANX_URI='")
        .and_then(|rest| rest.strip_suffix('\''))
        .unwrap_or_else(|| panic!("prints the export line: {line:?}"));
    assert!(uri.contains('?'), "{uri}");
    let routers = mictlanx::uri::parse_routers(uri).unwrap();
    let health = format!("{}/health", routers[0].base_url());

    let rt = tokio::runtime::Runtime::new().unwrap();
    let body = rt.block_on(async {
        let resp = reqwest::get(&health).await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap()
    });
    assert!(body.contains("\"peers_up\":2"), "{body}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
    // The data directory is left for the next start.
    assert!(dir.path().join("peer-0").exists());
    // Events went to the log directory as JSON lines, one object per line, with names.
    let mut events = Vec::new();
    for entry in std::fs::read_dir(logs.path()).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            if let Some(e) = v.get("event").and_then(|e| e.as_str()) {
                events.push(e.to_string());
            }
        }
    }
    assert!(events.iter().any(|e| e == "SHUTDOWN"), "{events:?}");
}

#[test]
fn bad_flags_are_a_clear_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_mictlanx-server"))
        .args(["peer", "--capacity", "lots"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("capacity"));
}
