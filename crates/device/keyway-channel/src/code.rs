//! The lock's setup code: 8 decimal digits printed on its label.
//!
//! The rules are Matter's passcode rules (Core spec 5.1.7.1): a value in
//! `00000001..=99999998`, and none of the trivial codes `00000000`,
//! `11111111`, ..., `99999999`, `12345678`, `87654321`. That leaves
//! 99,999,988 codes, about 26.6 bits.
//!
//! The code is made at provisioning ([`SetupCode::generate`]), printed and
//! turned into the SPAKE2+ verifier the lock stores
//! ([`StoredVerifier::derive`](crate::StoredVerifier::derive)); the lock
//! itself never holds it.

use rand_core::CryptoRng;

/// A valid setup code (see the module doc for the rules).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SetupCode(u32);

/// Why a setup code was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodeError {
    /// Not 8 decimal digits (one `-` or space between the 4th and 5th digit
    /// is allowed, as labels print it).
    NotEightDigits,
    /// One of the trivial codes Matter forbids (or out of range).
    Trivial(u32),
}

impl core::fmt::Display for CodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotEightDigits => f.write_str("a setup code is 8 digits, like 1234-5670"),
            Self::Trivial(v) => write!(f, "{v:08} is not a valid setup code"),
        }
    }
}

const TRIVIAL: [u32; 12] = [
    0, 11_111_111, 22_222_222, 33_333_333, 44_444_444, 55_555_555, 66_666_666, 77_777_777,
    88_888_888, 99_999_999, 12_345_678, 87_654_321,
];

impl SetupCode {
    /// The code with the value `value`, if it is allowed.
    pub fn new(value: u32) -> Result<Self, CodeError> {
        if value == 0 || value > 99_999_998 || TRIVIAL.contains(&value) {
            return Err(CodeError::Trivial(value));
        }
        Ok(Self(value))
    }

    /// Parses `12345670` or `1234-5670` (or `1234 5670`).
    pub fn parse(text: &str) -> Result<Self, CodeError> {
        let bytes = text.as_bytes();
        let mut value: u32 = 0;
        let mut digits = 0;
        for (i, &b) in bytes.iter().enumerate() {
            match b {
                b'0'..=b'9' => {
                    digits += 1;
                    if digits > 8 {
                        return Err(CodeError::NotEightDigits);
                    }
                    value = value * 10 + u32::from(b - b'0');
                }
                b'-' | b' ' if digits == 4 && i == 4 => {}
                _ => return Err(CodeError::NotEightDigits),
            }
        }
        if digits != 8 {
            return Err(CodeError::NotEightDigits);
        }
        Self::new(value)
    }

    /// A uniformly random valid code (rejection sampling), for provisioning.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        loop {
            // 2^27 > 10^8: draw 27 bits and reject what is out of range.
            let v = rng.next_u32() & ((1 << 27) - 1);
            if let Ok(code) = Self::new(v) {
                return code;
            }
        }
    }

    /// The code's value.
    pub fn value(&self) -> u32 {
        self.0
    }

    /// The 8 ASCII digits, with leading zeros: the SPAKE2+ password `pw`.
    pub fn digits(&self) -> [u8; 8] {
        let mut out = [b'0'; 8];
        let mut v = self.0;
        for d in out.iter_mut().rev() {
            *d = b'0' + (v % 10) as u8;
            v /= 10;
        }
        out
    }
}

impl core::fmt::Display for SetupCode {
    /// `1234-5670`, as printed on the label.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let d = self.digits();
        for (i, c) in d.iter().enumerate() {
            if i == 4 {
                f.write_str("-")?;
            }
            write!(f, "{}", *c as char)?;
        }
        Ok(())
    }
}

impl core::fmt::Debug for SetupCode {
    /// Never prints the code.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SetupCode(..)")
    }
}
