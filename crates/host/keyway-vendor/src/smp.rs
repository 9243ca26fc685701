//! SMP (MCUmgr) framing for the host: the header, the frame checks, the
//! command ids and the error codes are `keyway-smp`'s (the device crate
//! the lock, the owner's client and the audit share); this module adds
//! `ciborium::Value` bodies for the simulated lock's server, which still
//! works on them, and for the audit's raw (deliberately malformed)
//! requests. Pure functions; every length is bounded.
//!
//! ```text
//! byte 0: res(3) | ver(2) | op(3)     byte 1: flags    bytes 2-3: data length (BE)
//! bytes 4-5: group id (BE)            byte 6: sequence byte 7: command id
//! ```

use ciborium::Value;

pub use keyway_smp::{
    HEADER_LEN, Header, MAX_BODY, MAX_FRAME, MgmtErr, Op, Refusal, Version, group,
};

/// Why a frame was refused before its command ran: keyway-smp's header
/// and length checks, or a body that is not one CBOR map.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The header, the op, the version or the lengths
    /// (`keyway_smp::FrameError`).
    #[error("{0}")]
    Frame(keyway_smp::FrameError),
    /// The body is not one CBOR map.
    #[error("body is not a CBOR map: {0}")]
    Body(String),
}

impl From<keyway_smp::FrameError> for FrameError {
    fn from(e: keyway_smp::FrameError) -> Self {
        FrameError::Frame(e)
    }
}

impl FrameError {
    /// The SMP result code a frame error is answered with.
    pub fn rc(&self) -> MgmtErr {
        match self {
            FrameError::Frame(e) => e.rc(),
            FrameError::Body(_) => MgmtErr::Inval,
        }
    }
}

/// A request: its header and its body, a CBOR map.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// The header.
    pub header: Header,
    /// The body's entries (an empty body is an empty map).
    pub body: Vec<(Value, Value)>,
}

/// Decodes one request frame: the header, checks of the op, version and
/// lengths, then the body. `bytes` must be exactly one frame.
pub fn decode_request(bytes: &[u8]) -> Result<Request, (Option<Header>, FrameError)> {
    let (header, body) =
        keyway_smp::header::split_request(bytes, MAX_BODY).map_err(|(h, e)| (h, e.into()))?;
    let body = decode_body(body).map_err(|e| (Some(header), e))?;
    Ok(Request { header, body })
}

/// Decodes a body (at most [`MAX_BODY`] bytes): one CBOR map and nothing
/// after it. An empty body is an empty map.
pub fn decode_body(body: &[u8]) -> Result<Vec<(Value, Value)>, FrameError> {
    if body.is_empty() {
        return Ok(Vec::new());
    }
    if body.len() > MAX_BODY {
        return Err(keyway_smp::FrameError::TooLong {
            len: body.len(),
            max: MAX_BODY,
        }
        .into());
    }
    decode_map(body)
}

/// One CBOR map (nesting bounded) and nothing after it.
fn decode_map(body: &[u8]) -> Result<Vec<(Value, Value)>, FrameError> {
    let mut reader = body;
    let value: Value = ciborium::de::from_reader_with_recursion_limit(&mut reader, 16)
        .map_err(|e| FrameError::Body(e.to_string()))?;
    if !reader.is_empty() {
        return Err(FrameError::Body(format!(
            "{} bytes after the map",
            reader.len()
        )));
    }
    match value {
        Value::Map(m) => Ok(m),
        other => Err(FrameError::Body(format!("a {} instead", kind(&other)))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Integer(_) => "integer",
        Value::Bytes(_) => "byte string",
        Value::Float(_) => "float",
        Value::Text(_) => "text string",
        Value::Bool(_) => "bool",
        Value::Null => "null",
        Value::Tag(..) => "tag",
        Value::Array(_) => "array",
        Value::Map(_) => "map",
        _ => "value",
    }
}

/// Encodes a response: the header (with its length) and the body map.
pub fn encode_response(request: &Header, body: Vec<(Value, Value)>) -> Vec<u8> {
    frame(request.response(), body)
}

/// A frame: `h` with the body's length, then the body map.
fn frame(mut h: Header, body: Vec<(Value, Value)>) -> Vec<u8> {
    let mut data = Vec::new();
    // Serializing a Value into a Vec cannot fail.
    let _ = ciborium::into_writer(&Value::Map(body), &mut data);
    h.len = u16::try_from(data.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(HEADER_LEN + data.len());
    out.extend_from_slice(&h.encode());
    out.extend_from_slice(&data);
    out
}

/// Encodes a request frame (the client side): SMP version 2, the body map.
pub fn encode_request(op: Op, group: u16, id: u8, seq: u8, body: Vec<(Value, Value)>) -> Vec<u8> {
    let h = Header {
        op,
        version: Version::V2 as u8,
        flags: 0,
        len: 0,
        group,
        seq,
        id,
    };
    frame(h, body)
}

/// A decoded response (the client side).
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    /// The header.
    pub header: Header,
    /// The body's entries.
    pub body: Vec<(Value, Value)>,
}

/// Decodes one response frame: the header must be a response op and its
/// length must match. The body may be up to 64 KiB (a lock may answer
/// with more than it accepts).
pub fn decode_response(bytes: &[u8]) -> Result<Response, FrameError> {
    let (header, body) = keyway_smp::header::split_response(bytes, usize::from(u16::MAX))?;
    if body.is_empty() {
        return Ok(Response {
            header,
            body: Vec::new(),
        });
    }
    Ok(Response {
        header,
        body: decode_map(body)?,
    })
}

/// A top-level SMP error: `{"rc": rc, "rsn": reason}` (both versions).
pub fn rc_body(rc: MgmtErr, reason: Option<&str>) -> Vec<(Value, Value)> {
    let mut m = vec![(text("rc"), Value::from(rc as u8))];
    if let Some(r) = reason {
        m.push((text("rsn"), text(r)));
    }
    m
}

/// A group error: SMPv2 `{"err": {"group": g, "rc": rc}}`; SMPv1 has no
/// group form, so the group's rc is mapped to a legacy one (`v1_rc`) with
/// the reason.
pub fn group_err_body(
    version: Version,
    group: u16,
    rc: u16,
    v1_rc: MgmtErr,
    reason: &str,
) -> Vec<(Value, Value)> {
    match version {
        Version::V2 => vec![(
            text("err"),
            Value::Map(vec![
                (text("group"), Value::from(group)),
                (text("rc"), Value::from(rc)),
            ]),
        )],
        Version::V1 => rc_body(v1_rc, Some(reason)),
    }
}

/// Keyway's typed refusal as body entries (`kw-rc` and its fields,
/// FORMAT.md, "Refusals"), to add to an error body.
pub fn refusal_entries(r: &Refusal) -> Vec<(Value, Value)> {
    let mut buf = [0u8; 128];
    let mut w = keyway_smp::cbor::Writer::new(&mut buf);
    // At most 5 entries of at most 42 bytes: they fit; an error leaves
    // the body without them.
    if w.map(r.entries())
        .and_then(|_| r.write_entries(&mut w))
        .is_err()
    {
        return Vec::new();
    }
    decode_map(w.written()).unwrap_or_default()
}

/// A text value.
pub fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

/// Looks up a text key in a body map.
pub fn get<'a>(body: &'a [(Value, Value)], key: &str) -> Option<&'a Value> {
    body.iter()
        .find(|(k, _)| matches!(k, Value::Text(t) if t == key))
        .map(|(_, v)| v)
}

/// A field's value, typed, or what is wrong with it.
pub fn get_u64(body: &[(Value, Value)], key: &str) -> Result<Option<u64>, String> {
    match get(body, key) {
        None => Ok(None),
        Some(Value::Integer(i)) => u64::try_from(*i)
            .map(Some)
            .map_err(|_| format!("\"{key}\" is negative or too large")),
        Some(v) => Err(format!(
            "\"{key}\" is a {}, not an unsigned integer",
            kind(v)
        )),
    }
}

/// A byte-string field.
pub fn get_bytes<'a>(body: &'a [(Value, Value)], key: &str) -> Result<Option<&'a [u8]>, String> {
    match get(body, key) {
        None => Ok(None),
        Some(Value::Bytes(b)) => Ok(Some(b)),
        Some(v) => Err(format!("\"{key}\" is a {}, not a byte string", kind(v))),
    }
}

/// A bool field.
pub fn get_bool(body: &[(Value, Value)], key: &str) -> Result<Option<bool>, String> {
    match get(body, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(format!("\"{key}\" is a {}, not a bool", kind(v))),
    }
}

/// A text field.
pub fn get_text<'a>(body: &'a [(Value, Value)], key: &str) -> Result<Option<&'a str>, String> {
    match get(body, key) {
        None => Ok(None),
        Some(Value::Text(t)) => Ok(Some(t)),
        Some(v) => Err(format!("\"{key}\" is a {}, not a text string", kind(v))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(h: Header, body: &[u8]) -> Vec<u8> {
        let mut f = h.encode().to_vec();
        f.extend_from_slice(body);
        f
    }

    fn hdr(len: usize) -> Header {
        Header {
            op: Op::Write,
            version: 1,
            flags: 0,
            len: len as u16,
            group: 1,
            seq: 42,
            id: 1,
        }
    }

    #[test]
    fn header_round_trips_and_byte_layout() {
        let h = Header {
            op: Op::Read,
            version: 1,
            flags: 0x5A,
            len: 0x0102,
            group: 0x0340,
            seq: 7,
            id: 9,
        };
        let b = h.encode();
        assert_eq!(b, [0x08, 0x5A, 0x01, 0x02, 0x03, 0x40, 7, 9]);
        assert_eq!(Header::decode(&b).unwrap(), h);
    }

    #[test]
    fn refusals_name_what_failed() {
        use keyway_smp::FrameError as F;
        assert_eq!(
            decode_request(&[0, 0, 0]).unwrap_err().1,
            FrameError::Frame(F::Short { got: 3 })
        );
        let mut f = frame(hdr(0), &[]);
        f[0] = 0x04;
        assert_eq!(
            decode_request(&f).unwrap_err().1,
            FrameError::Frame(F::BadOp { byte: 4 })
        );
        f[0] = 0x10 | 2;
        assert_eq!(
            decode_request(&f).unwrap_err().1,
            FrameError::Frame(F::TooNew { version: 2 })
        );
        let f = frame(hdr(5), &[0xA0]);
        assert_eq!(
            decode_request(&f).unwrap_err().1,
            FrameError::Frame(F::LengthMismatch {
                declared: 5,
                got: 1
            })
        );
        let f = frame(hdr(MAX_BODY + 1), &[]);
        assert!(matches!(
            decode_request(&f).unwrap_err().1,
            FrameError::Frame(F::TooLong { .. })
        ));
        let f = frame(hdr(1), &[0x01]);
        let e = decode_request(&f).unwrap_err().1;
        assert_eq!(e, FrameError::Body("a integer instead".into()));
        let f = frame(hdr(2), &[0xA0, 0xA0]);
        assert!(
            decode_request(&f)
                .unwrap_err()
                .1
                .to_string()
                .contains("1 bytes after")
        );
    }

    #[test]
    fn a_huge_declared_string_is_an_error_not_an_allocation() {
        // {"d": bstr of 2^63 bytes} with 3 bytes present.
        let body = [
            0xA1, 0x61, b'd', 0x5B, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3,
        ];
        let f = frame(hdr(body.len()), &body);
        assert!(matches!(
            decode_request(&f).unwrap_err().1,
            FrameError::Body(_)
        ));
    }

    #[test]
    fn error_forms() {
        let v2 = group_err_body(Version::V2, 1, 27, MgmtErr::Inval, "x");
        let v1 = group_err_body(Version::V1, 1, 27, MgmtErr::Inval, "older");
        assert_eq!(
            get(&v2, "err").and_then(|e| e.as_map()).map(|m| m.len()),
            Some(2)
        );
        assert_eq!(get_u64(&v1, "rc").unwrap(), Some(3));
        assert_eq!(get_text(&v1, "rsn").unwrap(), Some("older"));
        let r = encode_response(&hdr(0), rc_body(MgmtErr::AccessDenied, None));
        let h = Header::decode(&r).unwrap();
        assert_eq!((h.op, h.seq, h.group, h.id), (Op::WriteRsp, 42, 1, 1));
        let body = decode_body(&r[HEADER_LEN..]).unwrap();
        assert_eq!(get_u64(&body, "rc").unwrap(), Some(11));
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_decode_or_fail_without_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = decode_request(&bytes);
        }

        #[test]
        fn any_body_after_a_valid_header(body in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let f = frame(hdr(body.len()), &body);
            let _ = decode_request(&f);
        }

        #[test]
        fn header_round_trip(op in 0u8..4, ver in 0u8..2, flags: u8, len: u16, group: u16, seq: u8, id: u8) {
            let h = Header { op: Op::from_bits(op).unwrap(), version: ver, flags, len, group, seq, id };
            proptest::prop_assert_eq!(Header::decode(&h.encode()).unwrap(), h);
        }
    }
}
