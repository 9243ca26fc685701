//! Frames byte for byte as smpclient 7.3.0 (the pinned version of
//! scripts/smp-interop.sh) encodes them: keyway-smp must send exactly these
//! bytes and decode them. Regenerate with the venv of that script:
//!
//! ```text
//! target/smp-venv/bin/python -c 'import smp.os_management as o; \
//!   print(bytes(o.EchoWriteRequest(d="hello", sequence=42)).hex())'
//! ```

mod common;

use keyway_smp::header::{split_request, split_response};
use keyway_smp::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn req_frame(r: &Request<'_>, v: Version, seq: u8) -> Vec<u8> {
    let mut buf = [0u8; MAX_FRAME];
    let n = r.frame(&mut buf, v, seq).unwrap();
    buf[..n].to_vec()
}

const SHA: [u8; 32] = [7; 32];
const HASH: [u8; 32] = [0x22; 32];

#[test]
fn requests_match_smpclient_byte_for_byte() {
    let cases: Vec<(&str, Request<'_>, Version, u8)> = vec![
        (
            "0a00000900002a00a161646568656c6c6f",
            Request::Echo(os::Echo { d: "hello" }),
            Version::V2,
            42,
        ),
        (
            "0200000900002a00a161646568656c6c6f",
            Request::Echo(os::Echo { d: "hello" }),
            Version::V1,
            42,
        ),
        (
            "0a00000100000105a0",
            Request::Reset(keyway_group::Signed { auth: None }),
            Version::V2,
            1,
        ),
        ("0800000100000206a0", Request::Params, Version::V2, 2),
        (
            "0800000a00000307a166666f726d61746161",
            Request::Info(os::Info { format: Some("a") }),
            Version::V2,
            3,
        ),
        ("0800000100010400a0", Request::ImageState, Version::V2, 4),
        (
            "0a00003100010500a264686173685820222222222222222222222222222222222222222222222222222222222222222267636f6e6669726df4",
            Request::ImageStateWrite(img::StateWrite {
                hash: Some(&HASH),
                confirm: Some(false),
                kw: false,
                auth: None,
            }),
            Version::V2,
            5,
        ),
        (
            "0a00004500010601a5636c656e1a00011170636f666600637368615820070707070707070707070707070707070707070707070707070707070707070764646174614301020365696d61676500",
            Request::Upload(img::Upload {
                off: 0,
                data: &[1, 2, 3],
                len: Some(70_000),
                sha: Some(&SHA),
                image: Some(0),
                upgrade: None,
                auth: None,
                kw: false,
            }),
            Version::V2,
            6,
        ),
        (
            "0a00002d00010701a2636f66661904006464617461581e555555555555555555555555555555555555555555555555555555555555",
            Request::Upload(common::chunk(1024, &[0x55; 30])),
            Version::V2,
            7,
        ),
        (
            "0a00000700010805a164736c6f7401",
            Request::Erase(img::Erase {
                slot: Some(1),
                auth: None,
                kw: false,
            }),
            Version::V2,
            8,
        ),
    ];
    for (want, req, v, seq) in &cases {
        let want = hex(want);
        assert_eq!(req_frame(req, *v, *seq), want, "{req:?}");
        let (h, body) = split_request(&want, MAX_BODY).unwrap();
        assert_eq!(&Request::decode(h.op, h.group, h.id, body).unwrap(), req);
    }
    println!("{} request frames match smpclient", cases.len());
}

#[test]
fn responses_match_smpclient_byte_for_byte() {
    type Case<'a> = (&'a str, (Op, u16, u8, u8), Response<'a>);
    let cases: Vec<Case<'_>> = vec![
        (
            "0b00000900002a00a161726568656c6c6f",
            (Op::Write, group::OS, os::cmd::ECHO, 42),
            Response::Echo(os::EchoRsp { r: "hello" }),
        ),
        (
            "0b00000800010701a1636f6666190400",
            (Op::Write, group::IMAGE, img::cmd::UPLOAD, 7),
            Response::Upload(img::UploadRsp {
                off: 1024,
                matched: None,
            }),
        ),
        (
            "0900001800000206a2686275665f73697a65190808696275665f636f756e7404",
            (Op::Read, group::OS, os::cmd::PARAMS, 2),
            Response::Params(os::ParamsRsp {
                buf_size: 2056,
                buf_count: 4,
            }),
        ),
    ];
    for (want, (op, g, id, seq), rsp) in &cases {
        let want = hex(want);
        let req = Header::request(Version::V2, *op, *g, *id, *seq);
        let mut buf = [0u8; 256];
        let n = answer_frame(&mut buf, &req, |w| rsp.encode(w)).unwrap();
        assert_eq!(&buf[..n], &want[..], "{rsp:?}");
        let (h, body) = split_response(&want, MAX_BODY).unwrap();
        assert_eq!(
            Response::decode(*op, h.group, h.id, body).unwrap(),
            Answer::Ok(*rsp)
        );
    }
}
