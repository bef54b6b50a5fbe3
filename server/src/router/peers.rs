//! The peer registry: the peers the router knows, whether they are up, and their disk use.
//!
//! Peers come from the configuration and from `POST /api/v4/xpeers` / `POST /api/v4/peers`.
//! A peer is up after a successful probe (`GET /api/v4/stats/ufs`, see `probe`) and down
//! after a failed one, or at once when a request to it cannot connect; down peers are
//! skipped by placement and reads until a probe brings them back. All state sits behind one
//! `std` mutex, locked only inside the small methods below and never across an `.await`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use mictlanx::model::{PeerInfo, PeerPayload, PeersListResponse, UfsResponse};
use mictlanx::uri::{NodeAddress, Protocol};

use super::placement::Candidate;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    /// Not probed yet.
    Unknown,
    Up,
    Down,
}

#[derive(Debug)]
struct PeerEntry {
    address: NodeAddress,
    base_url: String,
    health: Health,
    total_disk: u64,
    used_disk: u64,
    reserved: u64,
    /// The replica map has not been filled from this peer's listing since it came up.
    needs_sync: bool,
    /// Its last probe said it checks the SHA-256 of uploads itself.
    verifies_uploads: bool,
    /// It answered a put with 507 since its last probe: placement skips it until the next
    /// probe brings fresh numbers.
    full: bool,
}

/// A copy of what the registry knows about one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PeerView {
    /// Peer id.
    pub id: String,
    /// `http://host:port`.
    pub base_url: String,
    /// Whether the last probe succeeded.
    pub up: bool,
    /// Whether its last probe said it checks the SHA-256 of uploads itself.
    pub verifies_uploads: bool,
}

/// A change of a peer's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    /// Nothing changed.
    Same,
    /// It is up now (first probe, or back after being down).
    Up,
    /// It is down now.
    Down,
}

/// The registry. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct PeerRegistry {
    inner: Arc<Mutex<HashMap<String, PeerEntry>>>,
}

/// A refused peer payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PayloadError {
    /// `protocol` is not http or https.
    #[error("invalid protocol {0:?} for peer {1:?} (expected http or https)")]
    Protocol(String, String),
    /// `port` is outside 1..=65535 (and not -1 or 0, meaning "none").
    #[error("invalid port {0} for peer {1:?}")]
    Port(i32, String),
    /// The id is empty, too long, or has characters that do not belong in an id.
    #[error("invalid peer id {0:?}")]
    Id(String),
    /// The host name is empty or has whitespace or control characters.
    #[error("invalid hostname {0:?} for peer {1:?}")]
    Hostname(String, String),
}

/// Checks a peer id: 1 to 255 bytes of letters, digits, `-`, `_`, `.` and `:`.
pub(crate) fn valid_peer_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 255
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

/// Turns an API payload into an address, validating every field.
pub(crate) fn address_from_payload(p: &PeerPayload) -> Result<NodeAddress, PayloadError> {
    if !valid_peer_id(&p.peer_id) {
        return Err(PayloadError::Id(p.peer_id.chars().take(64).collect()));
    }
    let protocol: Protocol = p
        .protocol
        .parse()
        .map_err(|_| PayloadError::Protocol(p.protocol.clone(), p.peer_id.clone()))?;
    let port = match p.port {
        -1 | 0 => None,
        n => Some(u16::try_from(n).map_err(|_| PayloadError::Port(n, p.peer_id.clone()))?),
    };
    let host = p.hostname.trim();
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(PayloadError::Hostname(
            p.hostname.chars().take(64).collect(),
            p.peer_id.clone(),
        ));
    }
    Ok(NodeAddress::new(host, port, protocol).with_id(p.peer_id.clone()))
}

/// The id a configured address goes by: its id, else `host:port`.
pub(crate) fn peer_id_of(address: &NodeAddress) -> String {
    address.id.clone().unwrap_or_else(|| address.label())
}

impl PeerRegistry {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, PeerEntry>> {
        // Each method leaves the map consistent at every step; a poisoned lock is usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a peer, or updates its address. A new or moved peer is down until probed.
    pub(crate) fn add(&self, address: NodeAddress) {
        let id = peer_id_of(&address);
        let base_url = address.base_url();
        let mut map = self.lock();
        match map.get_mut(&id) {
            Some(entry) if entry.address == address => {}
            Some(entry) => {
                entry.base_url = base_url;
                entry.address = address;
                entry.health = Health::Unknown;
                entry.needs_sync = false;
            }
            None => {
                map.insert(
                    id,
                    PeerEntry {
                        address,
                        base_url,
                        health: Health::Unknown,
                        total_disk: 0,
                        used_disk: 0,
                        reserved: 0,
                        needs_sync: false,
                        // Until a probe says otherwise, the router checks uploads itself.
                        verifies_uploads: false,
                        full: false,
                    },
                );
            }
        }
    }

    /// Forgets a peer; `false` if it was unknown.
    pub(crate) fn remove(&self, id: &str) -> bool {
        self.lock().remove(id).is_some()
    }

    fn view_of(id: &str, e: &PeerEntry) -> PeerView {
        PeerView {
            id: id.to_string(),
            base_url: e.base_url.clone(),
            up: e.health == Health::Up,
            verifies_uploads: e.verifies_uploads,
        }
    }

    /// One peer.
    pub(crate) fn view(&self, id: &str) -> Option<PeerView> {
        self.lock().get(id).map(|e| Self::view_of(id, e))
    }

    /// The peers of `ids` that are up, in the order given (unknown ids are left out).
    pub(crate) fn up_views(&self, ids: &[String]) -> Vec<PeerView> {
        let map = self.lock();
        ids.iter()
            .filter_map(|id| map.get(id).map(|e| Self::view_of(id, e)))
            .filter(|p| p.up)
            .collect()
    }

    /// Every peer, by id.
    pub(crate) fn all(&self) -> Vec<PeerView> {
        let mut v: Vec<PeerView> = self
            .lock()
            .iter()
            .map(|(id, e)| Self::view_of(id, e))
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// The peers that are up, by id.
    pub(crate) fn healthy(&self) -> Vec<PeerView> {
        let mut v = self.all();
        v.retain(|p| p.up);
        v
    }

    /// `(up, total)`.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let map = self.lock();
        let up = map.values().filter(|e| e.health == Health::Up).count();
        (up, map.len())
    }

    /// Records a successful probe.
    pub(crate) fn probe_ok(&self, id: &str, ufs: &UfsResponse) -> Transition {
        let mut map = self.lock();
        let Some(e) = map.get_mut(id) else {
            return Transition::Same;
        };
        e.total_disk = ufs.total_disk;
        e.used_disk = ufs.used_disk;
        e.verifies_uploads = ufs.verifies_uploads;
        // Fresh numbers: whether it has room is theirs to say now.
        e.full = false;
        if e.health == Health::Up {
            return Transition::Same;
        }
        e.health = Health::Up;
        e.needs_sync = true;
        tracing::info!(
            event = "PEER.UP",
            peer = id,
            total_disk = ufs.total_disk,
            used_disk = ufs.used_disk
        );
        Transition::Up
    }

    /// Records a failed probe or a request that could not reach the peer.
    pub(crate) fn mark_down(&self, id: &str, reason: &str) -> Transition {
        let mut map = self.lock();
        let Some(e) = map.get_mut(id) else {
            return Transition::Same;
        };
        if e.health == Health::Down {
            return Transition::Same;
        }
        let was = e.health;
        e.health = Health::Down;
        e.needs_sync = false;
        if was == Health::Up {
            tracing::warn!(event = "PEER.DOWN", peer = id, reason);
        } else {
            tracing::warn!(event = "PEER.DOWN", peer = id, reason, first_probe = true);
        }
        Transition::Down
    }

    /// Records that a peer refused a put for want of space (507): placement skips it until
    /// its next probe.
    pub(crate) fn mark_full(&self, id: &str) {
        if let Some(e) = self.lock().get_mut(id) {
            if !e.full {
                tracing::warn!(event = "PEER.FULL", peer = id);
            }
            e.full = true;
        }
    }

    /// Peers that came up and whose listing has not been merged into the replica map yet;
    /// the flag is cleared, [`PeerRegistry::retry_sync`] sets it again after a failure.
    pub(crate) fn take_needs_sync(&self) -> Vec<PeerView> {
        let mut map = self.lock();
        let mut out = Vec::new();
        for (id, e) in map.iter_mut() {
            if e.needs_sync && e.health == Health::Up {
                e.needs_sync = false;
                out.push(Self::view_of(id, e));
            }
        }
        out
    }

    /// Asks for another sync of this peer at the next probe round.
    pub(crate) fn retry_sync(&self, id: &str) {
        if let Some(e) = self.lock().get_mut(id) {
            if e.health == Health::Up {
                e.needs_sync = true;
            }
        }
    }

    /// Reserves `size` bytes on each peer for an upload in progress.
    pub(crate) fn reserve<S: AsRef<str>>(&self, ids: &[S], size: u64) {
        let mut map = self.lock();
        for id in ids {
            if let Some(e) = map.get_mut(id.as_ref()) {
                e.reserved = e.reserved.saturating_add(size);
            }
        }
    }

    /// Gives back a reservation.
    pub(crate) fn release<S: AsRef<str>>(&self, ids: &[S], size: u64) {
        let mut map = self.lock();
        for id in ids {
            if let Some(e) = map.get_mut(id.as_ref()) {
                e.reserved = e.reserved.saturating_sub(size);
            }
        }
    }

    /// What placement needs to know about every peer.
    pub(crate) fn candidates(&self) -> Vec<Candidate> {
        self.lock()
            .iter()
            .map(|(id, e)| Candidate {
                id: id.clone(),
                up: e.health == Health::Up,
                total: e.total_disk,
                used: e.used_disk,
                reserved: e.reserved,
                full: e.full,
            })
            .collect()
    }

    /// The P2 listing.
    pub(crate) fn list(&self) -> PeersListResponse {
        let map = self.lock();
        let mut out = PeersListResponse::default();
        let mut ids: Vec<&String> = map.keys().collect();
        ids.sort();
        for id in ids {
            let Some(e) = map.get(id) else { continue };
            let info = PeerInfo {
                peer_id: id.clone(),
                ip_addr: e.address.host.clone(),
                port: e.address.port.map_or(-1, i32::from),
                protocol: e.address.protocol.as_str().to_string(),
                api_version: e.address.api_version,
            };
            if e.health == Health::Up {
                out.available.push(info);
            } else {
                out.unavailable.push(info);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(id: &str, port: u16) -> NodeAddress {
        NodeAddress::new("127.0.0.1", Some(port), Protocol::Http).with_id(id)
    }

    fn ufs(total: u64, used: u64) -> UfsResponse {
        UfsResponse {
            total_disk: total,
            used_disk: used,
            disk_uf: 0.0,
            verifies_uploads: false,
        }
    }

    #[test]
    fn peers_start_down_and_transition_on_probes() {
        let r = PeerRegistry::default();
        r.add(addr("p0", 1));
        r.add(addr("p1", 2));
        assert_eq!(r.counts(), (0, 2));
        assert!(r.healthy().is_empty());
        assert_eq!(r.probe_ok("p0", &ufs(100, 10)), Transition::Up);
        assert_eq!(r.probe_ok("p0", &ufs(100, 20)), Transition::Same);
        assert_eq!(r.mark_down("p1", "refused"), Transition::Down);
        assert_eq!(r.mark_down("p1", "refused"), Transition::Same);
        assert_eq!(r.counts(), (1, 2));
        let list = r.list();
        assert_eq!(list.available[0].peer_id, "p0");
        assert_eq!(list.unavailable[0].peer_id, "p1");
        assert_eq!(list.available[0].port, 1);
        let c = r.candidates();
        let p0 = c.iter().find(|c| c.id == "p0").unwrap();
        assert_eq!((p0.total, p0.used, p0.up), (100, 20, true));
        // Unknown ids are ignored.
        assert_eq!(r.probe_ok("nope", &ufs(1, 1)), Transition::Same);
    }

    #[test]
    fn sync_is_requested_once_per_coming_up() {
        let r = PeerRegistry::default();
        r.add(addr("p0", 1));
        r.probe_ok("p0", &ufs(100, 0));
        assert_eq!(r.take_needs_sync().len(), 1);
        assert!(r.take_needs_sync().is_empty());
        r.retry_sync("p0");
        assert_eq!(r.take_needs_sync().len(), 1);
        r.mark_down("p0", "x");
        r.retry_sync("p0");
        assert!(r.take_needs_sync().is_empty());
        r.probe_ok("p0", &ufs(100, 0));
        assert_eq!(r.take_needs_sync().len(), 1);
    }

    #[test]
    fn moving_a_peer_makes_it_unknown_again() {
        let r = PeerRegistry::default();
        r.add(addr("p0", 1));
        r.probe_ok("p0", &ufs(100, 0));
        r.add(addr("p0", 1));
        assert_eq!(r.counts(), (1, 1));
        r.add(addr("p0", 2));
        assert_eq!(r.counts(), (0, 1));
        assert_eq!(r.view("p0").unwrap().base_url, "http://127.0.0.1:2");
        assert!(r.remove("p0"));
        assert!(!r.remove("p0"));
    }

    #[test]
    fn reservations() {
        let r = PeerRegistry::default();
        r.add(addr("p0", 1));
        r.reserve(&["p0"], 50);
        r.reserve(&["p0"], 25);
        r.release(&["p0"], 60);
        assert_eq!(r.candidates()[0].reserved, 15);
        r.release(&["p0"], 100);
        assert_eq!(r.candidates()[0].reserved, 0);
    }

    #[test]
    fn a_full_peer_is_skipped_until_its_next_probe() {
        let r = PeerRegistry::default();
        r.add(addr("p0", 1));
        r.probe_ok("p0", &ufs(100, 0));
        r.mark_full("p0");
        assert!(!r.candidates()[0].can_take(1));
        r.probe_ok("p0", &ufs(100, 0));
        assert!(r.candidates()[0].can_take(1));
    }

    #[test]
    fn payload_validation() {
        let ok = PeerPayload {
            protocol: "HTTP".into(),
            peer_id: "peer-9".into(),
            hostname: "localhost".into(),
            port: 25009,
        };
        let a = address_from_payload(&ok).unwrap();
        assert_eq!(a.base_url(), "http://localhost:25009");
        assert_eq!(peer_id_of(&a), "peer-9");
        let no_port = PeerPayload {
            port: -1,
            ..ok.clone()
        };
        assert_eq!(address_from_payload(&no_port).unwrap().port, None);
        for bad in [
            PeerPayload {
                protocol: "ftp".into(),
                ..ok.clone()
            },
            PeerPayload {
                port: 70000,
                ..ok.clone()
            },
            PeerPayload {
                port: -5,
                ..ok.clone()
            },
            PeerPayload {
                peer_id: "".into(),
                ..ok.clone()
            },
            PeerPayload {
                peer_id: "a/b".into(),
                ..ok.clone()
            },
            PeerPayload {
                hostname: " ".into(),
                ..ok.clone()
            },
            PeerPayload {
                hostname: "a b".into(),
                ..ok.clone()
            },
        ] {
            assert!(address_from_payload(&bad).is_err(), "{bad:?}");
        }
    }
}
