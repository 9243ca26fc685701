//! Delta install: a Keyway patch (KWDP v1) applied as it streams in, the
//! active slot read as the base, the output written into the inactive slot
//! by the ordinary [`Installer`].
//!
//! [`DeltaInstaller`] is sans-IO and heap-free like [`Installer`], and its
//! RAM is fixed: the patcher ([`keyway_delta::Patcher`], 7,992 bytes), the
//! installer it drives, a SHA-256 state for the patch bytes and the
//! expected patch header (`size_of::<DeltaInstaller<F>>()` is asserted by
//! `tests/delta.rs` and recorded in BENCHMARKS.md).
//!
//! # What it guarantees
//!
//! * A delta for another base is refused **before anything is written**:
//!   [`DeltaInstaller::begin`] hashes the active slot's first `base_size`
//!   bytes and compares them with the manifest's base digest
//!   ([`DeltaError::WrongBase`]) before the installer records a download.
//! * The patch header must be exactly the one the signed manifest implies
//!   (magic, version 1, base and output sizes and digests); its bytes are
//!   compared as they arrive, before the body is decoded
//!   ([`DeltaError::Header`]). The patch bytes are also hashed against the
//!   manifest's payload digest.
//! * The output goes through [`Installer::push`], so it is hashed, and the
//!   slot becomes `Pending` only in [`DeltaInstaller::finish`], after the
//!   patch's digest and then the produced image's size and SHA-256 matched
//!   the manifest ([`keyway_suit::DeltaBinding::out`]).
//! * The base (the active slot) is only read, never erased or written. A
//!   power cut mid-patch therefore loses nothing that cannot be redone:
//!   the update restarts with [`DeltaInstaller::begin`] from the first
//!   patch byte (the decoder's state is not saved, so a delta is never
//!   resumed in the middle; [`Installer::resume`] must not be used for
//!   it). `tests/delta.rs` cuts the power at every flash operation.

use core::cell::RefCell;

use embedded_storage::nor_flash::NorFlash;
use keyway_delta::{BaseReader, HEADER_LEN, PatchError, PatchHeader, Patcher};
use keyway_suit::{DeltaBinding, PayloadVerifier};

use crate::install::{self, Arm, DEFAULT_BUF, Installer, Target};
use crate::journal::Journal;

/// The largest `F::READ_SIZE` the base reader handles (it reads through a
/// buffer of this many bytes).
pub const MAX_READ_SIZE: usize = 64;

/// A field of the patch header, named when it differs from the manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HeaderField {
    /// Bytes 0..4, `KWDP`.
    Magic,
    /// Byte 4, the format version.
    Version,
    /// Bytes 5..8, zero.
    Reserved,
    /// Bytes 8..12, the base size.
    BaseSize,
    /// Bytes 12..16, the output size.
    OutputSize,
    /// Bytes 16..48, the base's SHA-256.
    BaseDigest,
    /// Bytes 48..80, the output's SHA-256.
    OutputDigest,
}

impl HeaderField {
    /// The field holding header byte `offset` (`offset < HEADER_LEN`).
    pub fn at(offset: usize) -> HeaderField {
        match offset {
            0..4 => HeaderField::Magic,
            4 => HeaderField::Version,
            5..8 => HeaderField::Reserved,
            8..12 => HeaderField::BaseSize,
            12..16 => HeaderField::OutputSize,
            16..48 => HeaderField::BaseDigest,
            _ => HeaderField::OutputDigest,
        }
    }

    /// The field's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            HeaderField::Magic => "magic",
            HeaderField::Version => "format version",
            HeaderField::Reserved => "reserved bytes",
            HeaderField::BaseSize => "base size",
            HeaderField::OutputSize => "output size",
            HeaderField::BaseDigest => "base SHA-256",
            HeaderField::OutputDigest => "output SHA-256",
        }
    }
}

/// Why a delta install failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeltaError<E> {
    /// The installer (layout, journal, output writes, the produced image's
    /// digest) failed.
    Install(install::InstallError<E>),
    /// The installed image is not the patch's base: nothing was written.
    WrongBase {
        /// The base digest the manifest binds.
        expected: [u8; 32],
        /// SHA-256 of the active slot's first `base_size` bytes.
        found: [u8; 32],
        /// The base size the manifest binds.
        base_size: u64,
    },
    /// The base is larger than the active slot's image area.
    BaseTooLarge {
        /// The base size the manifest binds.
        base_size: u64,
        /// The active slot's image capacity.
        capacity: u32,
    },
    /// The patch header differs from what the manifest binds.
    Header {
        /// The first differing field.
        field: HeaderField,
    },
    /// The patch decoder refused the patch.
    Patch(PatchError),
    /// The patch bytes do not match the manifest's payload digest or size.
    PatchPayload(keyway_suit::Error),
    /// Reading the base from the active slot failed.
    BaseRead {
        /// The flash offset.
        offset: u32,
        /// The flash's error.
        error: E,
    },
    /// The flash's read size is above [`MAX_READ_SIZE`].
    ReadSize {
        /// `F::READ_SIZE`.
        read_size: usize,
    },
    /// A previous call failed: start again with [`DeltaInstaller::begin`].
    Aborted,
}

wrap_error!(DeltaError::Install(install::InstallError<E>));

impl<E: core::fmt::Debug> core::fmt::Display for DeltaError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let short = |d: &[u8; 32], f: &mut core::fmt::Formatter<'_>| {
            d.iter().take(8).try_for_each(|b| write!(f, "{b:02x}"))
        };
        match self {
            DeltaError::Install(e) => write!(f, "{e}"),
            DeltaError::WrongBase {
                expected,
                found,
                base_size,
            } => {
                f.write_str("delta for another image: it applies to ")?;
                short(expected, f)?;
                write!(f, "… ({base_size} bytes); the installed image is ")?;
                short(found, f)?;
                f.write_str("…")
            }
            DeltaError::BaseTooLarge {
                base_size,
                capacity,
            } => write!(
                f,
                "delta base of {base_size} bytes exceeds the slot's {capacity}"
            ),
            DeltaError::Header { field } => write!(
                f,
                "patch header {} differs from the signed manifest",
                field.name()
            ),
            DeltaError::Patch(e) => write!(f, "{e}"),
            DeltaError::PatchPayload(e) => write!(f, "patch: {e}"),
            DeltaError::BaseRead { offset, error } => {
                write!(f, "reading the base at {offset:#x}: {error:?}")
            }
            DeltaError::ReadSize { read_size } => write!(
                f,
                "flash read size {read_size} above the supported {MAX_READ_SIZE}"
            ),
            DeltaError::Aborted => f.write_str("delta install aborted earlier"),
        }
    }
}

/// The patch header a manifest's delta binding implies, or the field that
/// cannot be represented (a size over 4 GiB).
pub fn expected_header(binding: &DeltaBinding<'_>) -> Result<PatchHeader, HeaderField> {
    let out_size = binding.out.size.unwrap_or(u64::MAX);
    Ok(PatchHeader {
        base_size: u32::try_from(binding.base_size).map_err(|_| HeaderField::BaseSize)?,
        out_size: u32::try_from(out_size).map_err(|_| HeaderField::OutputSize)?,
        base_digest: *binding.base_digest,
        out_digest: *binding.out.digest,
    })
}

/// Checks the patch bytes `bytes`, which start at patch offset `at`,
/// against the header bytes `expected`; bytes past the header are not
/// looked at. The first differing field is returned.
pub fn check_header(
    expected: &[u8; HEADER_LEN],
    at: usize,
    bytes: &[u8],
) -> Result<(), HeaderField> {
    for (k, b) in bytes.iter().enumerate() {
        let off = at + k;
        match expected.get(off) {
            Some(e) if e != b => return Err(HeaderField::at(off)),
            Some(_) => {}
            None => break,
        }
    }
    Ok(())
}

/// Reads `buf.len()` bytes at `addr` from a flash whose reads must be
/// aligned to `F::READ_SIZE` (at most [`MAX_READ_SIZE`]).
fn read_any<F: NorFlash>(
    flash: &mut F,
    addr: u32,
    buf: &mut [u8],
) -> Result<(), DeltaError<F::Error>> {
    let rs = F::READ_SIZE;
    if rs <= 1 {
        return flash.read(addr, buf).map_err(|error| DeltaError::BaseRead {
            offset: addr,
            error,
        });
    }
    if rs > MAX_READ_SIZE || !MAX_READ_SIZE.is_multiple_of(rs) {
        return Err(DeltaError::ReadSize { read_size: rs });
    }
    let mut tmp = [0u8; MAX_READ_SIZE];
    let mut done = 0usize;
    while done < buf.len() {
        let at = addr + done as u32;
        let aligned = at - at % rs as u32;
        let skip = (at - aligned) as usize;
        let n = (MAX_READ_SIZE - skip).min(buf.len() - done);
        let len = (skip + n).div_ceil(rs) * rs;
        let chunk = tmp.get_mut(..len).unwrap_or(&mut []);
        flash
            .read(aligned, chunk)
            .map_err(|error| DeltaError::BaseRead {
                offset: aligned,
                error,
            })?;
        if let (Some(dst), Some(src)) = (buf.get_mut(done..done + n), chunk.get(skip..skip + n)) {
            dst.copy_from_slice(src);
        }
        done += n;
    }
    Ok(())
}

/// The active slot as the patcher's base, sharing the flash with the
/// installer (the patcher calls one at a time).
struct SlotBase<'c, 'f, F: NorFlash> {
    flash: &'c RefCell<&'f mut F>,
    start: u32,
}

impl<F: NorFlash> BaseReader for SlotBase<'_, '_, F> {
    type Error = DeltaError<F::Error>;
    fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), Self::Error> {
        read_any(&mut **self.flash.borrow_mut(), self.start + offset, buf)
    }
}

/// A delta download in progress. See the [module documentation](self).
pub struct DeltaInstaller<F, const BUF: usize = DEFAULT_BUF> {
    installer: Installer<F, BUF>,
    patcher: Patcher,
    patch: PayloadVerifier,
    header: [u8; HEADER_LEN],
    /// Patch bytes accepted so far (header included).
    seen: u64,
    /// The active slot's image start (the base).
    base_start: u32,
    failed: bool,
}

impl<F, const BUF: usize> core::fmt::Debug for DeltaInstaller<F, BUF> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DeltaInstaller")
            .field("installer", &self.installer)
            .field("patch_bytes", &self.seen)
            .field("produced", &self.patcher.produced())
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl<F: NorFlash, const BUF: usize> DeltaInstaller<F, BUF> {
    /// Starts a delta install of the verified manifest `target` names:
    /// `target.expectation` is its payload (the patch), `binding` its delta
    /// binding. With `head`, the signed envelope head is stored in the
    /// target slot's manifest area ([`Installer::begin_with_manifest`]), so
    /// that the bootloader's `VerifiedSlot` can re-verify the produced
    /// image.
    ///
    /// Refuses, before the flash is written: a base that is not the active
    /// slot's image ([`DeltaError::WrongBase`]), sizes the header cannot
    /// hold, and everything [`Installer::begin`] refuses. Always starts from
    /// the first patch byte (a delta is restarted, never resumed).
    pub fn begin(
        flash: &mut F,
        journal: &mut Journal<F>,
        target: Target<'_>,
        binding: &DeltaBinding<'_>,
        head: Option<&[u8]>,
    ) -> Result<Self, DeltaError<F::Error>> {
        let header = expected_header(binding).map_err(|field| DeltaError::Header { field })?;
        let active = journal.state().active_slot;
        let place = target
            .layout
            .place::<F>(active)
            .ok_or(install::InstallError::Layout(
                install::LayoutError::NoImageRoom { slot: active },
            ))?;
        let capacity = place.image.end - place.image.start;
        if binding.base_size > u64::from(capacity) {
            return Err(DeltaError::BaseTooLarge {
                base_size: binding.base_size,
                capacity,
            });
        }
        let found = hash_slot(flash, place.image.start, header.base_size)?;
        if &found != binding.base_digest {
            return Err(DeltaError::WrongBase {
                expected: *binding.base_digest,
                found,
                base_size: binding.base_size,
            });
        }
        let patcher = Patcher::new(&header, header.base_size, &found).map_err(DeltaError::Patch)?;
        // The installer checks the image the patch produces.
        let out = Target {
            expectation: &binding.out,
            ..target
        };
        let installer = match head {
            Some(h) => Installer::begin_with_manifest(flash, journal, out, h)?,
            None => Installer::begin(flash, journal, out)?,
        };
        let patch = PayloadVerifier::new(target.expectation);
        Ok(DeltaInstaller {
            installer,
            patcher,
            patch,
            header: header.to_bytes(),
            seen: 0,
            base_start: place.image.start,
            failed: false,
        })
    }

    /// The slot being written (the inactive one).
    pub fn slot(&self) -> u8 {
        self.installer.slot()
    }

    /// Patch bytes accepted so far: the offset of the next byte to push.
    pub fn offset(&self) -> u64 {
        self.seen
    }

    /// Output bytes produced so far.
    pub fn produced(&self) -> u32 {
        self.patcher.produced()
    }

    /// Accepts the next `chunk` of the patch, of any size: hashes it,
    /// checks the header bytes against the manifest, decodes the body and
    /// writes the output into the inactive slot. After any error the
    /// installer refuses further calls ([`DeltaError::Aborted`]).
    pub fn push(
        &mut self,
        flash: &mut F,
        journal: &mut Journal<F>,
        chunk: &[u8],
    ) -> Result<(), DeltaError<F::Error>> {
        if self.failed {
            return Err(DeltaError::Aborted);
        }
        let r = self.push_inner(flash, journal, chunk);
        self.failed = r.is_err();
        r
    }

    fn push_inner(
        &mut self,
        flash: &mut F,
        journal: &mut Journal<F>,
        chunk: &[u8],
    ) -> Result<(), DeltaError<F::Error>> {
        self.patch.update(chunk).map_err(DeltaError::PatchPayload)?;
        let at = usize::try_from(self.seen).unwrap_or(usize::MAX);
        check_header(&self.header, at, chunk).map_err(|field| DeltaError::Header { field })?;
        let skip = HEADER_LEN.saturating_sub(at).min(chunk.len());
        self.seen += chunk.len() as u64;
        let body = chunk.get(skip..).unwrap_or(&[]);
        if body.is_empty() {
            return Ok(());
        }
        let (installer, patcher, start) = (&mut self.installer, &mut self.patcher, self.base_start);
        let cell = RefCell::new(flash);
        let mut base = SlotBase {
            flash: &cell,
            start,
        };
        let mut out = |c: &[u8]| installer.push(&mut **cell.borrow_mut(), journal, c);
        patcher.feed(body, &mut base, &mut out).map_err(from_patch)
    }

    /// Ends the patch: decodes the rest, checks the patch's digest and
    /// size, then [`Installer::finish`] checks the produced image and only
    /// then clears the download record and, as `arm` says, arms the slot
    /// ([`Arm::Now`]: `Pending`) or leaves it unarmed until the caller arms
    /// it ([`Arm::Later`], on the owner's consent). Returns that slot.
    pub fn finish(
        self,
        flash: &mut F,
        journal: &mut Journal<F>,
        arm: Arm,
    ) -> Result<u8, DeltaError<F::Error>> {
        let installer = self.drain(flash, journal)?;
        Ok(installer.finish(flash, journal, arm)?)
    }

    /// Decodes the rest of the patch into the installer and checks the
    /// patch's digest and size; returns the installer to finish.
    fn drain(
        mut self,
        flash: &mut F,
        journal: &mut Journal<F>,
    ) -> Result<Installer<F, BUF>, DeltaError<F::Error>> {
        if self.failed {
            return Err(DeltaError::Aborted);
        }
        if self.seen < HEADER_LEN as u64 {
            return Err(DeltaError::Patch(PatchError::HeaderTooShort {
                len: self.seen as usize,
            }));
        }
        {
            let (installer, patcher, start) =
                (&mut self.installer, &mut self.patcher, self.base_start);
            let cell = RefCell::new(&mut *flash);
            let mut base = SlotBase {
                flash: &cell,
                start,
            };
            let mut out = |c: &[u8]| installer.push(&mut **cell.borrow_mut(), &mut *journal, c);
            patcher.finish(&mut base, &mut out).map_err(from_patch)?;
        }
        self.patch.finish().map_err(DeltaError::PatchPayload)?;
        Ok(self.installer)
    }
}

fn from_patch<E>(e: keyway_delta::Error<DeltaError<E>, install::InstallError<E>>) -> DeltaError<E> {
    match e {
        keyway_delta::Error::Patch(p) => DeltaError::Patch(p),
        keyway_delta::Error::Base(b) => b,
        keyway_delta::Error::Output(o) => DeltaError::Install(o),
    }
}

/// SHA-256 of the `len` bytes at `start` (the active slot's image).
fn hash_slot<F: NorFlash>(
    flash: &mut F,
    start: u32,
    len: u32,
) -> Result<[u8; 32], DeltaError<F::Error>> {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    let mut buf = [0u8; MAX_READ_SIZE];
    let mut at = 0u32;
    while at < len {
        let n = (len - at).min(MAX_READ_SIZE as u32) as usize;
        let chunk = buf.get_mut(..n).unwrap_or(&mut []);
        read_any(flash, start + at, chunk)?;
        h.update(&*chunk);
        at += n as u32;
    }
    Ok(h.finalize().into())
}
