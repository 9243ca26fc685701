//! The store tests' script and its independent model.
#![allow(dead_code)]

use embedded_storage::nor_flash::NorFlash;
use keyway_agent::store::{
    Consent, Error, GrantedBy, MAX_OWNERS, PairedBy, Settings, State, Store, Verifier,
};
use keyway_audit::Time;

/// An owner as the model keeps it (and as a pairing brings it).
#[derive(Clone, Debug, PartialEq)]
pub struct OwnerRow {
    pub key: [u8; 32],
    pub name: String,
    pub added: Time,
    pub by: PairedBy,
}

/// One change the script makes.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Pairs an owner, or re-pairs (renames) one with the same key.
    Pair(OwnerRow),
    Remove([u8; 32]),
    Grant(Consent),
    ClearConsent,
    Settings(Settings),
    Verifier(Verifier),
    WrongCode,
    ClearWrongCodes,
    FactoryReset,
    Compact,
}

impl Op {
    /// The name the sweep reports counts under.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Pair(_) => "pair an owner",
            Op::Remove(_) => "remove an owner",
            Op::Grant(_) => "grant consent",
            Op::ClearConsent => "clear consent",
            Op::Settings(_) => "change settings",
            Op::Verifier(_) => "set the verifier",
            Op::WrongCode => "count a wrong code",
            Op::ClearWrongCodes => "clear wrong codes",
            Op::FactoryReset => "factory reset",
            Op::Compact => "explicit compaction",
        }
    }
}

/// The owners, consent, settings, verifier and wrong codes, kept the
/// plain way (a `Vec`), to check the store against.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Model {
    pub owners: Vec<OwnerRow>,
    pub consent: Option<Consent>,
    pub settings: Settings,
    pub verifier: Option<Verifier>,
    pub wrong: u32,
}

impl Model {
    pub fn apply(&mut self, op: &Op) {
        match op {
            Op::Pair(o) => match self.owners.iter_mut().find(|e| e.key == o.key) {
                Some(e) => *e = o.clone(),
                None => self.owners.push(o.clone()),
            },
            Op::Remove(key) => self.owners.retain(|e| e.key != *key),
            Op::Grant(c) => self.consent = Some(*c),
            Op::ClearConsent => self.consent = None,
            Op::Settings(s) => self.settings = *s,
            Op::Verifier(v) => self.verifier = Some(*v),
            Op::WrongCode => self.wrong += 1,
            Op::ClearWrongCodes => self.wrong = 0,
            Op::FactoryReset => *self = Model::default(),
            Op::Compact => {}
        }
    }

    /// Whether the store's state is exactly this.
    pub fn matches(&self, s: &State) -> bool {
        let owners: Vec<_> = s
            .owners()
            .map(|o| OwnerRow {
                key: *o.key(),
                name: o.name().to_owned(),
                added: o.added(),
                by: o.paired_by(),
            })
            .collect();
        owners == self.owners
            && s.consent() == self.consent.as_ref()
            && s.settings() == self.settings
            && s.verifier() == self.verifier.as_ref()
            && s.wrong_codes() == self.wrong
    }
}

/// Applies `op` to the store.
pub fn run_op<F: NorFlash>(
    store: &mut Store<F>,
    flash: &mut F,
    op: &Op,
) -> Result<(), Error<F::Error>> {
    match op {
        Op::Pair(o) => store
            .pair(flash, &o.key, &o.name, o.added, o.by)
            .map(|_| ()),
        Op::Remove(key) => store
            .remove_owner(flash, &keyway_agent::store::key_id(key))
            .map(|_| ()),
        Op::Grant(c) => store.grant_consent(flash, c),
        Op::ClearConsent => store.clear_consent(flash),
        Op::Settings(s) => store.set_settings(flash, *s),
        Op::Verifier(v) => store.set_verifier(flash, v),
        Op::WrongCode => store.record_wrong_code(flash).map(|_| ()),
        Op::ClearWrongCodes => store.clear_wrong_codes(flash),
        Op::FactoryReset => store.factory_reset(flash),
        Op::Compact => store.compact(flash),
    }
}

fn key(i: u32) -> [u8; 32] {
    let mut k = [0u8; 32];
    for (j, b) in k.iter_mut().enumerate() {
        *b = (i as u8)
            .wrapping_mul(37)
            .wrapping_add((j as u8).wrapping_mul(11))
            ^ 0x5A;
    }
    k
}

fn time(i: u32) -> Time {
    Time {
        rtc: 1_760_000_000 + u64::from(i) * 61,
        boot: 7 + i / 10,
    }
}

/// A script of `len` changes, every one of which changes the state
/// (explicit compactions aside): owners come and go (up to the capacity,
/// with a re-pair that renames), consent is granted and cleared, settings
/// flip, wrong codes count up and clear, the verifier is set and reset,
/// and a factory reset comes at `len * 3 / 4`. Each model in the result is
/// the state after that step.
pub fn script(len: u32) -> (Vec<Op>, Vec<Model>) {
    let mut ops = Vec::new();
    let mut models = Vec::new();
    let mut m = Model::default();
    let mut next_key = 0u32;
    for i in 0..len {
        let op = if i == len * 3 / 4 {
            Op::FactoryReset
        } else {
            match i % 10 {
                0 | 3 | 7 if m.owners.len() < MAX_OWNERS => {
                    next_key += 1;
                    let by = match next_key % 3 {
                        0 => PairedBy::SetupCode,
                        1 => PairedBy::Provisioning,
                        _ => PairedBy::Owner(keyway_agent::store::key_id(&key(next_key - 1))),
                    };
                    Op::Pair(OwnerRow {
                        key: key(next_key),
                        name: format!("owner {next_key} — ключ"),
                        added: time(i),
                        by,
                    })
                }
                0 | 3 | 7 | 5 if m.owners.len() >= 2 => Op::Remove(m.owners[0].key),
                1 => Op::Grant(Consent {
                    digest: [i as u8; 32],
                    sequence: u64::from(i) + 100,
                    granted_by: match i % 3 {
                        0 => GrantedBy::Presence,
                        1 => GrantedBy::Owner([i as u8; 8]),
                        _ => GrantedBy::AutoInstall,
                    },
                    time: time(i),
                }),
                2 => Op::Settings(Settings {
                    auto_install_cve: !m.settings.auto_install_cve,
                    install_needs_unlocked: i % 4 == 2,
                }),
                4 if m.consent.is_some() => Op::ClearConsent,
                6 if i % 20 == 6 => Op::Compact,
                8 if !m.owners.is_empty() => {
                    let last = &m.owners[m.owners.len() - 1];
                    Op::Pair(OwnerRow {
                        name: format!("renamed at {i}"),
                        added: time(i),
                        ..last.clone()
                    })
                }
                9 if m.wrong > 0 && i % 20 == 19 => Op::ClearWrongCodes,
                9 => Op::Verifier(
                    Verifier::new(
                        [i as u8; 32],
                        [i as u8 ^ 0x04; 32],
                        &vec![i as u8; (i as usize % 33).max(16)],
                        1000 + i,
                    )
                    .unwrap(),
                ),
                _ => Op::WrongCode,
            }
        };
        let before = m.clone();
        m.apply(&op);
        assert!(
            op == Op::Compact || m != before,
            "script step {i} ({op:?}) changes nothing"
        );
        ops.push(op);
        models.push(m.clone());
    }
    (ops, models)
}
