//! Property tests: any state round-trips through its encoding and through
//! the journal; no byte string makes the decoder panic.

use keyway_device::journal::{
    Config, Download, Journal, PersistentState, SwapPhase, SwapProgress, TrialState,
};
use keyway_sim::SimFlash;
use proptest::prelude::*;

fn slot() -> impl Strategy<Value = u8> {
    0u8..=1
}

fn trial() -> impl Strategy<Value = TrialState> {
    prop_oneof![
        Just(TrialState::None),
        slot().prop_map(|slot| TrialState::Pending { slot }),
        (slot(), any::<u8>()).prop_map(|(slot, attempts_left)| TrialState::Trial {
            slot,
            attempts_left
        }),
        Just(TrialState::Confirmed),
    ]
}

fn swap() -> impl Strategy<Value = Option<SwapProgress>> {
    let phase = prop_oneof![
        Just(SwapPhase::Staged),
        (any::<u32>(), any::<bool>()).prop_map(|(step, saved)| SwapPhase::Swapping { step, saved }),
        Just(SwapPhase::Swapped),
        any::<u32>().prop_map(|step| SwapPhase::Reverting { step }),
    ];
    proptest::option::of(
        (any::<u32>(), phase).prop_map(|(image_sectors, phase)| SwapProgress {
            image_sectors,
            phase,
        }),
    )
}

fn state() -> impl Strategy<Value = PersistentState> {
    (
        swap(),
        any::<Option<u64>>(),
        any::<u32>(),
        slot(),
        trial(),
        any::<u8>(),
        proptest::option::of((slot(), any::<[u8; 32]>(), any::<u32>())),
    )
        .prop_map(
            |(swap, floor, keyset_version, active_slot, trial, boot_attempts, download)| {
                PersistentState {
                    floor,
                    keyset_version,
                    active_slot,
                    trial,
                    boot_attempts,
                    download: download.map(|(slot, manifest_digest, offset)| Download {
                        slot,
                        manifest_digest,
                        offset,
                    }),
                    swap,
                }
            },
        )
}

proptest! {
    #[test]
    fn encoding_round_trips(s in state()) {
        prop_assert!(s.is_valid());
        prop_assert_eq!(PersistentState::decode(&s.encode()), Ok(s));
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        if let Ok(s) = PersistentState::decode(&bytes) {
            // Only canonical encodings decode.
            prop_assert_eq!(&s.encode()[..], &bytes[..]);
        }
    }

    #[test]
    fn states_round_trip_through_the_journal(
        states in proptest::collection::vec((state(), any::<bool>()), 1..60),
    ) {
        // Small pages: 7 records a page, so 60 commits turn pages often.
        let mut flash = SimFlash::<1, 512>::small_pages();
        let config = Config::new(0x400, 3);
        let mut journal = Journal::open(&mut flash, config).unwrap();
        for (s, reopen) in states {
            journal.commit(&mut flash, &s).unwrap();
            prop_assert_eq!(*journal.state(), s);
            if reopen {
                journal = Journal::open(&mut flash, config).unwrap();
                prop_assert_eq!(*journal.state(), s);
            }
        }
    }
}
