//! What the CLI tests share: the built `mictlanx` with a clean environment, its output read
//! as text or JSON, and a `LocalCluster` with a scratch directory.
#![allow(dead_code)] // each test file uses its own part

use std::path::Path;
use std::process::{Command, Output};

use mictlanx_server::LocalCluster;
use serde_json::Value;

/// The binary, run in `dir` with `args`, with no router address from the environment and
/// only errors logged.
pub fn mictlanx(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mictlanx"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("MICTLANX_URI")
        .env_remove("MICTLANX_ROUTERS")
        .env("MICTLANX_LOG", "error");
    cmd
}

/// [`mictlanx`], run to its end.
pub fn run(dir: &Path, args: &[&str]) -> Output {
    mictlanx(dir, args).output().unwrap()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Standard output as one JSON value.
pub fn json(out: &Output) -> Value {
    serde_json::from_str(stdout(out).trim()).unwrap_or_else(|e| panic!("{}: {e}", stdout(out)))
}

/// Standard output as one JSON value per line.
pub fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// A running `LocalCluster`, its URI and a scratch directory; the cluster stops when this
/// is dropped, test failure included.
pub struct Fixture {
    rt: tokio::runtime::Runtime,
    cluster: Option<LocalCluster>,
    pub uri: String,
    pub dir: tempfile::TempDir,
}

impl Fixture {
    /// A cluster of `peers` peers.
    pub fn start(peers: usize) -> Self {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let cluster = rt
            .block_on(LocalCluster::builder().peers(peers).start())
            .unwrap();
        Self {
            uri: cluster.uri(),
            cluster: Some(cluster),
            rt,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The scratch directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The cluster.
    pub fn cluster(&self) -> &LocalCluster {
        self.cluster.as_ref().expect("running until dropped")
    }

    /// Runs `future` on the cluster's runtime.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.rt.block_on(future)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(cluster) = self.cluster.take() {
            self.rt.block_on(cluster.shutdown());
        }
    }
}
