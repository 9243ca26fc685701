//! Property tests of the per-peer limiter: a flood from one peer never
//! makes another peer's allowed request fail.

use keyway_agent::limits::{PeerId, PeerLimiter, Rate, TokenBucket};
use proptest::prelude::*;

const N: usize = 8;
const RATE: Rate = Rate {
    burst: 4,
    interval_ms: 250,
};
const OVERFLOW: Rate = Rate {
    burst: 2,
    interval_ms: 1000,
};
const FLOODER: PeerId = PeerId(0xF100D);

/// A request: which of the other peers (`None`: the flooder) and how many
/// ms after the previous request.
fn requests() -> impl Strategy<Value = Vec<(Option<u8>, u16)>> {
    prop::collection::vec(
        (
            prop_oneof![3 => Just(None), 1 => (0u8..(N as u8 - 1)).prop_map(Some)],
            0u16..300,
        ),
        1..400,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// With the flooder and up to N - 1 other peers, every other peer's
    /// request gets exactly the answer it gets when the flooder is absent,
    /// and the one its own bucket alone gives.
    #[test]
    fn a_flood_never_fails_another_peers_allowed_request(
        reqs in requests(),
        idle_ms in 0u64..5000,
        flooder_first in any::<bool>(),
    ) {
        let mut with = PeerLimiter::<N>::new(RATE, OVERFLOW, idle_ms, 0);
        let mut without = PeerLimiter::<N>::new(RATE, OVERFLOW, idle_ms, 0);
        let mut alone: [Option<TokenBucket>; N] = [None; N];
        let mut now = 0u64;
        if flooder_first {
            prop_assert!(with.check(FLOODER, 0).is_allowed());
        }
        for (who, dt) in reqs {
            now += u64::from(dt);
            match who {
                None => {
                    // The flood: many requests at once.
                    for _ in 0..50 {
                        with.check(FLOODER, now);
                    }
                }
                Some(p) => {
                    let peer = PeerId(u64::from(p));
                    let a = with.check(peer, now);
                    let b = without.check(peer, now);
                    let own = alone[p as usize]
                        .get_or_insert_with(|| TokenBucket::full(RATE, now))
                        .take(RATE, now);
                    prop_assert_eq!(a, b, "peer {} at {} ms", p, now);
                    prop_assert_eq!(a, own, "peer {} at {} ms", p, now);
                }
            }
        }
    }

    /// With more peers than entries, a peer that holds an entry when the
    /// flood starts keeps it and is judged by its own bucket alone, while
    /// the flooder and new peers without an entry share the overflow
    /// bucket.
    #[test]
    fn a_flood_of_new_ids_never_evicts_a_busy_peer(
        gaps in prop::collection::vec(0u16..200, 1..200),
        flood_ids in prop::collection::vec(1000u64..2000, 1..200),
    ) {
        let idle_ms = 10_000;
        let mut l = PeerLimiter::<N>::new(RATE, OVERFLOW, idle_ms, 0);
        // Fill the table.
        for p in 0..N as u64 {
            prop_assert!(l.check(PeerId(p), 0).is_allowed());
        }
        let mut own = TokenBucket::full(RATE, 0);
        own.take(RATE, 0);
        let mut now = 0;
        for (i, gap) in gaps.iter().enumerate() {
            now += u64::from(*gap);
            for id in &flood_ids {
                l.check(PeerId(*id), now);
            }
            // Peer 0 stays busy (never idle for `idle_ms`).
            let got = l.check(PeerId(0), now);
            prop_assert_eq!(got, own.take(RATE, now), "request {}", i);
            prop_assert!(l.has_entry(PeerId(0)));
        }
    }
}
