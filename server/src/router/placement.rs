//! Where new replicas go: a pure function of the peers' disk state.
//!
//! The legacy MictlanX placement sorted peers by their last known utilisation and ignored
//! what it had just placed; we rank by the **projected** utilisation
//! `(used + reserved + size) / total`, where `reserved` counts uploads placed but not yet
//! finished, so a burst of puts spreads over the peers instead of piling onto the one that
//! looked emptiest at the last probe.

use std::cmp::Ordering;

/// What placement knows about one peer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Candidate {
    /// Peer id.
    pub id: String,
    /// Whether the last probe succeeded.
    pub up: bool,
    /// Capacity in bytes.
    pub total: u64,
    /// Bytes used at the last probe.
    pub used: u64,
    /// Bytes promised to uploads placed on it and not yet finished.
    pub reserved: u64,
}

impl Candidate {
    fn available(&self) -> u64 {
        self.total
            .saturating_sub(self.used.saturating_add(self.reserved))
    }

    fn projected_uf(&self, size: u64) -> f64 {
        if self.total == 0 {
            return f64::INFINITY;
        }
        // Precision loss is irrelevant for ranking.
        (self.used as f64 + self.reserved as f64 + size as f64) / self.total as f64
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

/// Chooses `count` peers for an object of `size` bytes.
///
/// Eligible peers are up, not in `holding` (a peer holds at most one replica of a key) and
/// have `available >= size`; they are taken by lowest projected utilisation, ties broken by
/// id so that the choice is deterministic.
///
/// # Errors
///
/// [`NotEnoughPeers`] when fewer than `count` peers are eligible; nothing is chosen then.
pub(crate) fn choose(
    candidates: &[Candidate],
    holding: &[String],
    count: usize,
    size: u64,
) -> Result<Vec<String>, NotEnoughPeers> {
    if count == 0 {
        return Ok(Vec::new());
    }
    let mut eligible: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| c.up && !holding.contains(&c.id) && c.available() >= size)
        .collect();
    if eligible.len() < count {
        return Err(NotEnoughPeers {
            eligible: eligible.len(),
            wanted: count,
        });
    }
    eligible.sort_by(|a, b| {
        a.projected_uf(size)
            .partial_cmp(&b.projected_uf(size))
            .unwrap_or(Ordering::Equal)
            .then_with(|| a.id.cmp(&b.id))
    });
    Ok(eligible
        .into_iter()
        .take(count)
        .map(|c| c.id.clone())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(id: &str, total: u64, used: u64, reserved: u64) -> Candidate {
        Candidate {
            id: id.to_string(),
            up: true,
            total,
            used,
            reserved,
        }
    }

    #[test]
    fn lowest_projected_utilisation_first() {
        let peers = [
            peer("a", 1000, 500, 0),
            peer("b", 1000, 100, 0),
            peer("c", 10_000, 2000, 0),
        ];
        assert_eq!(choose(&peers, &[], 1, 10).unwrap(), vec!["b"]);
        assert_eq!(choose(&peers, &[], 2, 10).unwrap(), vec!["b", "c"]);
        assert_eq!(choose(&peers, &[], 3, 10).unwrap(), vec!["b", "c", "a"]);
    }

    #[test]
    fn reservations_count_and_size_matters_relative_to_total() {
        // b looks emptier at the probe, but has uploads in flight.
        let peers = [peer("a", 1000, 300, 0), peer("b", 1000, 100, 400)];
        assert_eq!(choose(&peers, &[], 1, 0).unwrap(), vec!["a"]);
        // A big object weighs more on a small peer: 100 + 500 on 1000 vs 300 + 500 on 4000.
        let peers = [peer("small", 1000, 100, 0), peer("big", 4000, 300, 0)];
        assert_eq!(choose(&peers, &[], 1, 500).unwrap(), vec!["big"]);
    }

    #[test]
    fn skips_down_holding_and_full_peers() {
        let mut down = peer("down", 1000, 0, 0);
        down.up = false;
        let peers = [
            down,
            peer("holder", 1000, 0, 0),
            peer("full", 1000, 995, 0),
            peer("ok", 1000, 900, 0),
        ];
        let holding = vec!["holder".to_string()];
        assert_eq!(choose(&peers, &holding, 1, 10).unwrap(), vec!["ok"]);
        assert_eq!(
            choose(&peers, &holding, 2, 10),
            Err(NotEnoughPeers {
                eligible: 1,
                wanted: 2
            })
        );
    }

    #[test]
    fn not_enough_peers_chooses_nothing() {
        let peers = [peer("a", 1000, 0, 0), peer("b", 1000, 0, 0)];
        assert_eq!(
            choose(&peers, &[], 3, 1),
            Err(NotEnoughPeers {
                eligible: 2,
                wanted: 3
            })
        );
        assert_eq!(
            choose(&[], &[], 1, 0),
            Err(NotEnoughPeers {
                eligible: 0,
                wanted: 1
            })
        );
    }

    #[test]
    fn ties_are_broken_by_id_and_zero_count_is_empty() {
        let peers = [
            peer("c", 1000, 0, 0),
            peer("a", 1000, 0, 0),
            peer("b", 1000, 0, 0),
        ];
        assert_eq!(choose(&peers, &[], 2, 1).unwrap(), vec!["a", "b"]);
        assert!(choose(&peers, &[], 0, 1).unwrap().is_empty());
    }

    #[test]
    fn zero_capacity_peer_takes_only_empty_objects_and_ranks_last() {
        let peers = [peer("zero", 0, 0, 0), peer("a", 1000, 999, 0)];
        assert_eq!(choose(&peers, &[], 1, 1).unwrap(), vec!["a"]);
        assert_eq!(choose(&peers, &[], 2, 0).unwrap(), vec!["a", "zero"]);
    }
}
