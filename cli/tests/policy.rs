//! `mictlanx policy ...` as built: `check` offline (FILE:LINE:COL errors, exit 2), and
//! apply / ls / status / rm against a `LocalCluster`, in text and `--json`.

mod support;

use support::{json, run, stderr, stdout, Fixture};

/// The original README's example, as written (with its `ACCESS_FREQUENNCY` typo).
const README: &str = include_str!("../../docs/examples/readme-policy.tlaloc");

#[test]
fn check_reports_file_line_column_and_exits_2_when_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("readme.tlaloc"), README).unwrap();

    let out = run(d, &["policy", "check", "readme.tlaloc"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).trim(),
        "readme.tlaloc:23:23: unknown variable $ACCESS_FREQUENNCY (did you mean ACCESS_FREQUENCY?)"
    );

    let out = run(d, &["--json", "policy", "check", "readme.tlaloc"]);
    assert_eq!(out.status.code(), Some(2));
    let v = json(&out);
    assert_eq!(v["valid"], false);
    assert_eq!(v["errors"][0]["line"], 23);
    assert_eq!(v["errors"][0]["column"], 23);

    // Lenient: valid, with the warning on stderr.
    let out = run(d, &["policy", "check", "--lenient", "readme.tlaloc"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("valid (ACTIVE, 6 where peers, 1 triggers)"));
    assert!(stderr(&out).contains("readme.tlaloc:23:23: unknown variable"));
    let out = run(
        d,
        &["--json", "policy", "check", "--lenient", "readme.tlaloc"],
    );
    let v = json(&out);
    assert_eq!(v["valid"], true);
    assert_eq!(v["warnings"].as_array().map(Vec::len), Some(1));

    // A fixed file is valid; broken ones list every error, each on its own line.
    let fixed = README.replace("FREQUENNCY", "FREQUENCY");
    std::fs::write(d.join("fixed.tlaloc"), &fixed).unwrap();
    assert_eq!(
        run(d, &["policy", "check", "fixed.tlaloc"]).status.code(),
        Some(0)
    );
    let broken = fixed
        .replace("who: pool-1.peer-1", "who: pool-3.peer-1")
        .replace("- pool-2.peer-3", "- pool-2.peer-4");
    std::fs::write(d.join("broken.tlaloc"), broken).unwrap();
    let out = run(d, &["policy", "check", "broken.tlaloc"]);
    assert_eq!(out.status.code(), Some(2));
    let lines: Vec<String> = stderr(&out).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("broken.tlaloc:11:6: peer pool-3.peer-1 is not declared"));
    assert!(lines[1].starts_with("broken.tlaloc:20:7: peer pool-2.peer-4 is not declared"));
    // Empty, binary and missing files.
    std::fs::write(d.join("empty"), "").unwrap();
    assert_eq!(run(d, &["policy", "check", "empty"]).status.code(), Some(2));
    std::fs::write(d.join("binary"), [0xffu8, 0, 1]).unwrap();
    assert_eq!(
        run(d, &["policy", "check", "binary"]).status.code(),
        Some(1)
    );
    let out = run(d, &["policy", "check", "missing"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot read missing"));
}

#[test]
fn apply_ls_status_rm_against_a_local_cluster() {
    let f = Fixture::start(1);
    let (uri, d) = (f.uri.clone(), f.dir());
    let small = "apac: v1 available-resources: pool-1: - peer-1 who: pool-1.peer-1
                 what: - cubeta.red_file where: - pool-1.peer-1 how: PASSIVE
                 when: - cubeta.red_file: $ACCESS_COUNT >= 1000";
    std::fs::write(d.join("p.apac"), small).unwrap();
    std::fs::write(d.join("readme.tlaloc"), README).unwrap();

    // The typo is refused by the router too, unless --lenient.
    let out = run(d, &["--uri", &uri, "policy", "apply", "readme.tlaloc"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("23:23: unknown variable"),
        "{}",
        stderr(&out)
    );

    let out = run(d, &["--uri", &uri, "--json", "policy", "apply", "p.apac"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let applied = json(&out);
    let id = applied["id"].as_str().expect("id").to_string();
    assert_eq!(applied["state"], "waiting");
    assert_eq!(applied["how"], "PASSIVE");

    let out = run(d, &["--uri", &uri, "policy", "ls"]);
    assert!(
        stdout(&out).contains(&format!("{id}  PASSIVE  waiting")),
        "{}",
        stdout(&out)
    );
    let out = run(d, &["--uri", &uri, "policy", "status", &id]);
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("when cubeta.red_file: $ACCESS_COUNT >= 1000 (observed 0.00)"),
        "{}",
        stdout(&out)
    );
    let out = run(d, &["--uri", &uri, "--json", "policy", "status", &id]);
    assert_eq!(json(&out)["triggers"][0]["threshold"], 1000.0);
    // The declared peer was started in the cluster's process.
    let peers = f.block_on(f.cluster().provisioned_peers());
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].0, "pool-1.peer-1");

    let out = run(d, &["--uri", &uri, "--json", "policy", "rm", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&out)["removed"], true);
    let out = run(d, &["--uri", &uri, "policy", "status", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no policy"), "{}", stderr(&out));
    let out = run(d, &["--uri", &uri, "policy", "ls"]);
    assert_eq!(stdout(&out).trim(), "no policies");
}
