//! Arbitrary bytes into every decoder: never a panic, and whatever decodes
//! re-encodes to a body that decodes to the same value. Mutations of valid
//! frames reach past the first byte's checks.

mod common;

use keyway_smp::auth;
use keyway_smp::cbor::Reader;
use keyway_smp::header::{split_request, split_response};
use keyway_smp::*;
use proptest::prelude::*;

/// Every (op, group, id) Keyway knows, plus a few it does not.
fn keys() -> Vec<(Op, u16, u8)> {
    let mut k = Vec::new();
    for op in [Op::Read, Op::Write] {
        for (g, ids) in [
            (group::OS, 0..10u8),
            (group::IMAGE, 0..7),
            (group::KEYWAY, 0..20),
        ] {
            for id in ids {
                k.push((op, g, id));
            }
        }
    }
    k.push((Op::Write, 9, 0));
    k
}

fn check_body(body: &[u8]) {
    for (op, g, id) in keys() {
        if let Ok(r) = Request::decode(op, g, id, body) {
            let mut buf = vec![0u8; body.len() * 2 + 4096];
            let mut w = cbor::Writer::new(&mut buf);
            r.encode(&mut w).expect("a decoded request re-encodes");
            let n = w.len();
            let again = Request::decode(op, g, id, &buf[..n]).expect("and decodes again");
            assert_eq!(again, r);
        }
        if let Ok(a) = Response::decode(op, g, id, body) {
            let mut buf = vec![0u8; body.len() * 2 + 4096];
            let mut w = cbor::Writer::new(&mut buf);
            match &a {
                Answer::Ok(r) => r.encode(&mut w).unwrap(),
                Answer::Err(e) => e.encode(&mut w).unwrap(),
            }
            let n = w.len();
            assert_eq!(Response::decode(op, g, id, &buf[..n]).unwrap(), a);
        }
    }
    let _ = ErrorRsp::decode(body);
    let mut out = vec![0u8; body.len() + 8];
    if let Ok((_, n)) = auth::strip(body, &mut out) {
        assert!(n <= body.len().max(1));
    }
    let _ = Reader::new(body).skip();
}

fn valid_bodies() -> Vec<Vec<u8>> {
    let a = common::AUTH;
    let reqs = [
        Request::Upload(img::Upload {
            off: 0,
            data: &[1, 2, 3],
            len: Some(3),
            sha: Some(&[7; 32]),
            image: Some(0),
            upgrade: None,
            auth: Some(a),
            kw: true,
        }),
        Request::Settings(keyway_group::SettingsReq {
            auto_install_cve: Some(true),
            install_needs_unlocked: Some(true),
            auth: Some(a),
        }),
        Request::Pair(keyway_group::Pair {
            key: [4; 32],
            name: Some("n"),
        }),
        Request::Unpair(keyway_group::Unpair {
            key_id: [6; 8],
            auth: Some(a),
        }),
        Request::ImageStateWrite(img::StateWrite {
            hash: Some(&[1; 32]),
            confirm: Some(true),
            kw: false,
            auth: Some(a),
        }),
    ];
    let slots = [img::ImageSlot {
        image: Some(0),
        slot: 1,
        version: "2.0.0",
        hash: &[5; 32],
        bootable: true,
        pending: false,
        confirmed: true,
        active: true,
        permanent: false,
    }];
    let cves = [keyway_group::Cve {
        id: "CVE-1",
        severity: keyway_group::Severity::Critical,
    }];
    let rsps = [
        Response::Owners(keyway_group::OwnersRsp {
            owners: seq::Seq::Items(&common::OWNERS),
        }),
        Response::ImageState(img::StateRsp {
            images: seq::Seq::Items(&slots),
        }),
        Response::Notes(keyway_group::Notes {
            sequence: 3,
            version: "3",
            notes: "n",
            cves: seq::Seq::Items(&cves),
            min_battery_mwh: Some(1),
            state: keyway_group::UpdateState::Postponed,
            reason: Some("r"),
        }),
    ];
    let mut out = Vec::new();
    for r in reqs {
        let mut b = vec![0u8; 512];
        let mut w = cbor::Writer::new(&mut b);
        r.encode(&mut w).unwrap();
        out.push(w.written().to_vec());
    }
    for r in rsps {
        let mut b = vec![0u8; 512];
        let mut w = cbor::Writer::new(&mut b);
        r.encode(&mut w).unwrap();
        out.push(w.written().to_vec());
    }
    let e = ErrorRsp {
        rc: Some(3),
        group: Some((1, 22)),
        rsn: Some("x"),
        refusal: Some(Refusal::BatteryLow {
            have_mwh: 1,
            need_mwh: 2,
        }),
    };
    let mut b = vec![0u8; 512];
    let mut w = cbor::Writer::new(&mut b);
    e.encode(&mut w).unwrap();
    out.push(w.written().to_vec());
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        check_body(&body);
    }

    #[test]
    fn mutated_valid_bodies_never_panic(
        which in 0usize..9,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
    ) {
        let mut body = valid_bodies()[which].clone();
        for (at, v) in edits {
            let i = at % body.len();
            body[i] = v;
        }
        let keep = body.len() - cut % (body.len() / 4 + 1);
        body.truncate(keep);
        check_body(&body);
    }

    #[test]
    fn arbitrary_frames_never_panic(frame in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = Header::decode(&frame);
        if let Ok((h, body)) = split_request(&frame, MAX_BODY) {
            prop_assert_eq!(body.len(), usize::from(h.len));
            let _ = Request::decode(h.op, h.group, h.id, body);
        }
        if let Ok((h, body)) = split_response(&frame, MAX_BODY) {
            prop_assert_eq!(body.len(), usize::from(h.len));
            let _ = Response::decode(h.op, h.group, h.id, body);
        }
    }
}

#[test]
fn deeply_nested_bodies_are_refused_not_recursed() {
    // {"x": [[[[…]]]]} 10 000 levels deep, as an unknown field.
    let mut body = vec![0xa1, 0x61, b'x'];
    body.extend(std::iter::repeat_n(0x81, 10_000));
    body.push(0x00);
    for (op, g, id) in keys() {
        assert!(Request::decode(op, g, id, &body).is_err());
    }
}
