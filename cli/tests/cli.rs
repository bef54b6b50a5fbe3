//! The built `mictlanx` binary against a `LocalCluster`: round trips, `--json`, exit codes,
//! standard streams, and the clear errors for bad input.

mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use support::{json_lines, mictlanx, run, stderr, Fixture};

#[test]
fn put_get_ls_stat_rm_round_trip_with_json() {
    let f = Fixture::start(2);
    let (uri, d) = (f.uri.clone(), f.dir());
    std::fs::create_dir_all(d.join("docs/img")).unwrap();
    std::fs::write(d.join("docs/a.txt"), b"alpha".repeat(1000)).unwrap();
    std::fs::write(d.join("docs/img/b.png"), vec![7u8; 300_000]).unwrap();

    let out = run(
        d,
        &[
            "--uri",
            &uri,
            "--json",
            "put",
            "-r",
            "docs",
            "-b",
            "cli",
            "--rf",
            "2",
            "--chunk-size",
            "100kb",
            "--tag",
            "owner=me",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 2);
    let png = lines
        .iter()
        .find(|l| l["ball_id"] == "img-b-png")
        .expect("png ball");
    assert_eq!(png["size"], 300_000);
    assert_eq!(png["num_chunks"], 3);

    let out = run(d, &["--uri", &uri, "--json", "ls", "cli"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let balls: Vec<String> = json_lines(&out)
        .iter()
        .map(|l| l["ball_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(balls, ["a-txt", "img-b-png"]);

    let out = run(d, &["--uri", &uri, "--json", "stat", "cli", "img-b-png"]);
    let stat = &json_lines(&out)[0];
    assert_eq!(stat["tags"]["owner"], "me");
    assert_eq!(stat["tags"]["fullname"], "b.png");
    assert_eq!(stat["tags"]["bucket_relative_path"], "img/");
    assert_eq!(stat["chunks"].as_array().unwrap().len(), 3);

    let out = run(
        d,
        &["--uri", &uri, "get", "cli", "img-b-png", "-o", "back.png"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(d.join("back.png")).unwrap(),
        vec![7u8; 300_000]
    );

    // Standard input in, standard output out.
    let mut child = mictlanx(d, &["--uri", &uri, "put", "-", "-b", "cli", "-k", "piped"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&b"streamed".repeat(50_000))
        .unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    let out = run(d, &["--uri", &uri, "get", "cli", "piped", "-o", "-"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"streamed".repeat(50_000));

    let out = run(d, &["--uri", &uri, "--json", "rm", "cli", "a-txt"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(json_lines(&out)[0]["n_deletes"].as_i64().unwrap() >= 1);
    let out = run(d, &["--uri", &uri, "get", "cli", "a-txt"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("NotFound"), "{}", stderr(&out));
    assert!(
        !d.join("a-txt").exists(),
        "no partial file after a failed get"
    );

    let out = run(d, &["--uri", &uri, "--json", "rm-bucket", "cli"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(d, &["--uri", &uri, "--json", "routers"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json_lines(&out)[0]["healthy"], true);
}

#[test]
fn errors_are_one_clear_line_with_the_right_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Usage errors: 2.
    assert_eq!(run(d, &["put"]).status.code(), Some(2));
    assert_eq!(run(d, &["frobnicate"]).status.code(), Some(2));
    // No router configured: says how to get one.
    let out = run(d, &["ls", "b"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("mictlanx up"), "{}", stderr(&out));
    // A bad URI.
    let out = run(d, &["--uri", "http://nope", "ls", "b"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("mictlanx://"), "{}", stderr(&out));
    // An unreachable router (a port nobody listens on).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let uri = format!("mictlanx://r0@127.0.0.1:{port}/?protocol=http");
    let out = run(d, &["--uri", &uri, "ls", "b"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out).trim().lines().count(), 1, "{}", stderr(&out));
    // A missing file.
    let out = run(d, &["--uri", &uri, "put", "missing.bin", "-b", "b"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("missing.bin"), "{}", stderr(&out));
    // stdin without a key.
    let out = run(d, &["--uri", &uri, "put", "-", "-b", "b"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--key"), "{}", stderr(&out));
}

#[test]
fn up_prints_a_uri_that_works_and_stops_on_sigterm() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut child = mictlanx(
        d,
        &[
            "--json",
            "up",
            "--peers",
            "2",
            "--port",
            "0",
            "--data-dir",
            "data",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let started: Value = serde_json::from_str(&line).unwrap();
    let uri = started["uri"].as_str().unwrap().to_string();
    std::fs::write(d.join("f.txt"), b"persisted").unwrap();
    let out = run(d, &["--uri", &uri, "put", "f.txt", "-b", "up"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Configuration from a .env file in the working directory.
    std::fs::write(d.join(".env"), format!("MICTLANX_URI={uri}\n")).unwrap();
    let out = run(d, &["--json", "ls", "up"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json_lines(&out)[0]["ball_id"], "f-txt");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no exit after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
    assert!(
        d.join("data/peer-0").exists(),
        "data kept for the next `up`"
    );
}

#[test]
fn client_events_go_to_the_log_directory_as_json_lines() {
    let f = Fixture::start(1);
    let logs = tempfile::tempdir().unwrap();
    std::fs::write(f.dir().join("f.bin"), vec![1u8; 1000]).unwrap();
    let out = mictlanx(f.dir(), &["--uri", &f.uri, "put", "f.bin", "-b", "logs"])
        .env("MICTLANX_LOG", "info")
        .env("MICTLANX_LOG_PATH", logs.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mut puts = Vec::new();
    for entry in std::fs::read_dir(logs.path()).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).expect("one JSON object per line");
            if v["event"] == "PUT" {
                puts.push(v);
            }
        }
    }
    assert_eq!(puts.len(), 1, "{puts:?}");
    assert_eq!(puts[0]["bucket_id"], "logs");
    assert_eq!(puts[0]["key"], "f-bin");
}

/// `keygen`, then an encrypted `put` to two recipients and `get --decrypt-with`, keys found
/// by name in `XOLO_SECRET_PATH` or by path.
#[test]
fn keygen_then_encrypted_put_and_get_round_trip() {
    let f = Fixture::start(1);
    let (uri, d) = (f.uri.clone(), f.dir());
    let keys = d.join("keys");
    let with_keys = |args: &[&str]| -> Output {
        mictlanx(d, args)
            .env("XOLO_SECRET_PATH", &keys)
            .output()
            .unwrap()
    };

    let out = with_keys(&["--json", "keygen", "alice"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let made = &json_lines(&out)[0];
    assert_eq!(made["name"], "alice");
    assert_eq!(made["fingerprint"].as_str().unwrap().len(), 32);
    let private = keys.join("alice");
    assert!(std::fs::read_to_string(&private)
        .unwrap()
        .starts_with("-----BEGIN PRIVATE KEY-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&private).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // An existing key is kept unless --force.
    let out = with_keys(&["keygen", "alice"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    let out = with_keys(&["--json", "keygen", "alice", "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_ne!(json_lines(&out)[0]["fingerprint"], made["fingerprint"]);
    let other = d.join("elsewhere");
    let out = with_keys(&["keygen", "bob", "--dir", other.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = with_keys(&["keygen", "../evil"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(with_keys(&["keygen"]).status.code(), Some(2));

    let secret: Vec<u8> = (0..250_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(d.join("secret.bin"), &secret).unwrap();
    let bob_pub = other.join("bob.pub");
    let out = with_keys(&[
        "--uri",
        &uri,
        "--json",
        "put",
        "secret.bin",
        "-b",
        "vault",
        "-k",
        "plan",
        "--chunk-size",
        "100kb",
        "--encrypt-to",
        "alice.pub",
        "--encrypt-to",
        bob_pub.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let put = &json_lines(&out)[0];
    assert_eq!(put["encrypted"], true);
    assert_eq!(put["num_chunks"], 3);

    // Alice by name, Bob by file: both open it.
    let out = with_keys(&[
        "--uri",
        &uri,
        "--json",
        "get",
        "vault",
        "plan",
        "-o",
        "a.out",
        "--decrypt-with",
        "alice",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json_lines(&out)[0]["size"], 250_000);
    assert_eq!(std::fs::read(d.join("a.out")).unwrap(), secret);
    let bob_private = other.join("bob");
    let out = with_keys(&[
        "--uri",
        &uri,
        "get",
        "vault",
        "plan",
        "-o",
        "-",
        "--decrypt-with",
        bob_private.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, secret);

    // Without the key: a clear error and no file.
    let out = with_keys(&["--uri", &uri, "get", "vault", "plan", "-o", "b.out"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("MissingKeyError"), "{}", stderr(&out));
    assert!(!d.join("b.out").exists());
    // Unknown keys are named.
    let out = with_keys(&[
        "--uri",
        &uri,
        "put",
        "secret.bin",
        "-b",
        "vault",
        "--encrypt-to",
        "carol",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no public key \"carol\""),
        "{}",
        stderr(&out)
    );
    let out = with_keys(&[
        "--uri",
        &uri,
        "get",
        "vault",
        "plan",
        "--decrypt-with",
        "../alice",
    ]);
    assert_eq!(out.status.code(), Some(1));
}
