//! `mictlanx bench` as built: each scenario prints one JSON line with the fields and
//! counts some operations (no timing is asserted: the machine's speed is not under test).

use std::process::Command;

use serde_json::Value;

const FIELDS: [&str; 13] = [
    "scenario",
    "ops",
    "bytes",
    "seconds",
    "ops_per_s",
    "mb_per_s",
    "p50_ms",
    "p99_ms",
    "errors",
    "peak_rss_mb",
    "baseline",
    "baseline_mb_per_s",
    "ratio",
];

/// Runs `mictlanx bench ARGS` on its embedded cluster and returns its JSON lines.
fn bench(args: &[&str]) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mictlanx"))
        .arg("bench")
        .args(args)
        .current_dir(dir.path())
        .env_remove("MICTLANX_URI")
        .env_remove("MICTLANX_ROUTERS")
        .env("MICTLANX_LOG", "error")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

fn check(line: &Value, scenario: &str) {
    for field in FIELDS {
        assert!(line.get(field).is_some(), "{field} missing in {line}");
    }
    assert_eq!(line["scenario"], scenario, "{line}");
    assert!(line["ops"].as_u64().is_some_and(|n| n > 0), "{line}");
    assert!(line["bytes"].as_u64().is_some_and(|n| n > 0), "{line}");
    assert!(line["errors"].is_u64(), "{line}");
}

#[test]
fn put_small_prints_one_json_line_with_operations() {
    let lines = bench(&["put-small", "--duration", "1s", "--json"]);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    check(line, "put-small");
    assert!(line["p50_ms"].is_f64(), "{line}");
    // Its baseline: the same 4 KiB exchanges with a bare loopback server, same run.
    assert_eq!(line["baseline"], "wire", "{line}");
    assert!(
        line["baseline_ops_per_s"].as_f64().is_some_and(|v| v > 0.0),
        "{line}"
    );
    assert!(line["ratio"].as_f64().is_some_and(|v| v > 0.0), "{line}");
}

#[test]
fn put_large_prints_its_baselines_and_ratio() {
    let lines = bench(&["put-large", "--size", "4MB", "--json"]);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    check(line, "put-large");
    assert_eq!(line["ops"], 1, "{line}");
    assert_eq!(line["bytes"], 4_000_000, "{line}");
    assert!(
        line["baseline"] == "disk" || line["baseline"] == "wire",
        "{line}"
    );
    assert!(line["ratio"].is_f64(), "{line}");
}
