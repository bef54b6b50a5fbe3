//! A Jepsen-style history of the operations a test sent, and a checker of the cluster's
//! final state against it.
//!
//! Every operation is recorded when it is invoked and again when it completes: `ok` (2xx,
//! it took effect), `fail` (it certainly did not) or `info` (indeterminate: a 5xx, a cut
//! connection, a timeout; it may or may not have taken effect). Each key is a register:
//! a put writes its bytes (identified by their SHA-256), a delete writes "absent".
//!
//! The values a read may return once the history is over are the writes that no
//! acknowledged write *invoked after they completed* supersedes (for a sequential history:
//! the last acknowledged write, plus any indeterminate write after it). Older bytes, bytes
//! of no write at all, or a 404 for an acknowledged put are violations.
//!
//! One assumption is stronger than Jepsen's: an indeterminate operation is taken to be over
//! when its answer (or its error) came back, so an acknowledged write invoked afterwards
//! supersedes it. A router that keeps applying a write after answering it would show up
//! as a violation here, which is what we want.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::process_cluster::{sha256, Holding, ProcessCluster, PutReply, Reply};

/// What a write leaves in a key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Val {
    /// Bytes with this SHA-256.
    Bytes(String),
    /// Deleted, or never written.
    Absent,
}

impl Val {
    fn short(&self) -> String {
        match self {
            Val::Bytes(s) => format!("bytes {}", &s[..12.min(s.len())]),
            Val::Absent => "absent".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pending,
    Ok,
    Fail,
    Info,
}

#[derive(Debug, Clone)]
struct Op {
    key: String,
    val: Val,
    rf: u32,
    invoked: u64,
    completed: u64,
    outcome: Outcome,
}

/// An operation's handle, to complete it.
#[derive(Debug, Clone, Copy)]
pub struct OpId(usize);

/// The recorded operations of one bucket.
pub struct History {
    pub bucket: String,
    clock: AtomicU64,
    ops: Mutex<Vec<Op>>,
}

/// What a key may hold now.
#[derive(Debug, Clone)]
pub struct Allowed {
    pub values: BTreeSet<Val>,
    /// The replication factor of the writes allowed (the largest).
    pub rf: u32,
    /// The history index of every write of the key, by value (to name stale reads).
    pub writes: BTreeMap<Val, Vec<usize>>,
}

impl Allowed {
    /// The single value allowed, if there is exactly one.
    pub fn only(&self) -> Option<&Val> {
        if self.values.len() == 1 {
            self.values.iter().next()
        } else {
            None
        }
    }

    fn describe(&self) -> String {
        let v: Vec<String> = self.values.iter().map(Val::short).collect();
        v.join(" | ")
    }
}

impl History {
    pub fn new(bucket: &str) -> Self {
        Self {
            bucket: bucket.to_string(),
            clock: AtomicU64::new(1),
            ops: Mutex::new(Vec::new()),
        }
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::SeqCst)
    }

    fn invoke(&self, key: &str, val: Val, rf: u32) -> OpId {
        let invoked = self.tick();
        let mut ops = self.ops.lock().unwrap();
        ops.push(Op {
            key: key.to_string(),
            val,
            rf,
            invoked,
            completed: u64::MAX,
            outcome: Outcome::Pending,
        });
        OpId(ops.len() - 1)
    }

    /// A put of `data` under `key` is being sent.
    pub fn invoke_put(&self, key: &str, data: &[u8], rf: u32) -> OpId {
        self.invoke(key, Val::Bytes(sha256(data)), rf)
    }

    /// A delete of `key` is being sent.
    pub fn invoke_delete(&self, key: &str) -> OpId {
        self.invoke(key, Val::Absent, 0)
    }

    pub fn complete(&self, op: OpId, outcome: Outcome) {
        let completed = self.tick();
        let mut ops = self.ops.lock().unwrap();
        let o = &mut ops[op.0];
        o.outcome = outcome;
        o.completed = completed;
    }

    /// Completes a put from the router's answers: `ok` when both steps were 2xx, `fail`
    /// when R1 was refused with a 4xx (nothing was placed), `info` otherwise.
    pub fn complete_put(&self, op: OpId, reply: &PutReply) -> Outcome {
        let outcome = if reply.acked() {
            Outcome::Ok
        } else if (400..500).contains(&reply.metadata.status) {
            Outcome::Fail
        } else {
            Outcome::Info
        };
        self.complete(op, outcome);
        outcome
    }

    /// Completes a delete: 2xx and 404 (nothing to delete) are `ok`, anything else `info`.
    pub fn complete_delete(&self, op: OpId, reply: &Reply) -> Outcome {
        let outcome = if reply.is_success() || reply.status == 404 {
            Outcome::Ok
        } else {
            Outcome::Info
        };
        self.complete(op, outcome);
        outcome
    }

    /// Records a put that was acknowledged (sequential shortcut).
    pub fn put_acked(&self, key: &str, data: &[u8], rf: u32) {
        let op = self.invoke_put(key, data, rf);
        self.complete(op, Outcome::Ok);
    }

    /// Records a delete that was acknowledged (sequential shortcut).
    pub fn delete_acked(&self, key: &str) {
        let op = self.invoke_delete(key);
        self.complete(op, Outcome::Ok);
    }

    /// Every key written, sorted.
    pub fn keys(&self) -> Vec<String> {
        let ops = self.ops.lock().unwrap();
        let set: BTreeSet<String> = ops.iter().map(|o| o.key.clone()).collect();
        set.into_iter().collect()
    }

    /// `(acknowledged, indeterminate, failed)` operations.
    pub fn counts(&self) -> (usize, usize, usize) {
        let ops = self.ops.lock().unwrap();
        let n = |want: &[Outcome]| ops.iter().filter(|o| want.contains(&o.outcome)).count();
        (
            n(&[Outcome::Ok]),
            n(&[Outcome::Info, Outcome::Pending]),
            n(&[Outcome::Fail]),
        )
    }

    /// What `key` may hold now (see the module documentation).
    pub fn allowed(&self, key: &str) -> Allowed {
        let ops = self.ops.lock().unwrap();
        let mine: Vec<(usize, &Op)> = ops
            .iter()
            .enumerate()
            .filter(|(_, o)| o.key == key && o.outcome != Outcome::Fail)
            .collect();
        let acked_invocations: Vec<u64> = mine
            .iter()
            .filter(|(_, o)| o.outcome == Outcome::Ok)
            .map(|(_, o)| o.invoked)
            .collect();
        let superseded = |completed: u64| acked_invocations.iter().any(|&inv| inv > completed);
        let mut values = BTreeSet::new();
        let mut rf = 0;
        // The key's state before any write: absent, completed at time 0.
        if !superseded(0) {
            values.insert(Val::Absent);
        }
        let mut writes: BTreeMap<Val, Vec<usize>> = BTreeMap::new();
        for (i, o) in &mine {
            writes.entry(o.val.clone()).or_default().push(*i);
            if !superseded(o.completed) {
                values.insert(o.val.clone());
                rf = rf.max(o.rf);
            }
        }
        Allowed { values, rf, writes }
    }
}

/// What the checker verifies besides every read.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// A 503 read is tolerated (counted, not a violation).
    pub allow_503: bool,
    /// R7 lists exactly the keys that must exist (not the deleted ones).
    pub listing: bool,
    /// A key with one allowed value is held by at least `rf` running peers with its bytes.
    pub replicas: bool,
    /// No running peer holds other bytes than the one allowed value.
    pub forbid_stale_replicas: bool,
    /// No running peer still holds a key whose only allowed value is "absent".
    pub deleted_gone_from_peers: bool,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            allow_503: false,
            listing: true,
            replicas: true,
            forbid_stale_replicas: true,
            deleted_gone_from_peers: false,
        }
    }
}

/// What a check looked at, and what it found wrong.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub keys: usize,
    pub routers: usize,
    pub reads: usize,
    pub reads_ok: usize,
    pub unavailable: usize,
    pub listings: usize,
    pub replica_sets: usize,
    /// Copies counted on the peers, of the bytes that must be there.
    pub copies: usize,
    /// Peers still holding bytes of a deleted key, or older bytes (allowed by the options).
    pub leftovers: usize,
    pub violations: Vec<String>,
}

impl CheckReport {
    pub fn summary(&self) -> String {
        format!(
            "checked {} keys x {} routers: {} reads, {} ok, {} unavailable (503); {} listings; {} replica sets ({} copies, {} leftover copies); {} violations",
            self.keys,
            self.routers,
            self.reads,
            self.reads_ok,
            self.unavailable,
            self.listings,
            self.replica_sets,
            self.copies,
            self.leftovers,
            self.violations.len()
        )
    }

    /// Prints the summary and panics with the violations, if any.
    pub fn assert_clean(&self, scenario: &str) {
        println!("{scenario}: {}", self.summary());
        if self.violations.is_empty() {
            return;
        }
        let shown: Vec<&String> = self.violations.iter().take(25).collect();
        panic!(
            "{scenario}: {} violations of the history (first {}):\n  {}",
            self.violations.len(),
            shown.len(),
            shown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n  ")
        );
    }
}

/// Reads every key of `history` through every router in `routers`, lists the bucket
/// through each, and asks every running peer directly which keys it holds; returns what
/// contradicts the history.
pub async fn check(
    history: &History,
    cluster: &ProcessCluster,
    routers: &[usize],
    opts: &CheckOptions,
) -> CheckReport {
    let bucket = history.bucket.as_str();
    let keys = history.keys();
    let allowed: BTreeMap<String, Allowed> = keys
        .iter()
        .map(|k| (k.clone(), history.allowed(k)))
        .collect();
    let mut report = CheckReport {
        keys: keys.len(),
        routers: routers.len(),
        ..Default::default()
    };
    let stale_name = |a: &Allowed, v: &Val| -> String {
        match a.writes.get(v) {
            Some(ops) => format!("{} of op #{ops:?}", v.short()),
            None => format!("{} written by no operation", v.short()),
        }
    };

    for &r in routers {
        let router = cluster.router(r);
        for key in &keys {
            let a = &allowed[key];
            report.reads += 1;
            let reply = router.get(bucket, key).await;
            let got = match reply.status {
                200 => Some(Val::Bytes(sha256(&reply.body))),
                404 => Some(Val::Absent),
                503 if opts.allow_503 => {
                    report.unavailable += 1;
                    continue;
                }
                _ => None,
            };
            match got {
                Some(v) if a.values.contains(&v) => report.reads_ok += 1,
                Some(v) => report.violations.push(format!(
                    "{} GET {key}: {} ({}), expected {}",
                    router.id,
                    reply.status,
                    stale_name(a, &v),
                    a.describe()
                )),
                None => report.violations.push(format!(
                    "{} GET {key}: {} {}, expected {}",
                    router.id,
                    reply.status,
                    reply.detail(),
                    a.describe()
                )),
            }
        }
        if opts.listing {
            report.listings += 1;
            match router.listed_keys(bucket).await {
                None => {
                    let reply = router.listing(bucket).await;
                    if !(opts.allow_503 && reply.status == 503) {
                        report.violations.push(format!(
                            "{} R7 {bucket}: {} {}",
                            router.id,
                            reply.status,
                            reply.detail()
                        ));
                    }
                }
                Some(balls) => {
                    let listed: BTreeSet<String> = balls
                        .iter()
                        .filter_map(|b| b["key"].as_str().map(String::from))
                        .collect();
                    for key in &keys {
                        let a = &allowed[key];
                        let must_exist = !a.values.contains(&Val::Absent);
                        let must_not = a.only() == Some(&Val::Absent);
                        if must_exist && !listed.contains(key) {
                            report.violations.push(format!(
                                "{} R7: {key} is not listed, expected {}",
                                router.id,
                                a.describe()
                            ));
                        }
                        if must_not && listed.contains(key) {
                            report
                                .violations
                                .push(format!("{} R7: deleted key {key} is listed", router.id));
                        }
                    }
                }
            }
        }
    }

    if opts.replicas {
        for key in &keys {
            let a = &allowed[key];
            report.replica_sets += 1;
            let mut holders: Vec<(String, String)> = Vec::new();
            for i in 0..cluster.peers.len() {
                if !cluster.peers[i].is_up() {
                    continue;
                }
                let peer = cluster.peer(i);
                match peer.holding(bucket, key).await {
                    Holding::Holds { checksum } => holders.push((peer.id.clone(), checksum)),
                    Holding::Unknown(why) => report
                        .violations
                        .push(format!("{} metadata of {key}: {why}", peer.id)),
                    Holding::Pending | Holding::Other(_) | Holding::Absent => {}
                }
            }
            match a.only() {
                Some(Val::Bytes(sha)) => {
                    let good: Vec<&String> = holders
                        .iter()
                        .filter(|(_, c)| c == sha)
                        .map(|(p, _)| p)
                        .collect();
                    report.copies += good.len();
                    if good.len() < a.rf as usize {
                        report.violations.push(format!(
                            "{key}: {} of {} copies of {} (on {good:?}; holders {holders:?})",
                            good.len(),
                            a.rf,
                            Val::Bytes(sha.clone()).short()
                        ));
                    }
                    let stale: Vec<&(String, String)> =
                        holders.iter().filter(|(_, c)| c != sha).collect();
                    report.leftovers += stale.len();
                    if opts.forbid_stale_replicas && !stale.is_empty() {
                        report.violations.push(format!(
                            "{key}: peers hold other bytes than the last write {}: {stale:?}",
                            Val::Bytes(sha.clone()).short()
                        ));
                    }
                }
                Some(Val::Absent) => {
                    report.leftovers += holders.len();
                    if opts.deleted_gone_from_peers && !holders.is_empty() {
                        report
                            .violations
                            .push(format!("deleted {key} is still held by {holders:?}"));
                    }
                }
                None => {}
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_allows_the_last_acknowledged_write_and_later_indeterminate_ones() {
        let h = History::new("b");
        h.put_acked("k", b"one", 2);
        h.put_acked("k", b"two", 2);
        assert_eq!(
            h.allowed("k").values,
            BTreeSet::from([Val::Bytes(sha256(b"two"))])
        );
        let op = h.invoke_put("k", b"three", 2);
        h.complete(op, Outcome::Info);
        assert_eq!(h.allowed("k").values.len(), 2);
        h.delete_acked("k");
        assert_eq!(h.allowed("k").only(), Some(&Val::Absent));
        // Two overlapping acknowledged writes: either may win.
        let a = h.invoke_put("c", b"a", 2);
        let b = h.invoke_put("c", b"b", 2);
        h.complete(a, Outcome::Ok);
        h.complete(b, Outcome::Ok);
        assert_eq!(h.allowed("c").values.len(), 2);
        // A failed write never counts; an unwritten key is absent.
        let f = h.invoke_put("f", b"x", 1);
        h.complete(f, Outcome::Fail);
        assert_eq!(h.allowed("f").only(), Some(&Val::Absent));
    }
}
