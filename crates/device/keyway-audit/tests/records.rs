//! Record and event encoding: every event round-trips, every corruption is
//! refused with an error naming it, nothing panics.

mod common;

use common::{all_events, export, parse};
use keyway_audit::record::{MAX_RECORD_LEN, MIN_RECORD_LEN, record_len};
use keyway_audit::{
    AuditLog, Body, Config, DecodeError, Event, LockMethod, Record, RejectReason, RevertReason,
    Time,
};
use keyway_sim::SimFlash;

fn record(seq: u32, event: Event) -> Record {
    Record {
        seq,
        time: Time {
            rtc: 0x0102_0304_0506_0708,
            boot: 77,
        },
        prev: [0xA5; 32],
        body: Body::Event(event),
    }
}

#[test]
fn every_event_round_trips() {
    let events = all_events();
    // Every code of every enum is covered.
    assert_eq!(
        events.len(),
        18 + RejectReason::ALL.len() + RevertReason::ALL.len() + 2 * LockMethod::ALL.len()
    );
    for (i, e) in events.iter().enumerate() {
        let r = record(i as u32, *e);
        let mut buf = [0u8; MAX_RECORD_LEN];
        let n = r.encode(&mut buf);
        assert!((MIN_RECORD_LEN..=MAX_RECORD_LEN).contains(&n), "{e:?}: {n}");
        assert_eq!(record_len(&buf[..n]), Ok(n));
        assert_eq!(Record::decode(&buf[..n]), Ok((r, n)), "{e}");
        // Display names the event.
        assert!(e.to_string().starts_with(e.name()), "{e}");
    }
}

#[test]
fn unknown_codes_are_named_errors() {
    assert_eq!(
        Event::decode(&[0x7E]),
        Err(DecodeError::UnknownCode {
            field: "event",
            code: 0x7E
        })
    );
    assert_eq!(
        Event::decode(&[0x30, 9]),
        Err(DecodeError::UnknownCode {
            field: "lock method",
            code: 9
        })
    );
    let mut body = [0u8; 10];
    body[0] = 0x13;
    body[9] = 0;
    assert_eq!(
        Event::decode(&body),
        Err(DecodeError::UnknownCode {
            field: "reject reason",
            code: 0
        })
    );
    assert_eq!(
        Event::decode(&[0x01, 0]),
        Err(DecodeError::EventLength {
            code: 0x01,
            expected: 6,
            got: 2
        })
    );
    assert_eq!(Event::decode(&[]), Err(DecodeError::EmptyEvent));
    let msg = DecodeError::UnknownCode {
        field: "event",
        code: 0x7E,
    }
    .to_string();
    assert_eq!(msg, "unknown event code 0x7e");
}

#[test]
fn every_bit_flip_and_truncation_is_refused() {
    for e in all_events() {
        let r = record(5, e);
        let mut buf = [0u8; MAX_RECORD_LEN];
        let n = r.encode(&mut buf);
        for i in 0..n {
            for bit in 0..8 {
                let mut b = buf;
                b[i] ^= 1 << bit;
                // Refused (CRC, magic, kind, length) or, never, the same record.
                assert!(Record::decode(&b[..n]).is_err(), "{e}: byte {i} bit {bit}");
            }
        }
        for len in 0..n {
            assert!(Record::decode(&buf[..len]).is_err(), "{e}: {len} bytes");
        }
    }
    // Hostile lengths never panic.
    let mut b = [0u8; 300];
    b[..4].copy_from_slice(b"KWA1");
    for kind in 0..=255u8 {
        for len in 0..=255u8 {
            b[4] = kind;
            b[5] = len;
            let _ = Record::decode(&b);
            let _ = Record::decode(&b[..100]);
        }
    }
}

#[test]
fn export_streams_in_any_chunk_size_and_verifies() {
    let mut flash = SimFlash::<4, 4096>::nrf52840();
    let cfg = Config::new(0x1_0000, 3);
    let times = (0..).map(|rtc| Time { rtc, boot: 1 });
    let log = common::log_with(&mut flash, cfg, times.zip(all_events()));
    assert_eq!(log.next_seq(), all_events().len() as u32);
    let at = Time { rtc: 999, boot: 2 };
    let whole = export(&log, &mut flash, 4096, at);
    for chunk in [1, 7, 60, 141] {
        assert_eq!(export(&log, &mut flash, chunk, at), whole, "chunk {chunk}");
    }
    let records = common::check_export(&whole).unwrap();
    let got: Vec<Event> = common::events(&records)
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    assert_eq!(got, all_events());
    // Reopened, the log continues the same chain.
    let log2 = AuditLog::open(&mut flash, cfg).unwrap();
    assert_eq!(log2.next_seq(), log.next_seq());
    assert_eq!(log2.head(), log.head());
    assert_eq!(parse(&whole).len(), all_events().len() + 1);
}

#[test]
fn a_wrong_chain_is_caught_by_the_test_oracle() {
    // The oracle the sweeps rely on must be able to fail.
    let mut flash = SimFlash::<4, 4096>::nrf52840();
    let cfg = Config::new(0, 2);
    let log = common::log_with(&mut flash, cfg, (0..5).map(common::step));
    let bytes = export(&log, &mut flash, 512, Time::default());
    let records = parse(&bytes);
    // Drop record 2.
    let mut cut = Vec::new();
    for (i, (_, b)) in records.iter().enumerate() {
        if i != 2 {
            cut.extend_from_slice(b);
        }
    }
    assert!(common::check_export(&cut).is_err());
    assert!(common::check_export(&bytes).is_ok());
}
