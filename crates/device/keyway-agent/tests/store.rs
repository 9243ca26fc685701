//! The owner store's behaviour without power cuts: round trips through
//! reopen, refusals, layout checks, wear over many compactions, and the
//! RAM figures.

mod common;

use common::{run_op, script};
use keyway_agent::limits::{CodeBackoff, PeerLimiter, ResetLimiter, TokenBucket};
use keyway_agent::store::{
    Config, ConfigError, Consent, Error, FlashOp, GrantedBy, MAX_NAME, MAX_OWNERS, MIN_SLOTS,
    PairedBy, Settings, State, Store, Verifier, key_id,
};
use keyway_audit::Time;
use keyway_sim::SimFlash;

type Nrf = SimFlash<4, 4096>;
const CONFIG: Config = Config::new(0xF_8000, 2);
const T: Time = Time {
    rtc: 1_760_000_000,
    boot: 1,
};

fn key(i: u8) -> [u8; 32] {
    [i; 32]
}

#[test]
fn every_change_survives_a_reopen() {
    let mut flash = Nrf::nrf52840();
    let mut store = Store::open(&mut flash, CONFIG).unwrap();
    assert_eq!(*store.state(), State::default());
    assert_eq!(store.ring().stride(), 116);
    assert_eq!(store.ring().slots_per_page(), 4096 / 116);
    let (ops, models) = script(200);
    for (i, op) in ops.iter().enumerate() {
        run_op(&mut store, &mut flash, op).unwrap();
        assert!(models[i].matches(store.state()), "step {i}");
        let reopened = Store::open(&mut flash, CONFIG).unwrap();
        assert_eq!(reopened.state(), store.state(), "reopen after step {i}");
    }
    // Compactions alternate between the two pages.
    let erases = [flash.erase_count(248), flash.erase_count(249)];
    assert!(
        erases[0] >= 5 && erases[0].abs_diff(erases[1]) <= 1,
        "{erases:?}"
    );
    println!("200 changes: erases per page {erases:?}");
}

#[test]
fn refusals_name_what_failed_and_change_nothing() {
    let mut flash = Nrf::nrf52840();
    let mut store = Store::open(&mut flash, CONFIG).unwrap();
    let long = "x".repeat(MAX_NAME + 1);
    assert_eq!(
        store.pair(&mut flash, &key(1), &long, T, PairedBy::SetupCode),
        Err(Error::NameTooLong { len: MAX_NAME + 1 })
    );
    for i in 0..MAX_OWNERS as u8 {
        store
            .pair(&mut flash, &key(i), "", T, PairedBy::SetupCode)
            .unwrap();
    }
    assert_eq!(
        store.pair(&mut flash, &key(200), "", T, PairedBy::SetupCode),
        Err(Error::OwnersFull)
    );
    // Re-pairing a paired key when full renames it.
    store
        .pair(
            &mut flash,
            &key(3),
            "kitchen",
            T,
            PairedBy::Owner(key_id(&key(0))),
        )
        .unwrap();
    assert_eq!(
        store.state().owner(&key_id(&key(3))).unwrap().name(),
        "kitchen"
    );
    let ops = flash.ops();
    assert_eq!(
        store.remove_owner(&mut flash, &[9; 8]),
        Err(Error::UnknownOwner { id: [9; 8] })
    );
    // No-ops write nothing.
    store.clear_consent(&mut flash).unwrap();
    store.set_settings(&mut flash, Settings::default()).unwrap();
    store.clear_wrong_codes(&mut flash).unwrap();
    assert_eq!(flash.ops(), ops, "refusals and no-ops write nothing");
    assert!(Verifier::new([0; 32], [0; 32], &[0; 33], 1).is_none());
    let reopened = Store::open(&mut flash, CONFIG).unwrap();
    assert_eq!(reopened.state(), store.state());
    assert_eq!(store.state().owner_count(), MAX_OWNERS);
}

#[test]
fn consent_settings_verifier_and_wrong_codes_round_trip() {
    let mut flash = Nrf::nrf52840();
    let mut store = Store::open(&mut flash, CONFIG).unwrap();
    let consent = Consent {
        digest: [0xC0; 32],
        sequence: 7,
        granted_by: GrantedBy::Presence,
        time: T,
    };
    store.grant_consent(&mut flash, &consent).unwrap();
    let settings = Settings {
        auto_install_cve: true,
        install_needs_unlocked: false,
    };
    store.set_settings(&mut flash, settings).unwrap();
    let v = Verifier::new([1; 32], [4; 32], b"sixteen byte slt", 2000).unwrap();
    store.set_verifier(&mut flash, &v).unwrap();
    assert_eq!(store.record_wrong_code(&mut flash).unwrap(), 1);
    assert_eq!(store.record_wrong_code(&mut flash).unwrap(), 2);
    let s = Store::open(&mut flash, CONFIG).unwrap();
    assert_eq!(s.state().consent(), Some(&consent));
    assert_eq!(s.state().settings(), settings);
    assert_eq!(s.state().verifier().unwrap().salt(), b"sixteen byte slt");
    assert_eq!(s.state().verifier().unwrap().iterations(), 2000);
    assert_eq!(s.state().wrong_codes(), 2);
    store.factory_reset(&mut flash).unwrap();
    assert_eq!(
        *Store::open(&mut flash, CONFIG).unwrap().state(),
        State::default()
    );
}

#[test]
fn layouts_that_cannot_hold_a_snapshot_are_refused() {
    let mut small = SimFlash::<1, 512>::small_pages();
    assert_eq!(
        Store::open(&mut small, Config::new(0x1000, 2)).map(|_| ()),
        Err(Error::Config(ConfigError::PageTooSmall {
            page_size: 512,
            stride: 115,
            min_slots: MIN_SLOTS
        }))
    );
    let mut flash = Nrf::nrf52840();
    assert_eq!(
        Store::open(&mut flash, Config::new(0xF_8000, 1)).map(|_| ()),
        Err(Error::Config(ConfigError::TooFewPages { pages: 1 }))
    );
}

#[test]
fn garbage_in_the_region_opens_empty_and_is_erased_before_use() {
    let mut flash = Nrf::nrf52840();
    let garbage: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    flash.write(0xF_8000, &garbage).unwrap();
    let mut store = Store::open(&mut flash, CONFIG).unwrap();
    assert_eq!(*store.state(), State::default());
    store
        .pair(&mut flash, &key(1), "a", T, PairedBy::Provisioning)
        .unwrap();
    assert_eq!(flash.stats().erase_ops, 1);
    assert_eq!(
        Store::open(&mut flash, CONFIG)
            .unwrap()
            .state()
            .owner_count(),
        1
    );
}

#[test]
fn an_unreadable_region_is_an_error_not_an_empty_store() {
    let mut flash = Nrf::nrf52840();
    flash.set_power_cut(keyway_sim::PowerCut::new(0).before(0));
    // Trigger the cut with a write outside the region; every read fails after.
    assert!(flash.write(0, &[0; 4]).is_err());
    assert!(matches!(
        Store::open(&mut flash, CONFIG),
        Err(Error::Flash {
            op: FlashOp::Read,
            ..
        })
    ));
}

/// The RAM the agent's persistent state and limiters take (statics in
/// the lock core; the whole core's budget is 32 KiB).
#[test]
fn ram_figures() {
    use core::mem::size_of;
    let store = size_of::<Store<Nrf>>();
    let state = size_of::<State>();
    let peers16 = size_of::<PeerLimiter<16>>();
    let peers32 = size_of::<PeerLimiter<32>>();
    let bucket = size_of::<TokenBucket>();
    let reset = size_of::<ResetLimiter>();
    let backoff = size_of::<CodeBackoff>();
    println!(
        "RAM: Option<Owner> {} B, Option<Consent> {} B, Option<Verifier> {} B",
        size_of::<Option<keyway_agent::store::Owner>>(),
        size_of::<Option<Consent>>(),
        size_of::<Option<Verifier>>()
    );
    println!(
        "RAM: Store {store} B (State {state} B), PeerLimiter<16> {peers16} B, \
         PeerLimiter<32> {peers32} B, TokenBucket {bucket} B, ResetLimiter {reset} B, \
         CodeBackoff {backoff} B"
    );
    assert!(
        store <= 1536,
        "the store caches the owners in at most 1.5 KiB: {store}"
    );
    assert!(peers16 <= 768, "{peers16}");
    assert!(reset <= 16 && backoff <= 16 && bucket <= 16);
    assert!(store + peers32 + reset + backoff <= 3 * 1024);
}

mod garbage {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the region holds (random bytes, or valid records cut
        /// and shuffled), opening never panics, and the store then works
        /// and reopens to what it wrote.
        #[test]
        fn any_region_contents_open_without_panic(
            seed in any::<u64>(),
            splice in any::<bool>(),
            cuts in prop::collection::vec((0usize..8192, 0usize..8192, 1usize..600), 0..12),
        ) {
            let mut flash = Nrf::nrf52840();
            let mut image = vec![0xFFu8; 8192];
            if splice {
                // A real store's bytes, with ranges copied over each other.
                let mut store = Store::open(&mut flash, CONFIG).unwrap();
                for op in &script(40).0 {
                    run_op(&mut store, &mut flash, op).unwrap();
                }
                flash.read(0xF_8000, &mut image).unwrap();
                for (from, to, len) in cuts {
                    let len = len.min(8192 - from).min(8192 - to);
                    image.copy_within(from..from + len, to);
                }
            } else {
                let mut x = seed | 1;
                for b in &mut image {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    *b = x as u8;
                }
            }
            let mut bytes = vec![0xFFu8; flash.geometry().capacity() as usize];
            bytes[0xF_8000..0xF_8000 + 8192].copy_from_slice(&image);
            let mut flash = Nrf::from_bytes(keyway_sim::Geometry::nrf52840(), bytes).unwrap();
            let mut store = Store::open(&mut flash, CONFIG).unwrap();
            prop_assert!(store.state().owner_count() <= MAX_OWNERS);
            if store.state().owner_count() < MAX_OWNERS {
                store.pair(&mut flash, &key(250), "after", T, PairedBy::SetupCode).unwrap();
            } else {
                store.factory_reset(&mut flash).unwrap();
            }
            let reopened = Store::open(&mut flash, CONFIG).unwrap();
            prop_assert_eq!(reopened.state(), store.state());
        }
    }
}
