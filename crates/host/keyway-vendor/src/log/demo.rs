//! `keyway log demo-export`: a plausible day of a lock, logged on a
//! simulated nRF52840 flash and exported.

use keyway_audit::record::MAX_RECORD_LEN;
use keyway_audit::{Event, Signer, Time};

/// Step `i` of the demo log's script: a plausible day of a lock.
pub fn demo_event(i: u32) -> (Time, Event) {
    use keyway_audit::{LockMethod as M, RejectReason, Version};
    let time = Time {
        rtc: 1_795_564_800 + u64::from(i) * 600,
        boot: 1 + i / 50,
    };
    let methods = [M::Keypad, M::OwnerCommand, M::MechanicalKey, M::AutoRelock];
    let e = match i % 50 {
        0 => Event::Boot {
            slot: ((i / 50) % 2) as u8,
            version: Version::new(2, 1, (i / 50) as u16),
        },
        10 => Event::PinFailed { consecutive: 1 },
        20 => Event::UpdateOffered {
            sequence: u64::from(i),
            version: Version::new(2, 2, 0),
        },
        21 => Event::UpdateRejected {
            sequence: u64::from(i),
            reason: RejectReason::AntiRollback,
        },
        30 => Event::BatteryLow { millivolts: 3300 },
        40 => Event::TamperDetected { sensor: 1 },
        41 => Event::TamperCleared { sensor: 1 },
        k if k % 2 == 1 => Event::Unlocked {
            method: methods[(i as usize / 2) % 4],
        },
        _ => Event::Locked {
            method: methods[(i as usize / 3) % 4],
        },
    };
    (time, e)
}

/// Builds a log of `events` demo events on a simulated nRF52840 flash
/// (`pages` pages of 4 KiB; 29 records each, so more events wrap with
/// checkpoints), signed by `signer`, and returns its export.
pub fn demo_export<S: Signer>(signer: &S, events: u32, pages: u32) -> anyhow::Result<Vec<u8>> {
    let mut flash = keyway_sim::Nrf52840Flash::nrf52840();
    let config = keyway_audit::Config::new(0, pages);
    let mut log =
        keyway_audit::AuditLog::open(&mut flash, config).map_err(|e| anyhow::anyhow!("{e}"))?;
    for i in 0..events {
        let (t, e) = demo_event(i);
        log.append(&mut flash, signer, t, &e)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let at = demo_event(events).0;
    let mut export = log.export(at);
    let mut out = Vec::new();
    let mut buf = [0u8; MAX_RECORD_LEN];
    loop {
        let n = export
            .fill(&log, &mut flash, signer, &mut buf)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    Ok(out)
}
