//! Load-balancing rules: which router serves the next request.
//!
//! The choice is a pure function ([`choose`]) over a snapshot of the candidate routers and an
//! injected random source, so every rule is tested deterministically. The names are those of
//! the original clients (reference §6); `LEAST_LATENCY` is ours.

use std::fmt;
use std::str::FromStr;

use rand::Rng;

/// How the client spreads requests over its routers.
///
/// Parsed from the original names, case-insensitively (`-` is accepted for `_`):
/// `ROUND_ROBIN`, `HASH`, `PSEUDORANDOM`, `2CHOICES`, `SORT_UF`, `2CHOICES_UF`,
/// `LEAST_LATENCY`. Only routers the heartbeat believes healthy are candidates (all of them
/// when none is).
///
/// # Examples
///
/// ```
/// use mictlanx::LbAlgorithm;
///
/// let lb: LbAlgorithm = "2choices_uf".parse()?;
/// assert_eq!(lb, LbAlgorithm::TwoChoicesUf);
/// assert_eq!(lb.to_string(), "2CHOICES_UF");
/// assert!("FASTEST".parse::<LbAlgorithm>().is_err());
/// # Ok::<(), mictlanx::ParseLbError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LbAlgorithm {
    /// The router with the fewest operations issued so far (ties: the first one), which is
    /// round robin in effect and exactly the HEAD client's balancer (§6.1).
    #[default]
    RoundRobin,
    /// A stable hash (FNV-1a, 64 bit) of `bucket@key`: the same key always goes to the same
    /// router while the set of healthy routers does not change, in every process.
    Hash,
    /// A uniformly random router.
    PseudoRandom,
    /// Two distinct random routers; the one with fewer requests in flight wins (the second on
    /// a tie).
    TwoChoices,
    /// The router whose peers have the lowest projected disk use `(used + size) / total`
    /// (from the heartbeat's `/api/v4/peers/stats`); round robin while no stats are known.
    SortUf,
    /// Two distinct random routers among those with disk stats; the lower projected disk use
    /// wins (the second on a tie). `2CHOICES` while fewer than two have stats.
    TwoChoicesUf,
    /// The router with the lowest heartbeat latency (exponentially weighted); round robin
    /// while no latency is known.
    LeastLatency,
}

impl LbAlgorithm {
    /// Every algorithm, in the order of the enum.
    pub const ALL: [LbAlgorithm; 7] = [
        LbAlgorithm::RoundRobin,
        LbAlgorithm::Hash,
        LbAlgorithm::PseudoRandom,
        LbAlgorithm::TwoChoices,
        LbAlgorithm::SortUf,
        LbAlgorithm::TwoChoicesUf,
        LbAlgorithm::LeastLatency,
    ];

    /// The original name, e.g. `"2CHOICES_UF"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            LbAlgorithm::RoundRobin => "ROUND_ROBIN",
            LbAlgorithm::Hash => "HASH",
            LbAlgorithm::PseudoRandom => "PSEUDORANDOM",
            LbAlgorithm::TwoChoices => "2CHOICES",
            LbAlgorithm::SortUf => "SORT_UF",
            LbAlgorithm::TwoChoicesUf => "2CHOICES_UF",
            LbAlgorithm::LeastLatency => "LEAST_LATENCY",
        }
    }

    /// Whether the rule needs the routers' disk statistics (so the heartbeat fetches them).
    pub fn needs_disk_stats(&self) -> bool {
        matches!(self, LbAlgorithm::SortUf | LbAlgorithm::TwoChoicesUf)
    }
}

impl fmt::Display for LbAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A load-balancer name that is none of [`LbAlgorithm`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown load balancer {value:?} (expected ROUND_ROBIN, HASH, PSEUDORANDOM, 2CHOICES, SORT_UF, 2CHOICES_UF or LEAST_LATENCY)")]
pub struct ParseLbError {
    /// The refused name.
    pub value: String,
}

impl FromStr for LbAlgorithm {
    type Err = ParseLbError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().replace('-', "_");
        LbAlgorithm::ALL
            .into_iter()
            .find(|lb| lb.as_str().eq_ignore_ascii_case(&wanted))
            .ok_or_else(|| ParseLbError {
                value: s.to_owned(),
            })
    }
}

/// What the balancer knows of one candidate router at the moment of a choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct RouterSnapshot {
    /// Requests in flight.
    pub in_flight: u64,
    /// Operations issued to it so far.
    pub ops: u64,
    /// Heartbeat latency (EWMA) in microseconds, if measured.
    pub latency_us: Option<u64>,
    /// Bytes used by its peers, if known.
    pub disk_used: u64,
    /// Capacity of its peers in bytes; 0 when unknown.
    pub disk_total: u64,
}

impl RouterSnapshot {
    /// Projected disk use after storing `size` more bytes, or `None` without stats.
    fn projected_uf(&self, size: u64) -> Option<f64> {
        if self.disk_total == 0 {
            return None;
        }
        // Precision loss is irrelevant for a ratio used only for ordering.
        Some(self.disk_used.saturating_add(size) as f64 / self.disk_total as f64)
    }
}

/// What a request tells the balancer about itself.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PickRequest<'a> {
    /// Bucket id (for `HASH`).
    pub bucket: &'a str,
    /// Key or ball id (for `HASH`).
    pub key: &'a str,
    /// Bytes the request will store (for the `_UF` rules).
    pub size: u64,
}

/// Picks one of `candidates` by `algo`; `None` only when there is no candidate.
///
/// Returns a position in `candidates`.
pub(crate) fn choose<R: Rng + ?Sized>(
    algo: LbAlgorithm,
    candidates: &[RouterSnapshot],
    req: &PickRequest<'_>,
    rng: &mut R,
) -> Option<usize> {
    let n = candidates.len();
    if n == 0 {
        return None;
    }
    if n == 1 {
        return Some(0);
    }
    let pick = match algo {
        LbAlgorithm::RoundRobin => fewest_ops(candidates),
        LbAlgorithm::Hash => {
            let h = fnv1a64(req.bucket, req.key);
            // n fits in u64 and the remainder is below n, so both casts are lossless.
            usize::try_from(h % n as u64).unwrap_or(0)
        }
        LbAlgorithm::PseudoRandom => rng.gen_range(0..n),
        LbAlgorithm::TwoChoices => {
            let (x, y) = two_distinct(n, rng);
            if candidates[x].in_flight < candidates[y].in_flight {
                x
            } else {
                y
            }
        }
        LbAlgorithm::SortUf => {
            lowest_uf(candidates, req.size).unwrap_or_else(|| fewest_ops(candidates))
        }
        LbAlgorithm::TwoChoicesUf => {
            let with_stats: Vec<usize> = (0..n).filter(|&i| candidates[i].disk_total > 0).collect();
            if with_stats.len() < 2 {
                return choose(LbAlgorithm::TwoChoices, candidates, req, rng);
            }
            let (a, b) = if with_stats.len() == 2 {
                (0, 1)
            } else {
                two_distinct(with_stats.len(), rng)
            };
            let (x, y) = (with_stats[a], with_stats[b]);
            let ux = candidates[x].projected_uf(req.size).unwrap_or(f64::MAX);
            let uy = candidates[y].projected_uf(req.size).unwrap_or(f64::MAX);
            if ux < uy {
                x
            } else {
                y
            }
        }
        LbAlgorithm::LeastLatency => candidates
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.latency_us.map(|l| (l, i)))
            .min()
            .map(|(_, i)| i)
            .unwrap_or_else(|| fewest_ops(candidates)),
    };
    Some(pick)
}

/// The first candidate with the fewest operations so far.
fn fewest_ops(candidates: &[RouterSnapshot]) -> usize {
    candidates
        .iter()
        .enumerate()
        .min_by_key(|(i, c)| (c.ops, *i))
        .map_or(0, |(i, _)| i)
}

/// The first candidate with the lowest projected disk use, if any has stats.
fn lowest_uf(candidates: &[RouterSnapshot], size: u64) -> Option<usize> {
    candidates
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.projected_uf(size).map(|uf| (uf, i)))
        .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))
        .map(|(_, i)| i)
}

/// Two distinct uniform indices below `n` (`n >= 2`).
fn two_distinct<R: Rng + ?Sized>(n: usize, rng: &mut R) -> (usize, usize) {
    let x = rng.gen_range(0..n);
    let y = rng.gen_range(0..n - 1);
    (x, if y >= x { y + 1 } else { y })
}

/// FNV-1a (64 bit) of `bucket@key`: stable across processes and platforms, unlike `std`'s
/// `DefaultHasher` (randomly keyed) or Python's salted `hash`.
pub(crate) fn fnv1a64(bucket: &str, key: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bucket
        .bytes()
        .chain(std::iter::once(b'@'))
        .chain(key.bytes())
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn rng() -> StdRng {
        StdRng::seed_from_u64(7)
    }

    fn snaps(n: usize) -> Vec<RouterSnapshot> {
        vec![RouterSnapshot::default(); n]
    }

    const REQ: PickRequest<'static> = PickRequest {
        bucket: "b",
        key: "k",
        size: 0,
    };

    #[test]
    fn names_parse_case_insensitively_and_round_trip() {
        for lb in LbAlgorithm::ALL {
            assert_eq!(lb.as_str().parse::<LbAlgorithm>(), Ok(lb));
            assert_eq!(lb.as_str().to_lowercase().parse::<LbAlgorithm>(), Ok(lb));
        }
        assert_eq!("round-robin".parse(), Ok(LbAlgorithm::RoundRobin));
        assert_eq!(" 2choices ".parse(), Ok(LbAlgorithm::TwoChoices));
        let err = "FASTEST".parse::<LbAlgorithm>().unwrap_err();
        assert!(err.to_string().contains("FASTEST"));
    }

    #[test]
    fn empty_set_is_none_and_single_is_it() {
        for lb in LbAlgorithm::ALL {
            assert_eq!(choose(lb, &[], &REQ, &mut rng()), None);
            assert_eq!(choose(lb, &snaps(1), &REQ, &mut rng()), Some(0));
        }
    }

    /// Reference §13: 6 default calls over 2 routers give 3 each.
    #[test]
    fn round_robin_six_calls_over_two_routers_is_three_each() {
        let mut routers = snaps(2);
        let mut counts = [0; 2];
        for _ in 0..6 {
            let i = choose(LbAlgorithm::RoundRobin, &routers, &REQ, &mut rng()).unwrap();
            routers[i].ops += 1;
            counts[i] += 1;
        }
        assert_eq!(counts, [3, 3]);
    }

    /// Reference §13: after 3 explicit picks of r0 the default pick is r1, and keeps being
    /// r1 until the counts are level.
    #[test]
    fn round_robin_after_explicit_picks_goes_to_the_other() {
        let mut routers = snaps(2);
        routers[0].ops = 3;
        for _ in 0..3 {
            let i = choose(LbAlgorithm::RoundRobin, &routers, &REQ, &mut rng()).unwrap();
            assert_eq!(i, 1);
            routers[i].ops += 1;
        }
        assert_eq!(
            choose(LbAlgorithm::RoundRobin, &routers, &REQ, &mut rng()),
            Some(0)
        );
    }

    #[test]
    fn hash_is_stable_and_spreads() {
        // Fixed expectation: the same everywhere, in every process.
        assert_eq!(fnv1a64("b", "k"), FNV_B_AT_K);
        assert_eq!(fnv1a64("b", "k"), fnv1a64("b", "k"));
        assert_ne!(fnv1a64("b", "k"), fnv1a64("b", "k2"));
        assert_ne!(fnv1a64("ab", "c"), fnv1a64("a", "bc"));
        let routers = snaps(3);
        let mut seen = [0; 3];
        for i in 0..300 {
            let key = format!("ball-{i}");
            let req = PickRequest {
                bucket: "b",
                key: &key,
                size: 0,
            };
            let a = choose(LbAlgorithm::Hash, &routers, &req, &mut rng()).unwrap();
            // Any other rng gives the same answer: the rule is not random.
            let b = choose(
                LbAlgorithm::Hash,
                &routers,
                &req,
                &mut StdRng::seed_from_u64(99),
            );
            assert_eq!(Some(a), b);
            seen[a] += 1;
        }
        assert!(seen.iter().all(|&c| c > 50), "{seen:?}");
    }

    /// FNV-1a 64 of `"b@k"`, computed outside Rust.
    const FNV_B_AT_K: u64 = 0x00a9_3d19_1398_5d1c;

    #[test]
    fn fnv_known_vector() {
        // FNV-1a 64 of "a@b" computed by hand from the published constants.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in b"a@b" {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x100_0000_01b3);
        }
        assert_eq!(fnv1a64("a", "b"), h);
    }

    #[test]
    fn pseudorandom_covers_every_router() {
        let routers = snaps(4);
        let mut r = rng();
        let mut seen = [false; 4];
        for _ in 0..200 {
            seen[choose(LbAlgorithm::PseudoRandom, &routers, &REQ, &mut r).unwrap()] = true;
        }
        assert_eq!(seen, [true; 4]);
    }

    #[test]
    fn two_choices_prefers_fewer_in_flight() {
        // With two routers both are always drawn: the idle one wins every time.
        let mut routers = snaps(2);
        routers[0].in_flight = 5;
        let mut r = rng();
        for _ in 0..50 {
            assert_eq!(
                choose(LbAlgorithm::TwoChoices, &routers, &REQ, &mut r),
                Some(1)
            );
        }
        // With three, the busiest is never chosen (it always loses its duel).
        let mut routers = snaps(3);
        routers[2].in_flight = 9;
        routers[1].in_flight = 1;
        for _ in 0..200 {
            assert_ne!(
                choose(LbAlgorithm::TwoChoices, &routers, &REQ, &mut r),
                Some(2)
            );
        }
    }

    #[test]
    fn two_distinct_is_distinct() {
        let mut r = rng();
        for n in 2..6 {
            for _ in 0..100 {
                let (x, y) = two_distinct(n, &mut r);
                assert!(x != y && x < n && y < n);
            }
        }
    }

    #[test]
    fn sort_uf_picks_lowest_projected_use() {
        let mut routers = snaps(3);
        routers[0] = RouterSnapshot {
            disk_used: 50,
            disk_total: 100,
            ..Default::default()
        };
        routers[1] = RouterSnapshot {
            disk_used: 20,
            disk_total: 100,
            ..Default::default()
        };
        routers[2] = RouterSnapshot {
            disk_used: 100,
            disk_total: 1000,
            ..Default::default()
        };
        // Without size: 0.5, 0.2, 0.1 -> router 2.
        assert_eq!(
            choose(LbAlgorithm::SortUf, &routers, &REQ, &mut rng()),
            Some(2)
        );
        // Storing 200 bytes: (50+200)/100, (20+200)/100, (100+200)/1000 = 0.3 -> still 2.
        // Storing 10 on a smaller third: make router 1 the best.
        routers[2].disk_used = 900;
        let req = PickRequest { size: 10, ..REQ };
        assert_eq!(
            choose(LbAlgorithm::SortUf, &routers, &req, &mut rng()),
            Some(1)
        );
        // Without any stats it falls back to fewest operations.
        let mut bare = snaps(2);
        bare[0].ops = 1;
        assert_eq!(
            choose(LbAlgorithm::SortUf, &bare, &REQ, &mut rng()),
            Some(1)
        );
    }

    #[test]
    fn two_choices_uf_with_two_stats_compares_them() {
        let mut routers = snaps(3);
        routers[0] = RouterSnapshot {
            disk_used: 90,
            disk_total: 100,
            ..Default::default()
        };
        routers[2] = RouterSnapshot {
            disk_used: 10,
            disk_total: 100,
            ..Default::default()
        };
        let mut r = rng();
        for _ in 0..50 {
            assert_eq!(
                choose(LbAlgorithm::TwoChoicesUf, &routers, &REQ, &mut r),
                Some(2)
            );
        }
        // A tie goes to the second of the pair.
        routers[0].disk_used = 10;
        assert_eq!(
            choose(LbAlgorithm::TwoChoicesUf, &routers, &REQ, &mut r),
            Some(2)
        );
        // Fewer than two with stats: in-flight duel instead.
        let mut routers = snaps(2);
        routers[1].in_flight = 3;
        assert_eq!(
            choose(LbAlgorithm::TwoChoicesUf, &routers, &REQ, &mut r),
            Some(0)
        );
    }

    #[test]
    fn least_latency_picks_fastest_known() {
        let mut routers = snaps(3);
        routers[0].latency_us = Some(900);
        routers[1].latency_us = None;
        routers[2].latency_us = Some(300);
        assert_eq!(
            choose(LbAlgorithm::LeastLatency, &routers, &REQ, &mut rng()),
            Some(2)
        );
        let mut unknown = snaps(2);
        unknown[0].ops = 2;
        assert_eq!(
            choose(LbAlgorithm::LeastLatency, &unknown, &REQ, &mut rng()),
            Some(1)
        );
    }
}
