//! CBOR on the host side: [`ciborium::Value`] plus the few helpers the
//! encoder and tests need ([`ValueExt`]).
//!
//! ciborium writes definite lengths, map members in insertion order and the
//! shortest integer and length heads, which is what FORMAT.md requires.
//! Decoding exists so that tests and tools can take an envelope apart,
//! change one member and put it back together again.

pub use ciborium::Value;

/// Why [`ValueExt::from_bytes`] rejected its input.
pub type Error = ciborium::de::Error<std::io::Error>;

/// Helpers on [`Value`] that ciborium does not provide itself.
pub trait ValueExt: Sized {
    /// Encodes this item.
    fn to_bytes(&self) -> Vec<u8>;

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
        let bytes = v.to_bytes();
        assert_eq!(bytes[..6], [0xd8, 107, 0xa3, 0x39, 0x4b, 0x56]);
        assert_eq!(Value::from_bytes(&bytes).unwrap(), v);
        assert_eq!(
            v.as_tag().unwrap().1.get_text("#firmware"),
            Some(&Value::Array(vec![]))
        );
        let wrapped = Value::Bytes(v.to_bytes());
        assert_eq!(wrapped.decode_bstr().unwrap().unwrap(), v);
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
