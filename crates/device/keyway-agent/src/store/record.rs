//! The store's record codec: what one record means ([`Change`]) and its
//! bytes (the format table in the [store doc](super)): header, payload,
//! CRC-32. Decoding refuses every non-canonical payload.

use super::*;

pub(super) mod kind {
    pub const OWNER: u8 = 1;
    pub const OWNER_REMOVED: u8 = 2;
    pub const CONSENT: u8 = 3;
    pub const CONSENT_CLEARED: u8 = 4;
    pub const SETTINGS: u8 = 5;
    pub const VERIFIER: u8 = 6;
    pub const VERIFIER_CLEARED: u8 = 7;
    pub const WRONG_CODES: u8 = 8;
    pub const RESET: u8 = 9;
    pub const END: u8 = 10;
}

/// One record's meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Change {
    Owner(Owner),
    OwnerRemoved(KeyId),
    Consent(Consent),
    ConsentCleared,
    Settings(Settings),
    Verifier(Verifier),
    VerifierCleared,
    WrongCodes(u32),
    Reset,
    End(u8),
}

/// A little-endian writer over a fixed buffer.
struct Put<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Put<'_> {
    fn bytes(&mut self, b: &[u8]) {
        self.buf[self.at..self.at + b.len()].copy_from_slice(b);
        self.at += b.len();
    }
    fn time(&mut self, t: &Time) {
        self.bytes(&t.rtc.to_le_bytes());
        self.bytes(&t.boot.to_le_bytes());
    }
}

/// A reader over a payload; every getter fails past the end.
struct Take<'a> {
    buf: &'a [u8],
}

impl<'a> Take<'a> {
    fn bytes<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.buf.split_first_chunk::<N>()?;
        self.buf = rest;
        Some(*head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.bytes::<1>().map(|[b]| b)
    }
    fn u32(&mut self) -> Option<u32> {
        self.bytes().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.bytes().map(u64::from_le_bytes)
    }
    fn time(&mut self) -> Option<Time> {
        Some(Time {
            rtc: self.u64()?,
            boot: self.u32()?,
        })
    }
}

/// Bytes `len..` of `padded` are zero.
fn zero_padded(padded: &[u8], len: usize) -> bool {
    padded.get(len..).is_some_and(|r| r.iter().all(|&b| b == 0))
}

impl Change {
    fn kind(&self) -> u8 {
        match self {
            Change::Owner(_) => kind::OWNER,
            Change::OwnerRemoved(_) => kind::OWNER_REMOVED,
            Change::Consent(_) => kind::CONSENT,
            Change::ConsentCleared => kind::CONSENT_CLEARED,
            Change::Settings(_) => kind::SETTINGS,
            Change::Verifier(_) => kind::VERIFIER,
            Change::VerifierCleared => kind::VERIFIER_CLEARED,
            Change::WrongCodes(_) => kind::WRONG_CODES,
            Change::Reset => kind::RESET,
            Change::End(_) => kind::END,
        }
    }

    /// Writes the payload; returns its length.
    fn encode_payload(&self, out: &mut [u8]) -> usize {
        let mut w = Put { buf: out, at: 0 };
        match self {
            Change::Owner(o) => {
                w.bytes(&o.key);
                w.bytes(&[o.name.len]);
                w.bytes(&o.name.bytes);
                w.time(&o.added);
                let (tag, by) = match o.paired_by {
                    PairedBy::SetupCode => (0, [0; 8]),
                    PairedBy::Owner(id) => (1, id),
                    PairedBy::Provisioning => (2, [0; 8]),
                };
                w.bytes(&[tag]);
                w.bytes(&by);
            }
            Change::OwnerRemoved(id) => w.bytes(id),
            Change::Consent(c) => {
                w.bytes(&c.digest);
                w.bytes(&c.sequence.to_le_bytes());
                let (tag, by) = match c.granted_by {
                    GrantedBy::Owner(id) => (0, id),
                    GrantedBy::Presence => (1, [0; 8]),
                    GrantedBy::AutoInstall => (2, [0; 8]),
                };
                w.bytes(&[tag]);
                w.bytes(&by);
                w.time(&c.time);
            }
            Change::Settings(s) => {
                w.bytes(&[u8::from(s.auto_install_cve) | (u8::from(s.install_needs_unlocked) << 1)])
            }
            Change::Verifier(v) => {
                w.bytes(&v.w0);
                w.bytes(&v.l);
                w.bytes(&[v.salt_len]);
                w.bytes(&v.salt);
                w.bytes(&v.iterations.to_le_bytes());
            }
            Change::WrongCodes(n) => w.bytes(&n.to_le_bytes()),
            Change::End(count) => w.bytes(&[*count]),
            Change::ConsentCleared | Change::VerifierCleared | Change::Reset => {}
        }
        w.at
    }

    /// The change a payload of this kind holds; `None` for anything that
    /// is not exactly a valid encoding.
    fn decode_payload(kind: u8, payload: &[u8]) -> Option<Self> {
        let mut r = Take { buf: payload };
        let change = match kind {
            kind::OWNER => {
                let key = r.bytes::<32>()?;
                let len = r.u8()?;
                let bytes = r.bytes::<MAX_NAME>()?;
                let name_bytes = bytes.get(..usize::from(len))?;
                if core::str::from_utf8(name_bytes).is_err() || !zero_padded(&bytes, len.into()) {
                    return None;
                }
                let added = r.time()?;
                let tag = r.u8()?;
                let by = r.bytes::<8>()?;
                let paired_by = match (tag, by) {
                    (0, [0, 0, 0, 0, 0, 0, 0, 0]) => PairedBy::SetupCode,
                    (1, id) => PairedBy::Owner(id),
                    (2, [0, 0, 0, 0, 0, 0, 0, 0]) => PairedBy::Provisioning,
                    _ => return None,
                };
                Change::Owner(Owner {
                    key,
                    id: key_id(&key),
                    name: Name { len, bytes },
                    added,
                    paired_by,
                })
            }
            kind::OWNER_REMOVED => Change::OwnerRemoved(r.bytes()?),
            kind::CONSENT => {
                let digest = r.bytes()?;
                let sequence = r.u64()?;
                let tag = r.u8()?;
                let by = r.bytes::<8>()?;
                let granted_by = match (tag, by) {
                    (0, id) => GrantedBy::Owner(id),
                    (1, [0, 0, 0, 0, 0, 0, 0, 0]) => GrantedBy::Presence,
                    (2, [0, 0, 0, 0, 0, 0, 0, 0]) => GrantedBy::AutoInstall,
                    _ => return None,
                };
                Change::Consent(Consent {
                    digest,
                    sequence,
                    granted_by,
                    time: r.time()?,
                })
            }
            kind::CONSENT_CLEARED => Change::ConsentCleared,
            kind::SETTINGS => {
                let flags = r.u8()?;
                if flags & !0b11 != 0 {
                    return None;
                }
                Change::Settings(Settings {
                    auto_install_cve: flags & 1 != 0,
                    install_needs_unlocked: flags & 2 != 0,
                })
            }
            kind::VERIFIER => {
                let w0 = r.bytes()?;
                let l = r.bytes()?;
                let salt_len = r.u8()?;
                let salt = r.bytes::<MAX_SALT>()?;
                if usize::from(salt_len) > MAX_SALT || !zero_padded(&salt, salt_len.into()) {
                    return None;
                }
                Change::Verifier(Verifier {
                    w0,
                    l,
                    salt_len,
                    salt,
                    iterations: r.u32()?,
                })
            }
            kind::VERIFIER_CLEARED => Change::VerifierCleared,
            kind::WRONG_CODES => Change::WrongCodes(r.u32()?),
            kind::RESET => Change::Reset,
            kind::END => Change::End(r.u8()?),
            _ => return None,
        };
        r.buf.is_empty().then_some(change)
    }
}

/// A record: its sequence number and change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Record {
    pub(super) seq: u32,
    pub(super) change: Change,
}

/// Encodes a record; returns its length (without padding).
pub(super) fn encode_record(seq: u32, change: &Change, out: &mut [u8; MAX_RECORD_LEN]) -> usize {
    out[0..4].copy_from_slice(&MAGIC);
    out[4..8].copy_from_slice(&seq.to_le_bytes());
    out[8] = change.kind();
    let n = change.encode_payload(&mut out[HEADER_LEN..HEADER_LEN + VERIFIER_LEN]);
    out[9] = n as u8;
    let crc = CRC.checksum(&out[..HEADER_LEN + n]);
    out[HEADER_LEN + n..HEADER_LEN + n + CRC_LEN].copy_from_slice(&crc.to_le_bytes());
    HEADER_LEN + n + CRC_LEN
}

/// The record in a slot's bytes, if they hold a valid one.
pub(super) fn decode_record(bytes: &[u8]) -> Option<Record> {
    if bytes.get(0..4)? != MAGIC {
        return None;
    }
    let seq = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
    let kind = *bytes.get(8)?;
    let n = usize::from(*bytes.get(9)?);
    let end = HEADER_LEN + n;
    let crc = u32::from_le_bytes(bytes.get(end..end + CRC_LEN)?.try_into().ok()?);
    if CRC.checksum(bytes.get(..end)?) != crc {
        return None;
    }
    let change = Change::decode_payload(kind, bytes.get(HEADER_LEN..end)?)?;
    Some(Record { seq, change })
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::vec::Vec;

    use super::*;

    fn owner(i: u8) -> Owner {
        let key = [i; 32];
        Owner {
            key,
            id: key_id(&key),
            name: Name::new("front door ünï").unwrap(),
            added: Time {
                rtc: 1_700_000_000 + u64::from(i),
                boot: 3,
            },
            paired_by: PairedBy::Owner([i ^ 0x55; 8]),
        }
    }

    fn all_changes() -> [Change; 10] {
        [
            Change::Owner(owner(7)),
            Change::OwnerRemoved([9; 8]),
            Change::Consent(Consent {
                digest: [0xAB; 32],
                sequence: 42,
                granted_by: GrantedBy::Owner([1; 8]),
                time: Time { rtc: 5, boot: 6 },
            }),
            Change::ConsentCleared,
            Change::Settings(Settings {
                auto_install_cve: true,
                install_needs_unlocked: false,
            }),
            Change::Verifier(Verifier::new([1; 32], [4; 32], &[9; 16], 1000).unwrap()),
            Change::VerifierCleared,
            Change::WrongCodes(12),
            Change::Reset,
            Change::End(5),
        ]
    }

    #[test]
    fn records_round_trip_and_any_flipped_bit_is_refused() {
        for change in all_changes() {
            let mut buf = [0u8; MAX_RECORD_LEN];
            let n = encode_record(77, &change, &mut buf);
            assert!(n <= MAX_RECORD_LEN);
            assert_eq!(
                decode_record(&buf[..n]),
                Some(Record { seq: 77, change }),
                "{change:?}"
            );
            for i in 0..n * 8 {
                let mut b = buf;
                b[i / 8] ^= 1 << (i % 8);
                assert_eq!(decode_record(&b[..n]), None, "{change:?}, bit {i}");
            }
            assert_eq!(decode_record(&buf[..n - 1]), None);
        }
    }

    #[test]
    fn non_canonical_payloads_are_refused() {
        // A name with bytes after its length, a settings byte with unknown
        // bits, a paired-by tag out of range, invalid UTF-8.
        let mut p = [0u8; OWNER_LEN];
        p[32] = 2;
        p[33..35].copy_from_slice(b"ok");
        assert!(Change::decode_payload(kind::OWNER, &p).is_some());
        let mut bad = p;
        bad[40] = 1;
        assert!(Change::decode_payload(kind::OWNER, &bad).is_none());
        let mut bad = p;
        bad[33] = 0xFF;
        assert!(Change::decode_payload(kind::OWNER, &bad).is_none());
        let mut bad = p;
        bad[32 + 1 + 32 + 12] = 3;
        assert!(Change::decode_payload(kind::OWNER, &bad).is_none());
        assert!(Change::decode_payload(kind::SETTINGS, &[4]).is_none());
        assert!(Change::decode_payload(kind::CONSENT_CLEARED, &[0]).is_none());
        assert!(Change::decode_payload(99, &[]).is_none());
    }

    #[test]
    fn payload_lengths_match_the_format() {
        let mut buf = [0u8; VERIFIER_LEN];
        let lens = all_changes().map(|c| c.encode_payload(&mut buf));
        assert_eq!(
            lens,
            [OWNER_LEN, 8, CONSENT_LEN, 0, 1, VERIFIER_LEN, 0, 4, 0, 1]
        );
    }

    #[test]
    fn owners_stay_packed_in_pairing_order() {
        let mut s = State::default();
        for i in 0..5 {
            s.apply(&Change::Owner(owner(i)));
        }
        s.apply(&Change::OwnerRemoved(owner(1).id));
        let keys: Vec<u8> = s.owners().map(|o| o.key[0]).collect();
        assert_eq!(keys, [0, 2, 3, 4]);
        // Re-pairing keeps the place.
        s.apply(&Change::Owner(owner(3)));
        assert_eq!(s.owner_count(), 4);
        assert!(s.owners[4].is_none());
    }
}
