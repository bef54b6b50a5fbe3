//! Anti-entropy: the background loop that brings every key back to its replication factor
//! and every replica to the key's newest version, without any client action.
//!
//! A round pages through every up peer's keys and versions (`GET /api/v4/xversions`, in key
//! order, bounded pages) and, for each key, compares what the peers hold with what
//! placement wants (see `docs/consistency.md`):
//!
//! - newest version a deletion: every peer still holding an older copy is sent the delete
//!   at the tombstone's version (a returning peer catches up on the deletes it missed);
//! - newest version a copy: each of the first `rf` peers of the key's placement order that
//!   are up and have room, and every peer holding an older copy, gets the newest copy
//!   (a wiped peer refills, a returning peer catches up on overwrites, a peer that joined
//!   takes the keys it now leads). Copies keep their version ([`copy_replica`]), so a copy
//!   that races with a newer write or delete is refused by the target.
//!
//! Copies are paced to `repair_bytes_per_sec`, so repair does not starve client traffic;
//! rounds run every `repair_interval` and at once when a peer comes up. Several routers may
//! repair the same cluster: their copies are idempotent. Progress is in `/metrics`
//! (`mictlanx_router_repair_*`) and `GET /api/v4/repair`.
//!
//! Tombstones are collected in a round that listed every registered peer, once no peer
//! holds a copy of the key any more and the delete is older than `settle_time` (1 h),
//! when no write older than the delete can still be on its way. The chunks of a
//! multi-chunk put that never completed (hidden from listings and ball reads already) are
//! deleted once its last chunk is older than `settle_time`, and so are the chunks an older
//! put of a ball left beside a complete newer one.
//!
//! Left for later (written down in `docs/consistency.md`): removing the copies a rebalance
//! leaves on peers that no longer lead a key.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mictlanx::model::{KeyVersionEntry, Metadata};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::copy::{announcement_of, copy_replica, Copied};
use super::peer_client::PeerError;
use super::peers::PeerView;
use super::placement;
use super::state::RouterState;
use crate::storage::Deletion;
use crate::version::Version;

/// What the repair loop has done, for `/metrics` and `GET /api/v4/repair`.
#[derive(Debug, Default)]
pub(crate) struct RepairStats {
    running: AtomicBool,
    rounds: AtomicU64,
    keys_checked: AtomicU64,
    copies: AtomicU64,
    bytes_copied: AtomicU64,
    deletes: AtomicU64,
    tombstones_collected: AtomicU64,
    failures: AtomicU64,
    last_round_ms: AtomicU64,
    last_round_keys: AtomicU64,
    last_round_actions: AtomicU64,
}

/// The answer of `GET /api/v4/repair`.
#[derive(Debug, Serialize)]
pub(crate) struct RepairStatus {
    /// Whether repair runs at all (`repair_interval` set).
    pub enabled: bool,
    /// Seconds between rounds.
    pub interval_seconds: f64,
    /// Bytes per second copies are paced to.
    pub bytes_per_second: u64,
    /// A round is running now.
    pub running: bool,
    /// Rounds finished since the router started.
    pub rounds: u64,
    /// Keys compared, over all rounds.
    pub keys_checked: u64,
    /// Copies made (missing or stale replicas restored).
    pub copies: u64,
    /// Bytes those copies moved.
    pub bytes_copied: u64,
    /// Deletes sent to replicas that missed them.
    pub deletes: u64,
    /// Tombstones forgotten once every peer had applied their delete (one per peer).
    pub tombstones_collected: u64,
    /// Copies or deletes that failed (retried next round).
    pub failures: u64,
    /// Duration of the last finished round, in seconds.
    pub last_round_seconds: f64,
    /// Keys of the last finished round.
    pub last_round_keys: u64,
    /// Copies and deletes of the last finished round.
    pub last_round_actions: u64,
}

impl RepairStats {
    /// The status, with the router's settings.
    pub(crate) fn status(&self, st: &RouterState) -> RepairStatus {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RepairStatus {
            enabled: st.config.repair_interval.is_some(),
            interval_seconds: st.config.repair_interval.map_or(0.0, |d| d.as_secs_f64()),
            bytes_per_second: st.config.repair_bytes_per_sec,
            running: self.running.load(Ordering::Relaxed),
            rounds: get(&self.rounds),
            keys_checked: get(&self.keys_checked),
            copies: get(&self.copies),
            bytes_copied: get(&self.bytes_copied),
            deletes: get(&self.deletes),
            tombstones_collected: get(&self.tombstones_collected),
            failures: get(&self.failures),
            last_round_seconds: get(&self.last_round_ms) as f64 / 1000.0,
            last_round_keys: get(&self.last_round_keys),
            last_round_actions: get(&self.last_round_actions),
        }
    }

    /// Publishes the counters as gauges.
    pub(crate) fn publish(&self, st: &RouterState) {
        let s = self.status(st);
        let m = &st.metrics;
        m.set_gauge("repair_rounds", "Repair rounds finished.", s.rounds as f64);
        m.set_gauge(
            "repair_keys_checked",
            "Keys compared by repair.",
            s.keys_checked as f64,
        );
        m.set_gauge(
            "repair_copies",
            "Replicas restored by repair.",
            s.copies as f64,
        );
        m.set_gauge(
            "repair_bytes_copied",
            "Bytes copied by repair.",
            s.bytes_copied as f64,
        );
        m.set_gauge(
            "repair_deletes",
            "Deletes repair sent to replicas that missed them.",
            s.deletes as f64,
        );
        m.set_gauge(
            "repair_tombstones_collected",
            "Tombstones collected once every peer had applied their delete.",
            s.tombstones_collected as f64,
        );
        m.set_gauge(
            "repair_failures",
            "Repair copies or deletes that failed.",
            s.failures as f64,
        );
        m.set_gauge(
            "repair_last_round_seconds",
            "Duration of the last repair round.",
            s.last_round_seconds,
        );
    }
}

/// Starts the repair loop when `repair_interval` is set; it stops with `stop`.
pub(crate) fn spawn_loop(st: RouterState, stop: CancellationToken) {
    let Some(interval) = st.config.repair_interval else {
        return;
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(interval) => {}
                () = st.repair_now.notified() => {}
            }
            if stop.run_until_cancelled(run_round(&st)).await.is_none() {
                break;
            }
        }
    });
}

/// One key as the peers reported it: each peer's entry, with its version parsed.
type Sightings = Vec<(PeerView, KeyVersionEntry, Version)>;

/// Runs one round over every key of every up peer.
pub(crate) async fn run_round(st: &RouterState) {
    let stats = &st.repair;
    stats.running.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let peers = st.peers.healthy();
    // Tombstones are collected only in a round that saw every registered peer.
    let mut complete = peers.len() == st.peers.counts().1;
    let mut keys: BTreeMap<(String, String), Sightings> = BTreeMap::new();
    for peer in &peers {
        match list_versions(st, peer).await {
            Ok(entries) => {
                for e in entries {
                    let v = e.version.parse().unwrap_or(Version::ZERO);
                    keys.entry((e.bucket_id.clone(), e.key.clone()))
                        .or_default()
                        .push((peer.clone(), e, v));
                }
            }
            // A MictlanX peer has no version listing: it is left out of repair.
            Err(e) => {
                complete = false;
                tracing::debug!(event = "REPAIR.LIST.FAILED", peer = %peer.id, error = %e);
            }
        }
    }
    let mut pacer = Pacer::new(st.config.repair_bytes_per_sec);
    let mut actions = 0u64;
    let settle_ms = u64::try_from(st.config.settle_time.as_millis()).unwrap_or(u64::MAX);
    let now_ms = crate::storage::epoch_ms(std::time::SystemTime::now());
    for (bucket, key) in abandoned_chunks(&keys, now_ms.saturating_sub(settle_ms)) {
        if let Some(sightings) = keys.get_mut(&(bucket.clone(), key.clone())) {
            actions += delete_abandoned(st, &bucket, &key, sightings).await;
        }
    }
    for ((bucket, key), sightings) in &keys {
        actions += repair_key(st, bucket, key, sightings, &mut pacer).await;
        if complete {
            collect_tombstone(st, bucket, key, sightings).await;
        }
    }
    let n = keys.len() as u64;
    stats.keys_checked.fetch_add(n, Ordering::Relaxed);
    stats.rounds.fetch_add(1, Ordering::Relaxed);
    let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    stats.last_round_ms.store(ms, Ordering::Relaxed);
    stats.last_round_keys.store(n, Ordering::Relaxed);
    stats.last_round_actions.store(actions, Ordering::Relaxed);
    stats.running.store(false, Ordering::Relaxed);
    stats.publish(st);
    if actions > 0 {
        tracing::info!(
            event = "REPAIR.ROUND",
            keys = n,
            actions,
            seconds = ms as f64 / 1000.0
        );
    }
}

/// Every key and version of one peer, page by page.
async fn list_versions(
    st: &RouterState,
    peer: &PeerView,
) -> Result<Vec<KeyVersionEntry>, PeerError> {
    let mut out: Vec<KeyVersionEntry> = Vec::new();
    loop {
        let after = out.last().map(|e| (e.bucket_id.clone(), e.key.clone()));
        let page = st.client.xversions(peer, after.as_ref()).await?;
        let more = page.more && !page.entries.is_empty();
        out.extend(page.entries);
        if !more {
            return Ok(out);
        }
    }
}

/// Brings one key to its newest version on every replica and to `rf` replicas; returns
/// how many copies and deletes were sent.
async fn repair_key(
    st: &RouterState,
    bucket: &str,
    key: &str,
    sightings: &Sightings,
    pacer: &mut Pacer,
) -> u64 {
    let Some(&(ref newest_peer, ref newest, newest_version)) =
        sightings.iter().max_by_key(|(_, _, v)| *v)
    else {
        return 0;
    };
    let stale: Vec<&PeerView> = sightings
        .iter()
        .filter(|(_, e, v)| !e.deleted && *v < newest_version)
        .map(|(p, _, _)| p)
        .collect();
    if newest.deleted {
        return catch_up(st, bucket, key, Catch::Delete(newest_version), &stale).await;
    }
    let holders: Vec<&PeerView> = sightings
        .iter()
        .filter(|(_, e, v)| !e.deleted && *v == newest_version)
        .map(|(p, _, _)| p)
        .collect();
    let rf = sightings
        .iter()
        .filter(|(_, _, v)| *v == newest_version)
        .map(|(_, e, _)| e.replication_factor)
        .max()
        .unwrap_or(0);
    let mut targets: Vec<PeerView> = stale.iter().map(|p| (*p).clone()).collect();
    if rf > 0 {
        let hash = placement::key_hash(bucket, key);
        let wanted = usize::try_from(rf).unwrap_or(usize::MAX);
        let home = placement::choose(&st.peers.candidates(), hash, &[], wanted, newest.size)
            .unwrap_or_else(|_| {
                // Too few peers for rf: every one that can take it.
                placement::order(&st.peers.candidates(), hash)
                    .into_iter()
                    .filter(|c| c.can_take(newest.size))
                    .map(|c| c.id.clone())
                    .collect()
            });
        for id in home {
            let held = holders.iter().any(|p| p.id == id);
            let queued = targets.iter().any(|p| p.id == id);
            if !held && !queued {
                if let Some(view) = st.peers.view(&id).filter(|p| p.up) {
                    targets.push(view);
                }
            }
        }
    }
    if targets.is_empty() {
        return 0;
    }
    let Some(metadata) = metadata_of(st, newest_peer, bucket, key).await else {
        return 0;
    };
    if metadata.is_disabled {
        // Its bytes cannot be read to copy them; the replicas that hold an older copy are
        // disabled at its version instead (a missing copy of a disabled key stays missing).
        return catch_up(st, bucket, key, Catch::Disable(newest_version), &stale).await;
    }
    let request = announcement_of(bucket, &metadata);
    let mut sent = 0;
    for target in targets {
        pacer.wait(newest.size).await;
        let copied = copy_replica(st, newest_peer, &target, bucket, &request).await;
        sent += 1;
        match copied {
            Ok(outcome) => {
                if let Copied::Stored(_) = outcome {
                    st.repair.copies.fetch_add(1, Ordering::Relaxed);
                    st.repair
                        .bytes_copied
                        .fetch_add(newest.size, Ordering::Relaxed);
                    st.replicas.add(bucket, key, &[target.id.as_str()]);
                }
                tracing::info!(event = "REPAIR.COPY", bucket_id = bucket, key, from = %newest_peer.id, to = %target.id, version = %newest_version, outcome = ?outcome);
            }
            Err(e) => {
                st.note_failure(&e);
                st.repair.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(event = "REPAIR.COPY.FAILED", bucket_id = bucket, key, from = %newest_peer.id, to = %target.id, error = %e);
            }
        }
    }
    sent
}

/// The chunks of puts that are over, all of whose chunks were written before `before_ms`:
/// the incomplete puts of each multi-chunk ball, and the complete ones older than its
/// newest complete put (the one listings show).
fn abandoned_chunks(
    keys: &BTreeMap<(String, String), Sightings>,
    before_ms: u64,
) -> Vec<(String, String)> {
    /// One chunk: its key, its newest version, its put (full checksum, chunk count), when
    /// it was last written.
    struct Chunk<'a> {
        key: &'a str,
        version: Version,
        put: (&'a str, u64),
        written_at_ms: u64,
    }
    let mut balls: BTreeMap<(&str, &str), Vec<Chunk<'_>>> = BTreeMap::new();
    for ((bucket, key), sightings) in keys {
        let Some(&(_, ref newest, newest_version)) = sightings.iter().max_by_key(|(_, _, v)| *v)
        else {
            continue;
        };
        if newest.deleted || newest.num_chunks == 0 || newest.ball_id.is_empty() {
            continue;
        }
        let written_at_ms = sightings
            .iter()
            .map(|(_, e, _)| e.written_at_ms)
            .max()
            .unwrap_or(0);
        balls
            .entry((bucket.as_str(), newest.ball_id.as_str()))
            .or_default()
            .push(Chunk {
                key: key.as_str(),
                version: newest_version,
                put: (newest.full_checksum.as_str(), newest.num_chunks),
                written_at_ms,
            });
    }
    let mut out = Vec::new();
    for ((bucket, _), chunks) in balls {
        let mut puts: BTreeMap<(&str, u64), Vec<&Chunk<'_>>> = BTreeMap::new();
        for c in &chunks {
            puts.entry(c.put).or_default().push(c);
        }
        let newest = |members: &[&Chunk<'_>]| members.iter().map(|c| c.version).max();
        let current = puts
            .iter()
            .filter(|(put, members)| members.len() as u64 >= put.1)
            .map(|(_, members)| newest(members))
            .max()
            .flatten();
        for (put, members) in &puts {
            let settled = members.iter().all(|c| c.written_at_ms < before_ms);
            let complete = members.len() as u64 >= put.1;
            let superseded = complete && current.is_some_and(|c| newest(members) < Some(c));
            if settled && (!complete || superseded) {
                out.extend(
                    members
                        .iter()
                        .map(|c| (bucket.to_string(), c.key.to_string())),
                );
            }
        }
    }
    out
}

/// Deletes, at a fresh version, the chunk `bucket@key` of a put that is over, on every
/// peer holding it; the sightings are updated so the rest of the round sees the deletion.
async fn delete_abandoned(
    st: &RouterState,
    bucket: &str,
    key: &str,
    sightings: &mut Sightings,
) -> u64 {
    let version = st.clock.now();
    let holders: Vec<PeerView> = sightings
        .iter()
        .filter(|(_, e, _)| !e.deleted)
        .map(|(p, _, _)| p.clone())
        .collect();
    let holders: Vec<&PeerView> = holders.iter().collect();
    let sent = catch_up(st, bucket, key, Catch::Delete(version), &holders).await;
    tracing::info!(event = "REPAIR.ABANDONED.CHUNK", bucket_id = bucket, key, %version);
    for (_, e, v) in sightings.iter_mut() {
        e.deleted = true;
        *v = version;
    }
    sent
}

/// Forgets a key's tombstone on every peer once the delete is everywhere: its newest
/// version is that deletion, no peer holds a copy (older or not), and the delete is older
/// than `settle_time`. Called only in a round that listed every registered peer.
async fn collect_tombstone(st: &RouterState, bucket: &str, key: &str, sightings: &Sightings) {
    let Some(&(_, ref newest, newest_version)) = sightings.iter().max_by_key(|(_, _, v)| *v) else {
        return;
    };
    if !newest.deleted || sightings.iter().any(|(_, e, _)| !e.deleted) {
        return;
    }
    let grace_ms = u64::try_from(st.config.settle_time.as_millis()).unwrap_or(u64::MAX);
    let now_ms = crate::storage::epoch_ms(std::time::SystemTime::now());
    if newest_version.millis().saturating_add(grace_ms) > now_ms {
        return;
    }
    for (peer, _, v) in sightings {
        let v = *v;
        match st.client.purge_tombstone(peer, bucket, key, v).await {
            Ok(true) => {
                st.repair
                    .tombstones_collected
                    .fetch_add(1, Ordering::Relaxed);
            }
            Ok(false) => {}
            Err(e) => {
                st.repair.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(event = "REPAIR.TOMBSTONE.FAILED", bucket_id = bucket, key, peer = %peer.id, error = %e);
            }
        }
    }
}

/// The metadata of the newest copy, as its holder reports it.
async fn metadata_of(
    st: &RouterState,
    peer: &PeerView,
    bucket: &str,
    key: &str,
) -> Option<Metadata> {
    match st.client.get_metadata(peer, bucket, key).await {
        Ok(Some((m, false))) => Some(m.metadata),
        Ok(_) => None,
        Err(e) => {
            st.repair.failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(event = "REPAIR.METADATA.FAILED", bucket_id = bucket, key, peer = %peer.id, error = %e);
            None
        }
    }
}

/// What repair sends to the peers holding an older copy of a key.
#[derive(Debug, Clone, Copy)]
enum Catch {
    /// The key was deleted at this version.
    Delete(Version),
    /// The key was disabled at this version (its bytes cannot be read to be copied).
    Disable(Version),
}

/// Sends `what` to the peers `stale`, which hold an older copy of `bucket@key`; returns
/// how many were sent.
async fn catch_up(
    st: &RouterState,
    bucket: &str,
    key: &str,
    what: Catch,
    stale: &[&PeerView],
) -> u64 {
    for peer in stale {
        let (event, sent) = match what {
            Catch::Delete(version) => {
                let deletion = Deletion {
                    version: Some(version),
                    tombstone_always: true,
                };
                let sent = st.client.delete(peer, bucket, key, true, deletion).await;
                if sent.is_ok() {
                    st.repair.deletes.fetch_add(1, Ordering::Relaxed);
                    st.replicas.remove_peer(bucket, key, &[peer.id.as_str()]);
                }
                (("REPAIR.DELETE", "REPAIR.DELETE.FAILED"), sent.map(|_| ()))
            }
            Catch::Disable(version) => (
                ("REPAIR.DISABLE", "REPAIR.DISABLE.FAILED"),
                st.client
                    .disable(peer, bucket, key, version)
                    .await
                    .map(|_| ()),
            ),
        };
        let (done, failed) = event;
        match sent {
            Ok(()) => {
                tracing::info!(event = done, bucket_id = bucket, key, peer = %peer.id, what = ?what)
            }
            Err(e) => {
                st.note_failure(&e);
                st.repair.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(event = failed, bucket_id = bucket, key, peer = %peer.id, error = %e);
            }
        }
    }
    stale.len() as u64
}

/// Paces copies to a byte rate: before each copy of `n` bytes, waits until the bytes sent
/// so far fit in the time elapsed at that rate.
struct Pacer {
    rate: u64,
    started: Instant,
    sent: u64,
}

impl Pacer {
    fn new(bytes_per_sec: u64) -> Self {
        Self {
            rate: bytes_per_sec.max(1),
            started: Instant::now(),
            sent: 0,
        }
    }

    /// How long to wait before sending `n` more bytes.
    fn delay(&self, now: Instant) -> Duration {
        let due = Duration::from_secs_f64(self.sent as f64 / self.rate as f64);
        due.saturating_sub(now.duration_since(self.started))
    }

    async fn wait(&mut self, n: u64) {
        let delay = self.delay(Instant::now());
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        self.sent = self.sent.saturating_add(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(key: &str, stamp: u64, put: &str, n: u64, written_at_ms: u64) -> Sightings {
        let peer = PeerView {
            id: "p".into(),
            base_url: "http://p".into(),
            up: true,
            verifies_uploads: true,
        };
        let entry = KeyVersionEntry {
            bucket_id: "b".into(),
            key: key.into(),
            version: Version { stamp, tag: 1 }.to_string(),
            deleted: false,
            size: 1,
            replication_factor: 1,
            ball_id: key.split('_').next().unwrap_or(key).into(),
            num_chunks: n,
            full_checksum: put.into(),
            written_at_ms,
        };
        vec![(peer, entry, Version { stamp, tag: 1 })]
    }

    #[test]
    fn abandoned_puts_are_the_settled_incomplete_and_superseded_ones() {
        let mut keys: BTreeMap<(String, String), Sightings> = BTreeMap::new();
        let mut add = |key: &str, stamp, put: &str, n, at| {
            keys.insert(("b".into(), key.into()), chunk(key, stamp, put, n, at));
        };
        // "cut": 2 of 3 chunks, long ago; "slow": 1 of 3, its last chunk just written.
        add("cut_0", 1, "c", 3, 10);
        add("cut_1", 2, "c", 3, 10);
        add("slow_0", 1, "s", 3, 10);
        add("slow_1", 2, "s", 3, 990);
        // "ow": a complete put of 2 chunks over an older complete one of 3 chunks, whose
        // third chunk was left behind; "ip": an overwrite in progress over a complete ball.
        add("ow_0", 5, "new", 2, 10);
        add("ow_1", 6, "new", 2, 10);
        add("ow_2", 1, "old", 3, 10);
        add("ip_0", 1, "old", 2, 10);
        add("ip_1", 1, "old", 2, 10);
        add("ip_2", 9, "new", 3, 10);
        let mut got: Vec<String> = abandoned_chunks(&keys, 500)
            .into_iter()
            .map(|(_, k)| k)
            .collect();
        got.sort();
        // "ow_2" is of an incomplete put (1 of 3) as far as the listing can tell, so it
        // goes; "ip_2" goes too (incomplete and settled), the old "ip" ball stays.
        assert_eq!(got, ["cut_0", "cut_1", "ip_2", "ow_2"]);
    }

    #[test]
    fn the_pacer_holds_copies_to_the_rate() {
        let mut p = Pacer::new(1000);
        let t0 = p.started;
        assert_eq!(p.delay(t0), Duration::ZERO, "the first copy goes at once");
        p.sent = 2000;
        assert_eq!(p.delay(t0), Duration::from_secs(2));
        assert_eq!(
            p.delay(t0 + Duration::from_millis(500)),
            Duration::from_millis(1500)
        );
        assert_eq!(p.delay(t0 + Duration::from_secs(3)), Duration::ZERO);
    }
}
