//! Where replicas go: a pure function of the key and the peer membership.
//!
//! Every router ranks the peers for a key by weighted rendezvous hashing (highest random
//! weight, Thaler & Ravishankar 1998, with Schindelhauer's logarithmic weights): peer `p`
//! scores `w_p / -ln(u)`, where `u` in (0, 1) is a hash of the key and the peer id and `w_p`
//! the peer's capacity. The replicas of a key go to the first `rf` peers of that order that
//! are up and have room; the ones after them are the fallbacks. So every router computes the
//! same places from the same membership, a put contacts only the peers it writes to, a fresh
//! router finds a key without asking every peer, and adding a peer moves only the keys for
//! which it now ranks in the first places (about `rf / n` of them).

use std::cmp::Ordering;

/// What placement knows about one peer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Candidate {
    /// Peer id.
    pub id: String,
    /// Whether the last probe succeeded.
    pub up: bool,
    /// Capacity in bytes (0 until a probe has told it).
    pub total: u64,
    /// Bytes used at the last probe.
    pub used: u64,
    /// Bytes promised to uploads placed on it and not yet finished.
    pub reserved: u64,
    /// It answered a put with 507 (no space) since its last probe.
    pub full: bool,
}

impl Candidate {
    fn available(&self) -> u64 {
        self.total
            .saturating_sub(self.used.saturating_add(self.reserved))
    }

    /// Whether a replica of `size` bytes can go here now.
    pub(crate) fn can_take(&self, size: u64) -> bool {
        self.up && !self.full && self.available() >= size
    }

    /// The rendezvous score of this peer for the key hashed as `key_hash`, with `weight`.
    fn score(&self, key_hash: u64, weight: u64) -> f64 {
        let h = mix(key_hash ^ fnv1a(self.id.as_bytes()));
        // 53 random bits, never 0: u in (0, 1).
        let u = ((h >> 11) | 1) as f64 / (1u64 << 53) as f64;
        // Precision loss in the weight is irrelevant for ranking.
        weight as f64 / -u.ln()
    }
}

/// Not enough eligible peers: `eligible` could take the object, `wanted` were asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NotEnoughPeers {
    /// Peers that could have taken it.
    pub eligible: usize,
    /// Replicas asked for.
    pub wanted: usize,
}

/// The hash of `bucket@key` that placement ranks peers by.
pub(crate) fn key_hash(bucket: &str, key: &str) -> u64 {
    let mut bytes = Vec::with_capacity(bucket.len() + key.len() + 1);
    bytes.extend_from_slice(bucket.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(key.as_bytes());
    fnv1a(&bytes)
}

/// Every peer of `candidates` in the key's rendezvous order (best first); ties are broken
/// by id.
///
/// A peer not probed yet (capacity 0) is ranked as if it had the largest capacity known:
/// where the peers are alike, which is the common case, that is its true rank, so a router
/// that starts while a peer is down still knows whether that peer is one of a key's places.
pub(crate) fn order(candidates: &[Candidate], key_hash: u64) -> Vec<&Candidate> {
    let assumed = candidates.iter().map(|c| c.total).max().unwrap_or(0).max(1);
    let weight = |c: &Candidate| if c.total == 0 { assumed } else { c.total };
    let mut ranked: Vec<(f64, &Candidate)> = candidates
        .iter()
        .map(|c| (c.score(key_hash, weight(c)), c))
        .collect();
    ranked.sort_by(|(sa, a), (sb, b)| {
        sb.partial_cmp(sa)
            .unwrap_or(Ordering::Equal)
            .then_with(|| a.id.cmp(&b.id))
    });
    ranked.into_iter().map(|(_, c)| c).collect()
}

/// Chooses `count` peers for an object of `size` bytes: the first ones of the key's order
/// that are up, have room and are not in `exclude`.
///
/// # Errors
///
/// [`NotEnoughPeers`] when fewer than `count` peers are eligible; nothing is chosen then.
pub(crate) fn choose(
    candidates: &[Candidate],
    key_hash: u64,
    exclude: &[String],
    count: usize,
    size: u64,
) -> Result<Vec<String>, NotEnoughPeers> {
    if count == 0 {
        return Ok(Vec::new());
    }
    let eligible: Vec<String> = order(candidates, key_hash)
        .into_iter()
        .filter(|c| c.can_take(size) && !exclude.contains(&c.id))
        .map(|c| c.id.clone())
        .collect();
    if eligible.len() < count {
        return Err(NotEnoughPeers {
            eligible: eligible.len(),
            wanted: count,
        });
    }
    Ok(eligible.into_iter().take(count).collect())
}

/// FNV-1a, 64 bits: stable across processes, platforms and releases.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The splitmix64 finaliser: spreads FNV's weak low bits over the whole word.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(id: &str, total: u64, used: u64) -> Candidate {
        Candidate {
            id: id.to_string(),
            up: true,
            total,
            used,
            reserved: 0,
            full: false,
        }
    }

    fn ids(order: Vec<&Candidate>) -> Vec<String> {
        order.into_iter().map(|c| c.id.clone()).collect()
    }

    #[test]
    fn the_order_depends_on_the_key_and_the_membership_only() {
        let a = [
            peer("a", 1000, 0),
            peer("b", 1000, 900),
            peer("c", 1000, 10),
        ];
        // Another router: same peers in another order, other disk use.
        let b = [peer("c", 1000, 500), peer("a", 1000, 1), peer("b", 1000, 0)];
        for k in 0..50 {
            let h = key_hash("bucket", &format!("key-{k}"));
            assert_eq!(ids(order(&a, h)), ids(order(&b, h)));
        }
        assert_ne!(key_hash("b", "k"), key_hash("b", "k2"));
        assert_ne!(key_hash("ab", "c"), key_hash("a", "bc"));
    }

    #[test]
    fn keys_spread_by_capacity() {
        let peers = [peer("small", 1_000, 0), peer("big", 3_000, 0)];
        let mut big = 0;
        for k in 0..4000 {
            if order(&peers, key_hash("b", &format!("{k}")))[0].id == "big" {
                big += 1;
            }
        }
        // Expected 3/4 of the keys; allow for the randomness of 4000 draws.
        assert!((2800..3200).contains(&big), "{big}");
    }

    #[test]
    fn adding_a_peer_moves_only_the_keys_it_now_leads() {
        let before = [peer("a", 1000, 0), peer("b", 1000, 0), peer("c", 1000, 0)];
        let mut after = before.to_vec();
        after.push(peer("d", 1000, 0));
        let mut moved = 0;
        for k in 0..3000 {
            let h = key_hash("b", &format!("{k}"));
            let old = order(&before, h)[0].id.clone();
            let new = order(&after, h)[0].id.clone();
            if old != new {
                assert_eq!(new, "d", "a key moved between old peers");
                moved += 1;
            }
        }
        assert!((600..900).contains(&moved), "{moved}");
    }

    #[test]
    fn choose_skips_down_full_and_excluded_peers_in_order() {
        let mut peers = vec![
            peer("a", 1000, 0),
            peer("b", 1000, 0),
            peer("c", 1000, 995),
            peer("d", 1000, 0),
        ];
        let h = key_hash("b", "k");
        let full = ids(order(&peers, h));
        let chosen = choose(&peers, h, &[], 4, 0).unwrap();
        assert_eq!(chosen, full);
        // The first peer down: the others move up, in the same order.
        let first = full[0].clone();
        peers.iter_mut().find(|p| p.id == first).unwrap().up = false;
        let expected: Vec<String> = full
            .iter()
            .filter(|id| **id != first && id.as_str() != "c")
            .cloned()
            .collect();
        assert_eq!(expected.len(), 2);
        assert_eq!(choose(&peers, h, &[], 2, 10).unwrap(), expected);
        assert_eq!(
            choose(&peers, h, &[expected[0].clone()], 1, 10).unwrap(),
            expected[1..].to_vec()
        );
        assert_eq!(
            choose(&peers, h, &[], 3, 10),
            Err(NotEnoughPeers {
                eligible: 2,
                wanted: 3
            })
        );
        assert!(choose(&peers, h, &[], 0, 10).unwrap().is_empty());
        // A peer that answered 507 takes nothing, not even what its numbers say fits.
        let second = expected[0].clone();
        peers.iter_mut().find(|p| p.id == second).unwrap().full = true;
        assert_eq!(
            choose(&peers, h, &[], 1, 0).unwrap(),
            expected[1..].to_vec()
        );
    }

    #[test]
    fn an_unprobed_peer_ranks_as_its_peers_and_takes_only_empty_objects() {
        let probed = [peer("a", 1000, 0), peer("b", 1000, 0), peer("c", 1000, 0)];
        let mut unprobed = probed.to_vec();
        unprobed[1].total = 0;
        for k in 0..50 {
            let h = key_hash("b", &format!("{k}"));
            assert_eq!(ids(order(&probed, h)), ids(order(&unprobed, h)));
            let chosen = choose(&unprobed, h, &[], 2, 1).unwrap();
            assert!(!chosen.contains(&"b".to_string()), "no room known on b");
        }
        let h = key_hash("b", "k");
        assert_eq!(choose(&unprobed, h, &[], 3, 0).unwrap().len(), 3);
    }
}
