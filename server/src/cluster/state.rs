//! `cluster.json`: the peers a [`LocalCluster`](crate::LocalCluster) runs, kept in its data
//! directory so that the next start on that directory brings every one of them back, the
//! ones availability policies started (elastic) included. A peer may hold the only copy of
//! a ball, so a remembered peer is never dropped: see [`plan`].
//!
//! The file is small JSON, rewritten whole on every change: a temporary file in the same
//! directory, fsynced, renamed over the old one, then the directory fsynced (the way garage
//! publishes blocks, `src/block/manager.rs`), so a crash leaves the old list or the new one,
//! never half of either.

use std::collections::HashSet;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file's name inside the cluster's data directory.
pub const STATE_FILE: &str = "cluster.json";

/// The format this build writes and reads.
const VERSION: u32 = 1;

/// Capacity of a peer when neither a flag nor the file says (10 GB).
pub(crate) const DEFAULT_CAPACITY: u64 = 10_000_000_000;

/// Why `cluster.json` could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterStateError {
    /// The file exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file is not the JSON this build writes (it was damaged or edited by hand).
    #[error(
        "{path} is damaged ({source}); it lists the peers that hold this cluster's data: \
         repair it, or move it away to start from the peer folders alone"
    )]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the JSON parser said.
        source: serde_json::Error,
    },
    /// The file was written by a newer build.
    #[error("{path} has format version {found}; this build reads version {VERSION}")]
    Version {
        /// The file.
        path: PathBuf,
        /// The version it declares.
        found: u32,
    },
    /// A peer id that cannot name a folder of the data directory, or one listed twice.
    #[error("{path}: {problem}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The new list could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// The peers of a cluster, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ClusterState {
    /// Format version ([`VERSION`]).
    pub version: u32,
    /// Every peer, in the order they were first started.
    pub peers: Vec<PeerRecord>,
}

/// One remembered peer. Its data lives in `DATA_DIR/<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PeerRecord {
    /// Peer id, also the name of its folder.
    pub id: String,
    /// A fixed port on 127.0.0.1; absent: any free port at each start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Bytes it may store.
    pub capacity: u64,
    /// Started by an availability policy rather than by `--peers`.
    #[serde(default)]
    pub elastic: bool,
}

impl PeerRecord {
    /// A peer started for `--peers`, on any free port.
    pub(crate) fn base(id: impl Into<String>, capacity: u64) -> Self {
        Self {
            id: id.into(),
            port: None,
            capacity,
            elastic: false,
        }
    }

    /// A peer started by an availability policy, on any free port.
    pub(crate) fn elastic(id: impl Into<String>, capacity: u64) -> Self {
        Self {
            elastic: true,
            ..Self::base(id, capacity)
        }
    }
}

/// Whether `id` can name a folder of the data directory: a valid peer id (letters, digits,
/// `-`, `_`, `.`, `:`) that is not `.` or `..`.
pub(crate) fn is_folder_id(id: &str) -> bool {
    crate::router::valid_peer_id(id) && id != "." && id != ".."
}

impl ClusterState {
    /// An empty list of the current format.
    pub(crate) fn new() -> Self {
        Self {
            version: VERSION,
            peers: Vec::new(),
        }
    }

    /// The path of the file in `dir`.
    pub(crate) fn path(dir: &Path) -> PathBuf {
        dir.join(STATE_FILE)
    }

    /// Reads `dir/cluster.json`; `Ok(None)` when there is none.
    ///
    /// # Errors
    ///
    /// [`ClusterStateError`] when it cannot be read, is not valid JSON of this format, has
    /// a newer version, or names a peer that cannot be a folder or twice.
    pub(crate) fn load(dir: &Path) -> Result<Option<Self>, ClusterStateError> {
        let path = Self::path(dir);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(ClusterStateError::Read { path, source }),
        };
        let state: Self =
            serde_json::from_slice(&bytes).map_err(|source| ClusterStateError::Parse {
                path: path.clone(),
                source,
            })?;
        if state.version != VERSION {
            return Err(ClusterStateError::Version {
                path,
                found: state.version,
            });
        }
        let mut seen = HashSet::new();
        for p in &state.peers {
            let problem = if !is_folder_id(&p.id) {
                format!("peer id {:?} cannot name a folder", p.id)
            } else if !seen.insert(p.id.as_str()) {
                format!("peer {} is listed twice", p.id)
            } else {
                continue;
            };
            return Err(ClusterStateError::Invalid { path, problem });
        }
        Ok(Some(state))
    }

    /// Writes `dir/cluster.json` atomically (temporary file, fsync, rename, fsync of `dir`).
    ///
    /// # Errors
    ///
    /// [`ClusterStateError::Write`] when any step fails; the old file is then untouched and
    /// no temporary file is left.
    pub(crate) fn save(&self, dir: &Path) -> Result<(), ClusterStateError> {
        let path = Self::path(dir);
        let mut bytes = serde_json::to_vec_pretty(self).map_err(|e| ClusterStateError::Write {
            path: path.clone(),
            source: e.into(),
        })?;
        bytes.push(b'\n');
        write_atomically(dir, &path, &bytes)
            .map_err(|source| ClusterStateError::Write { path, source })
    }

    /// Adds `record`, or replaces the one with its id; returns whether anything changed.
    pub(crate) fn upsert(&mut self, record: PeerRecord) -> bool {
        match self.peers.iter_mut().find(|p| p.id == record.id) {
            Some(p) if *p == record => false,
            Some(p) => {
                *p = record;
                true
            }
            None => {
                self.peers.push(record);
                true
            }
        }
    }
}

fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    // NamedTempFile deletes itself when dropped before `persist`: an error leaves no
    // temporary file behind.
    let mut tmp = tempfile::Builder::new()
        .prefix(".cluster.json.")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    crate::storage::sync_dir(dir)
}

/// The peers a start runs, from what the file remembers and what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Every peer to start: each remembered one, then `peer-i` for the asked-for ones that
    /// are new.
    pub peers: Vec<PeerRecord>,
    /// Capacity of peers started from now on (new `--peers`, new elastic ones).
    pub capacity: u64,
}

/// What to start: every remembered peer (a remembered peer is never dropped, even when
/// fewer are asked for: it may hold the only copy of a ball) plus `peer-0 .. peer-{n-1}`
/// that are not remembered yet.
///
/// `capacity` is the one asked for explicitly: it then applies to every peer, remembered
/// or new. Without it each remembered peer keeps its own, and new ones get that of the
/// first remembered `--peers` peer, else [`DEFAULT_CAPACITY`].
pub(crate) fn plan(remembered: &[PeerRecord], wanted: usize, capacity: Option<u64>) -> Plan {
    let default = capacity
        .or_else(|| remembered.iter().find(|p| !p.elastic).map(|p| p.capacity))
        .unwrap_or(DEFAULT_CAPACITY);
    let mut peers: Vec<PeerRecord> = remembered
        .iter()
        .cloned()
        .map(|mut p| {
            if let Some(c) = capacity {
                p.capacity = c;
            }
            p
        })
        .collect();
    for i in 0..wanted {
        let id = format!("peer-{i}");
        if !peers.iter().any(|p| p.id == id) {
            peers.push(PeerRecord::base(id, default));
        }
    }
    Plan {
        peers,
        capacity: default,
    }
}

/// Peers of a data directory written before `cluster.json` existed: every folder holding a
/// peer database, `peer-N` as a `--peers` peer and any other as elastic, sorted by name.
pub(crate) fn adopt_folders(dir: &Path, capacity: u64) -> io::Result<Vec<PeerRecord>> {
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if !is_folder_id(&name) || !entry.path().join(crate::storage::DB_FILE).is_file() {
            continue;
        }
        let base = name
            .strip_prefix("peer-")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        found.push(if base {
            PeerRecord::base(name, capacity)
        } else {
            PeerRecord::elastic(name, capacity)
        });
    }
    // `peer-2` before `peer-10`, then the elastic ones by name.
    found.sort_by_key(|p| {
        let n =
            p.id.strip_prefix("peer-")
                .and_then(|n| n.parse::<u64>().ok());
        (p.elastic, n.unwrap_or(u64::MAX), p.id.clone())
    });
    Ok(found)
}

/// `cluster.json` and what it holds now, shared by the cluster and its provisioner.
///
/// A tokio mutex, held while a new list is written (on the blocking pool), so that a save
/// is never overtaken by an older one.
#[derive(Debug)]
pub(crate) struct StateFile {
    dir: PathBuf,
    state: tokio::sync::Mutex<ClusterState>,
}

impl StateFile {
    /// The file of `dir`, which holds `state` now.
    pub(crate) fn new(dir: PathBuf, state: ClusterState) -> Self {
        Self {
            dir,
            state: tokio::sync::Mutex::new(state),
        }
    }

    /// Remembers `records` (adding them, or replacing those with their ids) and writes the
    /// file when that changed anything. Only once it is written is the list in memory
    /// updated, so memory never claims what the disk lacks.
    ///
    /// # Errors
    ///
    /// [`ClusterStateError::Write`] when the file cannot be written.
    pub(crate) async fn record(
        &self,
        records: impl IntoIterator<Item = PeerRecord>,
    ) -> Result<(), ClusterStateError> {
        let mut state = self.state.lock().await;
        let mut next = state.clone();
        let mut changed = false;
        for r in records {
            changed |= next.upsert(r);
        }
        if !changed {
            return Ok(());
        }
        let (dir, snapshot) = (self.dir.clone(), next.clone());
        tokio::task::spawn_blocking(move || snapshot.save(&dir))
            .await
            .map_err(|e| ClusterStateError::Write {
                path: ClusterState::path(&self.dir),
                source: io::Error::other(e),
            })??;
        *state = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ClusterState {
        let mut s = ClusterState::new();
        s.upsert(PeerRecord::base("peer-0", 1_000));
        s.upsert(PeerRecord {
            port: Some(25001),
            ..PeerRecord::base("peer-1", 2_000)
        });
        s.upsert(PeerRecord::elastic("pool-1.peer-1", 1_000));
        s
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != STATE_FILE)
            .collect()
    }

    #[test]
    fn a_saved_state_loads_back_equal_and_a_missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(ClusterState::load(dir.path()).unwrap(), None);
        let s = sample();
        s.save(dir.path()).unwrap();
        assert_eq!(ClusterState::load(dir.path()).unwrap(), Some(s));
        let text = std::fs::read_to_string(dir.path().join(STATE_FILE)).unwrap();
        assert!(text.contains("\"pool-1.peer-1\"") && text.contains("\"elastic\": true"));
        // A port is written only when fixed.
        assert_eq!(text.matches("\"port\"").count(), 1, "{text}");
    }

    #[test]
    fn saving_replaces_the_whole_file_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sample();
        s.save(dir.path()).unwrap();
        s.peers.truncate(1);
        s.save(dir.path()).unwrap();
        assert_eq!(ClusterState::load(dir.path()).unwrap(), Some(s.clone()));
        assert!(
            leftovers(dir.path()).is_empty(),
            "{:?}",
            leftovers(dir.path())
        );
        // A write interrupted before its rename leaves a temporary file beside the old
        // list: the old list is what loads.
        std::fs::write(dir.path().join(".cluster.json.x1y2.tmp"), b"{\"vers").unwrap();
        assert_eq!(ClusterState::load(dir.path()).unwrap(), Some(s.clone()));
        // A write that cannot happen is an error naming the file, and changes nothing.
        let missing = dir.path().join("no-such-dir");
        let err = s.save(&missing).unwrap_err();
        assert!(matches!(err, ClusterStateError::Write { .. }), "{err}");
        assert!(err.to_string().contains("no-such-dir"), "{err}");
    }

    #[test]
    fn a_damaged_file_is_a_clear_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE);
        let cases: &[(&str, &str)] = &[
            ("{\"version\":1,\"peers\":[{\"id\":\"peer-0\"", "damaged"),
            ("", "damaged"),
            ("\u{0}\u{1}binary", "damaged"),
            ("{\"version\":1,\"peers\":[{\"id\":\"peer-0\"}]}", "capacity"),
            ("{\"version\":9,\"peers\":[]}", "version 9"),
            (
                "{\"version\":1,\"peers\":[{\"id\":\"..\",\"capacity\":1}]}",
                "cannot name a folder",
            ),
            (
                "{\"version\":1,\"peers\":[{\"id\":\"a/b\",\"capacity\":1}]}",
                "cannot name a folder",
            ),
            (
                "{\"version\":1,\"peers\":[{\"id\":\"p\",\"capacity\":1},{\"id\":\"p\",\"capacity\":2}]}",
                "listed twice",
            ),
        ];
        for (text, expected) in cases {
            std::fs::write(&path, text).unwrap();
            let err = ClusterState::load(dir.path()).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(expected), "{text:?}: {msg}");
            assert!(msg.contains(STATE_FILE), "{text:?}: {msg}");
        }
        // A folder where the file should be cannot be read.
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        assert!(matches!(
            ClusterState::load(dir.path()),
            Err(ClusterStateError::Read { .. })
        ));
    }

    #[test]
    fn upsert_reports_changes() {
        let mut s = ClusterState::new();
        assert!(s.upsert(PeerRecord::base("peer-0", 1)));
        assert!(!s.upsert(PeerRecord::base("peer-0", 1)));
        assert!(s.upsert(PeerRecord::base("peer-0", 2)));
        assert_eq!(s.peers.len(), 1);
    }

    #[test]
    fn the_plan_keeps_every_remembered_peer() {
        let remembered = sample().peers;
        // Fewer asked for than remembered: all kept, none added.
        let p = plan(&remembered, 1, None);
        assert_eq!(p.peers, remembered);
        assert_eq!(p.capacity, 1_000);
        // More asked for: the new ones follow, with the remembered capacity.
        let p = plan(&remembered, 4, None);
        let ids: Vec<&str> = p.peers.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(
            ids,
            ["peer-0", "peer-1", "pool-1.peer-1", "peer-2", "peer-3"]
        );
        assert_eq!(p.peers[4], PeerRecord::base("peer-3", 1_000));
        // An explicit capacity applies to every peer; ports are kept.
        let p = plan(&remembered, 2, Some(5));
        assert!(p.peers.iter().all(|r| r.capacity == 5));
        assert_eq!(p.peers[1].port, Some(25001));
        // Nothing remembered: the defaults.
        let p = plan(&[], 2, None);
        assert_eq!(
            p.peers,
            [
                PeerRecord::base("peer-0", DEFAULT_CAPACITY),
                PeerRecord::base("peer-1", DEFAULT_CAPACITY)
            ]
        );
    }

    #[test]
    fn folders_with_a_peer_database_are_adopted() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "peer-12",
            "peer-0",
            "pool-1.peer-1",
            "empty",
            "peer-x",
            "peer-2",
        ] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
            if name != "empty" {
                std::fs::write(dir.path().join(name).join(crate::storage::DB_FILE), b"").unwrap();
            }
        }
        std::fs::write(dir.path().join("stray-file"), b"").unwrap();
        let found = adopt_folders(dir.path(), 7).unwrap();
        assert_eq!(
            found,
            [
                PeerRecord::base("peer-0", 7),
                PeerRecord::base("peer-2", 7),
                PeerRecord::base("peer-12", 7),
                PeerRecord::elastic("peer-x", 7),
                PeerRecord::elastic("pool-1.peer-1", 7),
            ]
        );
        assert!(adopt_folders(&dir.path().join("missing"), 7)
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn the_shared_file_writes_only_changes() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().to_path_buf(), ClusterState::new());
        file.record([PeerRecord::base("peer-0", 1)]).await.unwrap();
        let loaded = ClusterState::load(dir.path()).unwrap().unwrap();
        assert_eq!(loaded.peers, [PeerRecord::base("peer-0", 1)]);
        // No change: the file is not rewritten (a damaged copy stays as it is).
        std::fs::write(ClusterState::path(dir.path()), b"x").unwrap();
        file.record([PeerRecord::base("peer-0", 1)]).await.unwrap();
        assert!(ClusterState::load(dir.path()).is_err());
        file.record([PeerRecord::elastic("pool-1.peer-1", 1)])
            .await
            .unwrap();
        let loaded = ClusterState::load(dir.path()).unwrap().unwrap();
        assert_eq!(loaded.peers.len(), 2);
    }
}
