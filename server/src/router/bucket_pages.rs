//! R7 a page at a time: the peers' pages of a bucket, merged so that a router page holds
//! exactly the live keys of its range.
//!
//! Every healthy peer is asked for its page after the cursor. A peer whose page is
//! truncated has listed keys only up to its last one, so the merge of a round is final
//! only up to the smallest such last key (the *frontier*): there every peer has said what
//! it holds or deleted, and a newer tombstone on any peer hides a key. Keys past the
//! frontier wait for the next round, which starts from it. A ball some of whose chunks
//! lie outside the range is judged on the whole ball (PM4 of each peer), and only its
//! chunks inside the range are listed, so a ball split across pages is listed once and
//! only when complete.

use mictlanx::model::{Metadata, PeerBucketMetadata};

use super::listing::{complete_ball, needs_whole_ball, KeyRange, Merge};
use super::peer_client::PeerError;
use super::peers::PeerView;
use super::state::RouterState;

/// Rounds of peer pages one router page may take: tombstones and incomplete balls list
/// nothing, so a round may add no record; the page then ends early, still truncated.
const MAX_ROUNDS: usize = 8;

/// One page of a bucket's live records.
#[derive(Debug, Default)]
pub(crate) struct RouterPage {
    /// Records in key order.
    pub(crate) records: Vec<Metadata>,
    /// Peers that answered every round.
    pub(crate) answered: Vec<String>,
    /// The last key covered, when more may follow.
    pub(crate) next: Option<String>,
    /// What the peers that did not answer said.
    pub(crate) errors: Vec<PeerError>,
}

/// The last key a peer's page covers (its records and tombstones are in key order).
pub(crate) fn last_key(page: &PeerBucketMetadata) -> Option<String> {
    let ball = page.balls.last().map(|m| m.key.as_str());
    let tomb = page.tombstones.keys().next_back().map(String::as_str);
    ball.max(tomb).map(str::to_string)
}

/// Up to `limit` live records of `bucket` after the key `after`, from `peers`.
pub(crate) async fn bucket_page(
    st: &RouterState,
    peers: &[PeerView],
    bucket: &str,
    after: Option<String>,
    limit: usize,
) -> RouterPage {
    let mut page = RouterPage {
        answered: peers.iter().map(|p| p.id.clone()).collect(),
        ..RouterPage::default()
    };
    let mut cursor = after;
    for _ in 0..MAX_ROUNDS {
        let mut listings = Vec::new();
        let errors = st
            .ask_each(
                peers,
                |p| st.client.bucket_page(p, bucket, cursor.as_deref(), limit),
                |peer, listing| listings.push((peer.id.clone(), listing)),
            )
            .await;
        page.answered
            .retain(|id| listings.iter().any(|(answered, _)| answered == id));
        page.errors.extend(errors);
        if listings.is_empty() {
            page.next = cursor;
            return page;
        }
        let frontier = listings
            .iter()
            .filter(|(_, l)| l.is_truncated)
            .filter_map(|(_, l)| last_key(l))
            .min();
        let range = KeyRange {
            after: cursor.clone(),
            until: frontier.clone(),
        };
        let mut merged = Merge::default();
        for (_, l) in listings {
            merged.add_listing_in(l.balls, &l.versions, &l.tombstones, &range);
        }
        let window = live_records(st, peers, bucket, merged, &range).await;
        for record in window {
            if page.records.len() == limit {
                page.next = page.records.last().map(|m| m.key.clone());
                return page;
            }
            page.records.push(record);
        }
        match frontier {
            None => {
                page.next = None;
                return page;
            }
            Some(f) if page.records.len() == limit => {
                page.next = Some(f);
                return page;
            }
            Some(f) => cursor = Some(f),
        }
    }
    page.next = cursor;
    page
}

/// The live records of complete balls in `range`, in key order.
async fn live_records(
    st: &RouterState,
    peers: &[PeerView],
    bucket: &str,
    merged: Merge,
    range: &KeyRange,
) -> Vec<Metadata> {
    let mut out = Vec::new();
    for (ball, chunks) in merged.live_by_ball() {
        if !needs_whole_ball(&chunks) {
            out.extend(complete_ball(chunks));
            continue;
        }
        let whole = whole_ball(st, peers, bucket, &ball).await;
        out.extend(whole.into_iter().filter(|m| range.contains(&m.key)));
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

/// The records of the newest complete put of a ball, from every peer's PM4.
async fn whole_ball(
    st: &RouterState,
    peers: &[PeerView],
    bucket: &str,
    ball: &str,
) -> Vec<Metadata> {
    let mut merged = Merge::default();
    st.ask_each(
        peers,
        |p| st.client.ball_group(p, bucket, ball),
        |_, group| {
            if let Some(g) = group {
                merged.add_listing(g.balls, &g.versions, &g.tombstones);
            }
        },
    )
    .await;
    merged
        .live_by_ball()
        .remove(ball)
        .map(complete_ball)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_key_of_a_page_counts_its_tombstones() {
        let m = |key: &str| Metadata {
            key: key.into(),
            size: 0,
            checksum: String::new(),
            tags: Default::default(),
            content_type: String::new(),
            producer_id: String::new(),
            ball_id: key.into(),
            bucket_id: "b".into(),
            is_disabled: false,
        };
        let empty = PeerBucketMetadata {
            peer_id: "p".into(),
            balls: Vec::new(),
            versions: Default::default(),
            tombstones: Default::default(),
            is_truncated: false,
            next_continuation_token: None,
        };
        let mut page = PeerBucketMetadata {
            balls: vec![m("a"), m("c")],
            ..empty.clone()
        };
        assert_eq!(last_key(&page).as_deref(), Some("c"));
        page.tombstones.insert("d".into(), "1.1".into());
        assert_eq!(last_key(&page).as_deref(), Some("d"));
        assert_eq!(last_key(&empty), None);
    }
}
