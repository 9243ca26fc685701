//! CBOR on the host side: [`ciborium::Value`] plus the few helpers the
//! encoder and tests need ([`ValueExt`]).
//!
//! [`ValueExt::to_bytes`] writes deterministic CBOR (RFC 8949 §4.2.1), as
//! draft-ietf-suit-manifest-37 §8.1 requires of every map in a manifest and
//! envelope: ciborium writes definite lengths and the shortest integer and
//! length heads, and `to_bytes` sorts every map's members by their encoded
//! keys (bytewise) at every depth first. A byte string that holds CBOR
//! (`bstr .cbor`) is made by `to_bytes` too, so it is canonical inside as
//! well. [`ValueExt::to_bytes_as_is`] keeps insertion order, for tests that
//! craft non-canonical input.
//! Decoding exists so that tests and tools can take an envelope apart,
//! change one member and put it back together again.

pub use ciborium::Value;

/// Why [`ValueExt::from_bytes`] rejected its input.
pub type Error = ciborium::de::Error<std::io::Error>;

/// Helpers on [`Value`] that ciborium does not provide itself.
pub trait ValueExt: Sized {
    /// Encodes this item deterministically (RFC 8949 §4.2.1): map members
    /// sorted by their encoded keys, at every depth.
    fn to_bytes(&self) -> Vec<u8>;

    /// Encodes this item with map members in insertion order.
    fn to_bytes_as_is(&self) -> Vec<u8>;

    /// Decodes exactly one CBOR item (nesting limited by ciborium's
    /// recursion limit); trailing bytes are an error.
    fn from_bytes(bytes: &[u8]) -> Result<Self, Error>;

    /// The value of the first map member whose key equals `key`.
    fn get(&self, key: &Self) -> Option<&Self>;

    /// The value of the first map member with integer key `key`.
    fn get_int(&self, key: i64) -> Option<&Self>;

    /// The value of the first map member with text key `key`.
    fn get_text(&self, key: &str) -> Option<&Self>;

    /// Decodes the contents of this byte string as one CBOR item
    /// (`bstr .cbor T`); `None` if this is not a byte string.
    fn decode_bstr(&self) -> Option<Result<Self, Error>>;
}

impl ValueExt for Value {
    fn to_bytes(&self) -> Vec<u8> {
        canonical(self).to_bytes_as_is()
    }

    fn to_bytes_as_is(&self) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(self, &mut out).expect("encoding a Value into a Vec cannot fail");
        out
    }

    fn from_bytes(bytes: &[u8]) -> Result<Value, Error> {
        let mut rest = bytes;
        let value = ciborium::from_reader(&mut rest)?;
        match rest.len() {
            0 => Ok(value),
            n => Err(Error::Semantic(
                Some(bytes.len() - n),
                format!("{n} trailing byte(s) after the CBOR item"),
            )),
        }
    }

    fn get(&self, key: &Value) -> Option<&Value> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    fn get_int(&self, key: i64) -> Option<&Value> {
        self.get(&key.into())
    }

    fn get_text(&self, key: &str) -> Option<&Value> {
        self.get(&key.into())
    }

    fn decode_bstr(&self) -> Option<Result<Value, Error>> {
        self.as_bytes().map(|b| Value::from_bytes(b))
    }
}

/// `v` with every map's members sorted by their encoded keys (RFC 8949
/// §4.2.1 "core deterministic encoding": bytewise lexicographic order of the
/// deterministic encodings of the keys).
fn canonical(v: &Value) -> Value {
    match v {
        Value::Map(m) => {
            let mut members: Vec<(Vec<u8>, Value, Value)> = m
                .iter()
                .map(|(k, v)| {
                    let k = canonical(k);
                    (k.to_bytes_as_is(), k, canonical(v))
                })
                .collect();
            members.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Map(members.into_iter().map(|(_, k, v)| (k, v)).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        Value::Tag(t, inner) => Value::Tag(*t, Box::new(canonical(inner))),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_minimally_and_round_trips() {
        let v = Value::Tag(
            107,
            Box::new(Value::Map(vec![
                (Value::from(-19287), Value::from(vec![1u8, 2, 3])),
                (Value::from("#firmware"), Value::Array(vec![])),
                (Value::from(1), Value::from(u64::MAX)),
            ])),
        );
        let bytes = v.to_bytes_as_is();
        assert_eq!(bytes[..6], [0xd8, 107, 0xa3, 0x39, 0x4b, 0x56]);
        assert_eq!(Value::from_bytes(&bytes).unwrap(), v);
        assert_eq!(
            v.as_tag().unwrap().1.get_text("#firmware"),
            Some(&Value::Array(vec![]))
        );
        let wrapped = Value::Bytes(v.to_bytes_as_is());
        assert_eq!(wrapped.decode_bstr().unwrap().unwrap(), v);
    }

    #[test]
    fn to_bytes_sorts_every_map_by_encoded_key() {
        // RFC 8949 §4.2.1: 1 (0x01) < 21 (0x15) < 27 (0x18 1b) < -19287
        // (0x39 ..) < "#firmware" (0x69 ..), at every depth.
        let inner = Value::Map(vec![
            (Value::from(27), Value::from(1)),
            (Value::from(21), Value::from(2)),
        ]);
        let v = Value::Map(vec![
            (Value::from("#firmware"), Value::Array(vec![inner])),
            (Value::from(-19287), Value::from(0)),
            (Value::from(1), Value::from(0)),
        ]);
        assert_eq!(
            v.to_bytes(),
            [
                0xa3, 0x01, 0x00, 0x39, 0x4b, 0x56, 0x00, 0x69, b'#', b'f', b'i', b'r', b'm', b'w',
                b'a', b'r', b'e', 0x81, 0xa2, 0x15, 0x02, 0x18, 0x1b, 0x01
            ]
        );
    }

    #[test]
    fn rejects_trailing_truncated_and_deep_input() {
        assert!(matches!(
            Value::from_bytes(&[1, 2]),
            Err(Error::Semantic(Some(1), _))
        ));
        assert!(matches!(Value::from_bytes(&[0x82, 1]), Err(Error::Io(_))));
        assert!(matches!(
            Value::from_bytes(&[0x81; 10_000]),
            Err(Error::RecursionLimitExceeded)
        ));
    }
}
