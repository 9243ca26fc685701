//! Round trips of every request and answer, both ways; deterministic
//! encoding; error bodies of both SMP versions with typed refusals; the
//! owner's signed message.

use keyway_smp::auth;

mod common;
use common::{AUTH, OWNERS};
use keyway_smp::cbor::{Reader, Writer};
use keyway_smp::header::{split_request, split_response};
use keyway_smp::keyway_group::{Bolt, Cve, Door, Settings, Severity, UpdateState, UpdateSummary};
use keyway_smp::samples;
use keyway_smp::seq::Seq;
use keyway_smp::*;

/// The shared sample of every request, without and with `auth`, and the
/// field encodings it leaves out: optional fields absent or set, a
/// four-byte `len`, a two-byte byte-string length.
fn requests() -> Vec<Request<'static>> {
    let mut all = samples::requests(None).to_vec();
    all.extend(samples::requests(Some(AUTH)));
    all.extend([
        Request::Info(os::Info { format: Some("a") }),
        Request::Upload(img::Upload {
            len: Some(70_000),
            sha: Some(&[7; 32]),
            image: Some(0),
            upgrade: Some(false),
            auth: Some(AUTH),
            kw: true,
            ..common::chunk(0, &[0xAA; 100])
        }),
        Request::Upload(img::Upload {
            kw: true,
            ..common::chunk(1024, &[0x55; 300])
        }),
        Request::Erase(img::Erase {
            slot: None,
            auth: None,
            kw: true,
        }),
        Request::Log(keyway_group::Log {
            off: 4096,
            auth: None,
        }),
        Request::Pair(keyway_group::Pair {
            key: [4; 32],
            name: None,
        }),
        Request::Settings(keyway_group::SettingsReq {
            auto_install_cve: Some(true),
            auth: Some(AUTH),
            ..Default::default()
        }),
        Request::Sealed(keyway_group::Sealed { msg: &[0x66; 1500] }),
    ]);
    all
}

const SLOTS: [img::ImageSlot<'static>; 2] = [
    img::ImageSlot {
        image: Some(0),
        slot: 0,
        version: "1.4.0",
        hash: &[0x11; 32],
        bootable: true,
        pending: false,
        confirmed: true,
        active: true,
        permanent: false,
    },
    img::ImageSlot {
        image: Some(0),
        slot: 1,
        version: "2.1.0",
        hash: &[0x22; 32],
        bootable: true,
        pending: true,
        confirmed: false,
        active: false,
        permanent: false,
    },
];

const CVES: [Cve<'static>; 2] = [
    Cve {
        id: "CVE-2024-12345",
        severity: Severity::High,
    },
    Cve {
        id: "CVE-2024-0001",
        severity: Severity::Low,
    },
];

const SUMMARY: UpdateSummary<'static> = UpdateSummary {
    sequence: 2,
    version: "2.1.0",
    state: UpdateState::Postponed,
    reason: Some("postponed: the bolt is locked"),
    why: Some(keyway_group::Postponement::BoltLocked),
    cves: 2,
    highest: Some(Severity::High),
};

fn status(update: Option<UpdateSummary<'static>>) -> keyway_group::Status<'static> {
    keyway_group::Status {
        bolt: Bolt::Locked,
        door: Door::Closed,
        battery_mv: 5800,
        battery_mwh: 9000,
        tamper: false,
        lockout_s: 0,
        model: "deadbolt-2",
        version: "1.4.0",
        slot: Some(0),
        image: Some([0x33; 32]),
        trial: false,
        presence_s: 30,
        owners: 1,
        update,
        settings: Settings {
            auto_install_cve: false,
            install_needs_unlocked: true,
        },
        device_key: Some([0x44; 32]),
    }
}

/// (request key, answer) pairs.
fn responses() -> Vec<((Op, u16, u8), Response<'static>)> {
    use Op::{Read as R, Write as W};
    use group::{IMAGE, KEYWAY, OS};
    vec![
        ((W, OS, 0), Response::Echo(os::EchoRsp { r: "hello" })),
        ((W, OS, 5), Response::Reset),
        (
            (R, OS, 6),
            Response::Params(os::ParamsRsp {
                buf_size: 2056,
                buf_count: 4,
            }),
        ),
        (
            (R, OS, 7),
            Response::Info(os::InfoRsp {
                output: "Keyway keyway-lock 1.4.0",
            }),
        ),
        (
            (R, IMAGE, 0),
            Response::ImageState(img::StateRsp {
                images: Seq::Items(&SLOTS),
            }),
        ),
        (
            (W, IMAGE, 0),
            Response::ImageState(img::StateRsp {
                images: Seq::Items(&[]),
            }),
        ),
        (
            (W, IMAGE, 1),
            Response::Upload(img::UploadRsp {
                off: 1024,
                matched: None,
            }),
        ),
        (
            (W, IMAGE, 1),
            Response::Upload(img::UploadRsp {
                off: 70_000,
                matched: Some(true),
            }),
        ),
        ((W, IMAGE, 5), Response::Erase),
        ((R, KEYWAY, 0), Response::Status(status(Some(SUMMARY)))),
        ((W, KEYWAY, 1), Response::Status(status(None))),
        (
            (W, KEYWAY, 2),
            Response::Status(keyway_group::Status {
                slot: None,
                image: None,
                device_key: None,
                bolt: Bolt::Unlocked,
                door: Door::Open,
                ..status(Some(UpdateSummary {
                    reason: None,
                    why: None,
                    highest: None,
                    state: UpdateState::AwaitingConsent,
                    ..SUMMARY
                }))
            }),
        ),
        (
            (R, KEYWAY, 3),
            Response::Presence(keyway_group::Presence {
                open: true,
                remaining_s: 59,
            }),
        ),
        (
            (R, KEYWAY, 4),
            Response::Notes(keyway_group::Notes {
                sequence: 2,
                version: "2.1.0",
                notes: "Fixes the keypad timing leak.\n",
                cves: Seq::Items(&CVES),
                min_battery_mwh: Some(500),
                state: UpdateState::AwaitingConsent,
                reason: None,
            }),
        ),
        (
            (W, KEYWAY, 5),
            Response::Consent(keyway_group::ConsentRsp {
                update: Some(UpdateSummary {
                    state: UpdateState::Installing,
                    reason: None,
                    why: None,
                    ..SUMMARY
                }),
            }),
        ),
        (
            (W, KEYWAY, 5),
            Response::Consent(keyway_group::ConsentRsp { update: None }),
        ),
        (
            (W, KEYWAY, 5),
            Response::Consent(keyway_group::ConsentRsp {
                update: Some(UpdateSummary {
                    reason: Some("postponed: the battery is low"),
                    why: Some(keyway_group::Postponement::BatteryLow {
                        have_mwh: 6_240,
                        need_mwh: 9_000,
                    }),
                    ..SUMMARY
                }),
            }),
        ),
        (
            (R, KEYWAY, 6),
            Response::Log(keyway_group::LogRsp {
                off: 1024,
                len: 5000,
                data: &[0x5A; 1024],
            }),
        ),
        (
            (R, KEYWAY, 7),
            Response::Challenge(keyway_group::Challenge {
                nonce: [8; 16],
                expires_s: 60,
            }),
        ),
        (
            (W, KEYWAY, 8),
            Response::Pair(keyway_group::PairRsp {
                owners: 2,
                key_id: [9; 8],
            }),
        ),
        (
            (W, KEYWAY, 9),
            Response::FactoryReset(keyway_group::FactoryResetRsp { owners: 0 }),
        ),
        (
            (W, KEYWAY, 10),
            Response::Settings(keyway_group::SettingsRsp {
                settings: Settings {
                    auto_install_cve: true,
                    install_needs_unlocked: false,
                },
            }),
        ),
        (
            (R, KEYWAY, keyway_group::cmd::PAKE_START),
            Response::PakeParams(keyway_group::PakeParams { msg: &[0x01; 21] }),
        ),
        (
            (W, KEYWAY, keyway_group::cmd::PAKE_START),
            Response::PakeStart(keyway_group::PakeStartRsp { msg: &[0x04; 97] }),
        ),
        (
            (W, KEYWAY, keyway_group::cmd::PAKE_FINISH),
            Response::PakeFinish(keyway_group::PakeFinishRsp {
                msg: &[0x48; 48],
                key_id: [0xAB; 8],
                owners: 2,
            }),
        ),
        (
            (W, KEYWAY, keyway_group::cmd::SESSION_START),
            Response::SessionStart(keyway_group::SessionStartRsp { msg: &[0x02; 157] }),
        ),
        (
            (W, KEYWAY, keyway_group::cmd::SESSION_FINISH),
            Response::SessionFinish(keyway_group::SessionFinishRsp { msg: &[0x29; 29] }),
        ),
        (
            (W, KEYWAY, keyway_group::cmd::SEALED),
            Response::Sealed(keyway_group::Sealed { msg: &[0x99; 1800] }),
        ),
        (
            (R, KEYWAY, keyway_group::cmd::OWNERS),
            Response::Owners(keyway_group::OwnersRsp {
                owners: Seq::Items(&OWNERS),
            }),
        ),
        (
            (R, KEYWAY, keyway_group::cmd::OWNERS),
            Response::Owners(keyway_group::OwnersRsp {
                owners: Seq::Items(&[]),
            }),
        ),
        (
            (W, KEYWAY, keyway_group::cmd::UNPAIR),
            Response::Unpair(keyway_group::UnpairRsp {
                key_id: [0x22; 8],
                owners: 2,
            }),
        ),
    ]
}

fn refusals() -> Vec<Refusal> {
    vec![
        Refusal::NotAuthorized,
        Refusal::NoPresenceWindow,
        Refusal::StaleNonce,
        Refusal::LongPressNeeded,
        Refusal::NotesNotOffered,
        Refusal::NothingPending,
        Refusal::DeltaWrongBase {
            base_image_sha256: [0xBA; 32],
            running_image_sha256: Some([0xCE; 32]),
        },
        Refusal::DeltaWrongBase {
            base_image_sha256: [0xBA; 32],
            running_image_sha256: None,
        },
        Refusal::BatteryLow {
            have_mwh: 120,
            need_mwh: 500,
        },
        Refusal::BoltLocked,
        Refusal::OwnersFull,
        Refusal::AuthMisplaced,
        Refusal::NoExport,
        Refusal::RateLimited { retry_s: 30 },
        Refusal::SessionRequired,
        Refusal::BadSetupCode,
        Refusal::UnknownOwner,
        Refusal::PairingBusy,
        Refusal::PairingLockedOut,
        Refusal::UnknownSession,
        Refusal::RecordRefused,
        Refusal::SessionsFull,
        Refusal::NotProvisioned,
        Refusal::NoPairing,
        Refusal::UploadBusy,
        Refusal::Other { code: 999 },
    ]
}

/// Checks RFC 8949 §4.2.1 deterministic map key order (encoded keys
/// bytewise ascending) in every map of an encoded item.
fn assert_deterministic(bytes: &[u8]) {
    fn walk(r: &mut Reader<'_>, whole: &[u8]) {
        match r.peek_major() {
            Some(4) => {
                let n = r.array().unwrap();
                for _ in 0..n {
                    walk(r, whole);
                }
            }
            Some(5) => {
                let n = r.map().unwrap();
                let mut last: Option<&[u8]> = None;
                for _ in 0..n {
                    let s = r.position();
                    r.skip().unwrap();
                    let key = &whole[s..r.position()];
                    if let Some(l) = last {
                        assert!(l < key, "map keys out of order: {l:02x?} then {key:02x?}");
                    }
                    last = Some(key);
                    walk(r, whole);
                }
            }
            _ => r.skip().unwrap(),
        }
    }
    let mut r = Reader::new(bytes);
    walk(&mut r, bytes);
    r.finish().unwrap();
}

#[test]
fn every_request_round_trips_through_a_frame() {
    let mut n = 0;
    for version in [Version::V1, Version::V2] {
        for (seq, req) in requests().iter().enumerate() {
            let mut buf = [0u8; MAX_FRAME];
            let len = req.frame(&mut buf, version, seq as u8).unwrap();
            let (h, body) = split_request(&buf[..len], MAX_BODY).unwrap();
            assert_eq!((h.op, h.group, h.id), req.key());
            assert_eq!(h.seq, seq as u8);
            assert_eq!(h.smp_version(), version);
            assert_deterministic(body);
            let back = Request::decode(h.op, h.group, h.id, body).unwrap();
            assert_eq!(&back, req);
            n += 1;
        }
    }
    println!("{n} request round trips");
}

#[test]
fn every_response_round_trips_through_a_frame() {
    let mut n = 0;
    for ((op, group, id), rsp) in responses() {
        let req = Header::request(Version::V2, op, group, id, 77);
        let mut buf = [0u8; MAX_FRAME];
        let len = answer_frame(&mut buf, &req, |w| rsp.encode(w)).unwrap();
        let (h, body) = split_response(&buf[..len], MAX_BODY).unwrap();
        assert_eq!(h.op, op.response());
        assert_eq!((h.group, h.id, h.seq), (group, id, 77));
        assert_deterministic(body);
        match Response::decode(op, group, id, body).unwrap() {
            Answer::Ok(back) => assert_eq!(back, rsp),
            Answer::Err(e) => panic!("{rsp:?} decoded as an error {e:?}"),
        }
        n += 1;
    }
    println!("{n} response round trips");
}

#[test]
fn every_refusal_round_trips_in_both_error_forms() {
    let mut n = 0;
    for refusal in refusals() {
        for e in [
            // SMPv1: top-level rc with the reason.
            ErrorRsp {
                rc: Some(MgmtErr::AccessDenied as u64),
                group: None,
                rsn: Some("refused: the presence window is closed"),
                refusal: Some(refusal),
            },
            // SMPv2: the group error.
            ErrorRsp {
                rc: None,
                group: Some((group::IMAGE, err::img_rc::INVALID_IMAGE_HEADER as u64)),
                rsn: None,
                refusal: Some(refusal),
            },
        ] {
            let mut buf = [0u8; 256];
            let mut w = Writer::new(&mut buf);
            e.encode(&mut w).unwrap();
            let body = w.written().to_vec();
            assert_deterministic(&body);
            assert_eq!(ErrorRsp::decode(&body).unwrap(), Some(e));
            // Any command's answer decodes to the error first.
            match Response::decode(Op::Write, group::IMAGE, img::cmd::UPLOAD, &body).unwrap() {
                Answer::Err(got) => assert_eq!(got.refusal, Some(refusal)),
                other => panic!("{other:?}"),
            }
            n += 1;
        }
    }
    println!("{n} refusal round trips");
}

#[test]
fn refusal_codes_are_stable() {
    // FORMAT.md, "Refusals": the numbers are the wire format.
    let codes: Vec<u64> = refusals().iter().map(Refusal::code).collect();
    assert_eq!(
        codes,
        [
            1, 2, 3, 4, 5, 6, 7, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
            24, 999
        ]
    );
}

#[test]
fn rc_zero_is_success_and_extra_fields_are_skipped() {
    // Zephyr's SMPv1 answers often carry "rc": 0 next to the fields.
    let mut buf = [0u8; 64];
    let mut w = Writer::new(&mut buf);
    w.map(3).unwrap();
    w.text("rc").unwrap();
    w.u64(0).unwrap();
    w.text("off").unwrap();
    w.u64(512).unwrap();
    w.text("x-vendor").unwrap();
    w.bytes(&[1, 2]).unwrap();
    let body = w.written().to_vec();
    assert_eq!(ErrorRsp::decode(&body).unwrap(), None);
    assert_eq!(
        Response::decode(Op::Write, group::IMAGE, img::cmd::UPLOAD, &body).unwrap(),
        Answer::Ok(Response::Upload(img::UploadRsp {
            off: 512,
            matched: None
        }))
    );
}

#[test]
fn a_duplicated_field_is_refused() {
    // {"off": 0, "off": 4, "data": h''}: which offset would the lock use?
    let body = [
        0xa3, 0x63, b'o', b'f', b'f', 0x00, 0x63, b'o', b'f', b'f', 0x04, 0x64, b'd', b'a', b't',
        b'a', 0x40,
    ];
    assert_eq!(
        img::Upload::decode(&body),
        Err(Error::Duplicate { field: "off" })
    );
}

/// A consent answer's summary as the map `entries` builds it.
fn summary_body(entries: &[(&str, Result<&str, u64>)]) -> Vec<u8> {
    let mut buf = [0u8; 256];
    let mut w = Writer::new(&mut buf);
    w.map(4 + entries.len()).unwrap();
    w.entry_u64("cves", 0).unwrap();
    w.entry_text("state", "postponed").unwrap();
    w.entry_text("version", "2.0.0").unwrap();
    w.entry_u64("sequence", 2).unwrap();
    for (k, v) in entries {
        w.text(k).unwrap();
        match v {
            Ok(t) => w.text(t).unwrap(),
            Err(n) => w.u64(*n).unwrap(),
        }
    }
    w.written().to_vec()
}

#[test]
fn a_postponement_without_its_figures_or_of_an_unknown_kind_is_refused() {
    let why = |e: &[(&str, Result<&str, u64>)]| {
        keyway_group::ConsentRsp::decode(&summary_body(e)).map(|r| r.update.and_then(|u| u.why))
    };
    assert_eq!(
        why(&[("why", Ok("bolt-locked"))]),
        Ok(Some(keyway_group::Postponement::BoltLocked))
    );
    assert_eq!(
        why(&[
            ("why", Ok("battery-low")),
            ("have_mwh", Err(5)),
            ("need_mwh", Err(9))
        ]),
        Ok(Some(keyway_group::Postponement::BatteryLow {
            have_mwh: 5,
            need_mwh: 9
        }))
    );
    assert_eq!(
        why(&[("why", Ok("battery-low")), ("have_mwh", Err(5))]),
        Err(Error::Missing { field: "need_mwh" })
    );
    for bad in [
        &[("why", Ok("sunspots"))][..],
        &[("have_mwh", Err(5))][..],
        &[("why", Ok("bolt-locked")), ("need_mwh", Err(9))][..],
    ] {
        assert!(
            matches!(why(bad), Err(Error::Invalid { field: "why", .. })),
            "{bad:?}: {:?}",
            why(bad)
        );
    }
    assert!(why(&[("why", Err(9))]).is_err(), "a number is not a kind");
}

#[test]
fn wrong_sizes_name_the_field() {
    let mut buf = [0u8; 64];
    let mut w = Writer::new(&mut buf);
    w.map(2).unwrap();
    w.text("nonce").unwrap();
    w.bytes(&[0; 15]).unwrap();
    w.text("expires_s").unwrap();
    w.u64(60).unwrap();
    let body = w.written().to_vec();
    assert_eq!(
        keyway_group::Challenge::decode(&body),
        Err(Error::Invalid {
            field: "nonce",
            expected: "16 bytes"
        })
    );
}

#[test]
fn unknown_commands_are_not_supported() {
    for (op, g, id) in [
        (Op::Read, group::KEYWAY, keyway_group::cmd::SEALED),
        (Op::Read, group::KEYWAY, keyway_group::cmd::UNPAIR),
        (Op::Read, group::KEYWAY, keyway_group::cmd::PAKE_FINISH),
        (Op::Write, group::KEYWAY, keyway_group::cmd::OWNERS),
        (Op::Write, group::KEYWAY, 18),
        (Op::Read, group::KEYWAY, keyway_group::cmd::LOCK),
        (Op::Write, 2, 0),
    ] {
        assert_eq!(
            Request::decode(op, g, id, &[]),
            Err(RequestError::NotSupported { op, group: g, id })
        );
    }
}

#[test]
fn strip_auth_gives_the_signed_body() {
    let unsigned = keyway_group::SettingsReq {
        auto_install_cve: Some(true),
        install_needs_unlocked: Some(false),
        auth: None,
    };
    let signed = keyway_group::SettingsReq {
        auth: Some(AUTH),
        ..unsigned
    };
    let mut a = [0u8; 256];
    let na = unsigned.encode_into(&mut a).unwrap();
    let mut b = [0u8; 256];
    let nb = signed.encode_into(&mut b).unwrap();
    let mut out = [0u8; 256];
    let (auth, n) = auth::strip(&b[..nb], &mut out).unwrap();
    assert_eq!(auth, Some(AUTH));
    assert_eq!(
        &out[..n],
        &a[..na],
        "the body without auth is what was signed"
    );
    // Without auth: copied as it is.
    let (auth, n) = auth::strip(&a[..na], &mut out).unwrap();
    assert_eq!((auth, &out[..n]), (None, &a[..na]));
    // The message: context, group, id, nonce, body.
    let mut m = [0u8; 256];
    let len = auth::message_into(
        &mut m,
        group::KEYWAY,
        keyway_group::cmd::SETTINGS,
        &[2; 16],
        &a[..na],
    )
    .unwrap();
    let mut want = b"keyway-smp-auth-v1".to_vec();
    want.extend_from_slice(&[0, 64, 10]);
    want.extend_from_slice(&[2; 16]);
    want.extend_from_slice(&a[..na]);
    assert_eq!(&m[..len], &want[..]);
}

#[test]
fn frame_checks_name_what_failed() {
    use keyway_smp::FrameError as F;
    let mut buf = [0u8; 64];
    let len = Request::Status(keyway_group::Signed::default())
        .frame(&mut buf, Version::V2, 1)
        .unwrap();
    let f = &buf[..len];
    assert_eq!(
        split_request(&f[..3], MAX_BODY).unwrap_err().1,
        F::Short { got: 3 }
    );
    let mut bad = f.to_vec();
    bad[0] |= 0x20;
    assert_eq!(
        split_request(&bad, MAX_BODY).unwrap_err().1,
        F::BadOp { byte: bad[0] }
    );
    let mut v3 = f.to_vec();
    v3[0] = (2 << 3) | Op::Read as u8;
    assert_eq!(
        split_request(&v3, MAX_BODY).unwrap_err().1,
        F::TooNew { version: 2 }
    );
    let mut rsp = f.to_vec();
    rsp[0] = (1 << 3) | Op::ReadRsp as u8;
    assert_eq!(
        split_request(&rsp, MAX_BODY).unwrap_err().1,
        F::WrongDirection { op: Op::ReadRsp }
    );
    let mut long = f.to_vec();
    long.push(0);
    assert_eq!(
        split_request(&long, MAX_BODY).unwrap_err().1,
        F::LengthMismatch {
            declared: 1,
            got: 2
        }
    );
    let mut huge = vec![0u8; 8 + 3000];
    huge[..8].copy_from_slice(
        &Header {
            len: 3000,
            ..Header::decode(f).unwrap()
        }
        .encode(),
    );
    assert_eq!(
        split_request(&huge, MAX_BODY).unwrap_err().1,
        F::TooLong {
            len: 3000,
            max: MAX_BODY
        }
    );
    assert_eq!(F::TooLong { len: 1, max: 1 }.rc(), MgmtErr::MsgSize);
}

#[test]
fn encoding_into_a_small_buffer_fails_cleanly() {
    for req in requests() {
        let mut full = [0u8; MAX_FRAME];
        let len = req.frame(&mut full, Version::V2, 0).unwrap();
        for cut in [0, 7, 8, len / 2, len - 1] {
            let mut small = vec![0u8; cut];
            assert_eq!(req.frame(&mut small, Version::V2, 0), Err(Error::Full));
        }
    }
}

/// `owners` and `unpair` (FORMAT.md, "owners", "unpair"): the exact bytes
/// of each, keys in deterministic order, and the decoder's bounds: a key
/// id of another length, a name over 64 bytes, and more than
/// `MAX_OWNERS` entries are refused by name.
#[test]
fn owners_and_unpair_bytes_and_bounds() {
    let mut buf = [0u8; 256];
    let n = keyway_group::Unpair {
        key_id: [1, 2, 3, 4, 5, 6, 7, 8],
        auth: None,
    }
    .encode_into(&mut buf)
    .unwrap();
    // {"key_id": h'0102030405060708'}
    let mut want = vec![0xa1, 0x66];
    want.extend_from_slice(b"key_id");
    want.extend_from_slice(&[0x48, 1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(&buf[..n], &want[..]);

    let one = [keyway_group::OwnerEntry {
        key_id: [9; 8],
        name: "ann",
        paired: Some(1000),
    }];
    let n = keyway_group::OwnersRsp {
        owners: Seq::Items(&one),
    }
    .encode_into(&mut buf)
    .unwrap();
    // {"owners": [{"name": "ann", "key_id": h'09..', "paired": 1000}]}
    let mut want = vec![0xa1, 0x66];
    want.extend_from_slice(b"owners");
    want.extend_from_slice(&[0x81, 0xa3, 0x64]);
    want.extend_from_slice(b"name");
    want.extend_from_slice(&[0x63]);
    want.extend_from_slice(b"ann");
    want.push(0x66);
    want.extend_from_slice(b"key_id");
    want.push(0x48);
    want.extend_from_slice(&[9; 8]);
    want.push(0x66);
    want.extend_from_slice(b"paired");
    want.extend_from_slice(&[0x19, 0x03, 0xe8]);
    assert_eq!(&buf[..n], &want[..]);
    assert_deterministic(&buf[..n]);

    // A 7-byte key id.
    let mut w = Writer::new(&mut buf);
    w.map(1).unwrap();
    w.text("key_id").unwrap();
    w.bytes(&[0; 7]).unwrap();
    let n = w.len();
    assert_eq!(
        keyway_group::Unpair::decode(&buf[..n]),
        Err(Error::Invalid {
            field: "key_id",
            expected: "8 bytes"
        })
    );

    // A 65-byte name.
    let long = "x".repeat(65);
    let mut big = vec![0u8; 512];
    let mut w = Writer::new(&mut big);
    w.map(1).unwrap();
    w.text("owners").unwrap();
    w.array(1).unwrap();
    w.map(2).unwrap();
    w.text("name").unwrap();
    w.text(&long).unwrap();
    w.text("key_id").unwrap();
    w.bytes(&[0; 8]).unwrap();
    let n = w.len();
    assert_eq!(
        keyway_group::OwnersRsp::decode(&big[..n]),
        Err(Error::Invalid {
            field: "owners.name",
            expected: "at most 64 bytes"
        })
    );

    // MAX_OWNERS + 1 entries.
    let many = vec![
        keyway_group::OwnerEntry {
            key_id: [0; 8],
            name: "",
            paired: None,
        };
        keyway_group::MAX_OWNERS + 1
    ];
    let mut huge = vec![0u8; 4096];
    let mut w = Writer::new(&mut huge);
    w.map(1).unwrap();
    w.text("owners").unwrap();
    Seq::Items(&many).write(&mut w).unwrap();
    let n = w.len();
    assert_eq!(
        keyway_group::OwnersRsp::decode(&huge[..n]),
        Err(Error::Invalid {
            field: "owners",
            expected: "an array within the item limit"
        })
    );
    // Exactly MAX_OWNERS decode, and iterate in order.
    let mut w = Writer::new(&mut huge);
    w.map(1).unwrap();
    w.text("owners").unwrap();
    Seq::Items(&many[..keyway_group::MAX_OWNERS])
        .write(&mut w)
        .unwrap();
    let n = w.len();
    let back = keyway_group::OwnersRsp::decode(&huge[..n]).unwrap();
    assert_eq!(back.owners.iter().count(), keyway_group::MAX_OWNERS);
}

#[test]
fn channel_messages_refuse_missing_and_mistyped_fields() {
    use keyway_smp::cbor::Error;
    // A map without the channel message, or with it as text, never decodes.
    let mut buf = [0u8; 64];
    let mut w = Writer::new(&mut buf);
    w.map(1).unwrap();
    w.text("pake1").unwrap();
    w.text("not bytes").unwrap();
    let body = w.written().to_vec();
    assert_eq!(
        Request::decode(
            Op::Write,
            group::KEYWAY,
            keyway_group::cmd::PAKE_START,
            &body
        ),
        Err(RequestError::Body(Error::Invalid {
            field: "pake1",
            expected: "a byte string"
        }))
    );
    assert_eq!(
        Request::decode(Op::Write, group::KEYWAY, keyway_group::cmd::SEALED, &[0xa0]),
        Err(RequestError::Body(Error::Missing { field: "rec" }))
    );
    let mut w = Writer::new(&mut buf);
    w.map(1).unwrap();
    w.text("key_id").unwrap();
    w.bytes(&[1; 7]).unwrap();
    let body = w.written().to_vec();
    assert_eq!(
        Request::decode(Op::Write, group::KEYWAY, keyway_group::cmd::UNPAIR, &body),
        Err(RequestError::Body(Error::Invalid {
            field: "key_id",
            expected: "8 bytes"
        }))
    );
}

/// Copies the body map `body` without the entry `key` (and, for `auth`,
/// with the `auth` map without its entry `inner`).
fn without(body: &[u8], key: &str, inner: Option<&str>) -> Vec<u8> {
    let mut r = Reader::new(body);
    let n = r.map().unwrap();
    let mut entries = Vec::new();
    for _ in 0..n {
        let k = r.text().unwrap();
        let v = r.raw().unwrap();
        if k == key && inner.is_none() {
            continue;
        }
        let v = match inner {
            Some(i) if k == key => without(v, i, None),
            _ => v.to_vec(),
        };
        entries.push((k, v));
    }
    let mut buf = vec![0u8; body.len() + 8];
    let mut w = Writer::new(&mut buf);
    w.map(entries.len()).unwrap();
    for (k, v) in &entries {
        w.text(k).unwrap();
        w.raw(v).unwrap();
    }
    let n = w.len();
    buf.truncate(n);
    buf
}

#[test]
fn every_required_request_field_is_required() {
    use keyway_smp::cbor::Error;
    // (request, the key left out, inside `auth` or not, the field named).
    let upload = Request::Upload(img::Upload {
        off: 0,
        data: &[1, 2],
        len: Some(2),
        sha: None,
        image: None,
        upgrade: None,
        auth: Some(AUTH),
        kw: true,
    });
    let cases = [
        (upload, "off", None, "off"),
        (upload, "data", None, "data"),
        (upload, "auth", Some("key"), "auth.key"),
        (upload, "auth", Some("nonce"), "auth.nonce"),
        (upload, "auth", Some("sig"), "auth.sig"),
        (
            Request::Consent(keyway_group::Consent {
                accept: true,
                auth: None,
            }),
            "accept",
            None,
            "accept",
        ),
        (
            Request::Log(keyway_group::Log {
                off: 3,
                auth: Some(AUTH),
            }),
            "off",
            None,
            "off",
        ),
        (
            Request::Pair(keyway_group::Pair {
                key: [7; 32],
                name: Some("Bob"),
            }),
            "key",
            None,
            "key",
        ),
        (
            Request::Unpair(keyway_group::Unpair {
                key_id: [5; 8],
                auth: Some(AUTH),
            }),
            "key_id",
            None,
            "key_id",
        ),
    ];
    let mut buf = [0u8; 512];
    for (request, key, inner, field) in cases {
        let (op, group, id) = request.key();
        let n = {
            let mut w = Writer::new(&mut buf);
            request.encode(&mut w).unwrap();
            w.len()
        };
        assert_eq!(Request::decode(op, group, id, &buf[..n]), Ok(request));
        let body = without(&buf[..n], key, inner);
        assert_eq!(
            Request::decode(op, group, id, &body),
            Err(RequestError::Body(Error::Missing { field })),
            "{key} {inner:?}"
        );
    }
    println!("{} missing fields refused", cases.len());
}
