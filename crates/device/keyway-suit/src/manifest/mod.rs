//! The SUIT manifest: decoding, and a static run of its command sequences.
//!
//! The verifier does not install anything. It runs the command sequences
//! over an abstract device: conditions about the device's identity are
//! checked now, conditions that depend on the moment of installation
//! (battery, consent, time) are collected into [`PolicyConditions`], and the
//! digest and size that the payload must match are recorded per component.

use crate::auth::decode_digest;
use crate::cbor::{Key, Reader, first_time};
use crate::error::{Error, Limit, Part};
use crate::labels::*;

mod policy;
mod sequence;

pub use policy::{PolicyConditions, PolicyInputs, UpdateAuthorization};
use sequence::{State, run_sequence};

/// Most components in one manifest.
pub const MAX_COMPONENTS: usize = 4;
/// Deepest nesting of try-each and run-sequence.
pub const MAX_NESTING: usize = 3;
/// Most integers in a version.
pub const MAX_VERSION_PARTS: usize = 4;

/// What the verifier knows about the device it runs for. Fields left `None`
/// make the matching condition pass (a vendor tool inspecting an envelope
/// has no device).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceIdentity {
    /// The device's vendor UUID (UUIDv5 of the vendor's domain).
    pub vendor_id: Option<[u8; 16]>,
    /// The device's class UUID (UUIDv5 of the class name under the vendor).
    pub class_id: Option<[u8; 16]>,
    /// The device's own UUID, for `condition-device-identifier`.
    pub device_id: Option<[u8; 16]>,
    /// The slot an update would be written to, for `condition-component-slot`.
    pub slot: Option<u64>,
}

impl DeviceIdentity {
    /// A device of this vendor and class.
    pub fn new(vendor_id: [u8; 16], class_id: [u8; 16]) -> Self {
        DeviceIdentity {
            vendor_id: Some(vendor_id),
            class_id: Some(class_id),
            device_id: None,
            slot: None,
        }
    }

    /// No device: identity conditions are recorded, not checked.
    pub const ANY: DeviceIdentity = DeviceIdentity {
        vendor_id: None,
        class_id: None,
        device_id: None,
        slot: None,
    };
}

/// A version from `suit-set-version`: up to four integers, a negative one
/// marking a pre-release (update-management draft).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Version {
    parts: [i64; MAX_VERSION_PARTS],
    len: u8,
}

impl Version {
    /// The integers.
    pub fn parts(&self) -> &[i64] {
        self.parts.get(..usize::from(self.len)).unwrap_or(&[])
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, Error> {
        let n = r.array()?;
        if n > MAX_VERSION_PARTS {
            return Err(Error::TooMany {
                what: Limit::VersionParts,
                max: MAX_VERSION_PARTS,
            });
        }
        let mut v = Version::default();
        for p in v.parts.iter_mut().take(n) {
            *p = r.i64()?;
        }
        v.len = n as u8;
        Ok(v)
    }
}

impl core::fmt::Display for Version {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, p) in self.parts().iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// The parameters one component has accumulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Params<'a> {
    /// `vendor-id` (borrowed from the manifest).
    pub vendor_id: Option<&'a [u8; 16]>,
    /// `class-id` (borrowed from the manifest).
    pub class_id: Option<&'a [u8; 16]>,
    /// `device-id` (borrowed from the manifest).
    pub device_id: Option<&'a [u8; 16]>,
    /// `image-digest` (SHA-256, borrowed from the manifest).
    pub image_digest: Option<&'a [u8; 32]>,
    /// `image-size`.
    pub image_size: Option<u64>,
    /// `uri`.
    pub uri: Option<&'a str>,
    /// `use-before`, seconds since 1970.
    pub use_before: Option<u64>,
    /// `minimum-battery`, mWh.
    pub minimum_battery: Option<u64>,
    /// `update-priority` (smaller is more urgent).
    pub update_priority: Option<i64>,
    /// `component-slot`.
    pub component_slot: Option<u64>,
    /// `source-component`.
    pub source_component: Option<u64>,
    /// Keyway's delta-base component index ([`PARAM_KEYWAY_DELTA_BASE`]).
    #[cfg(feature = "delta")]
    pub delta_base: Option<u8>,
    /// Whether `content` was set (its value is not kept: no command Keyway
    /// implements reads it).
    pub content_set: bool,
    /// Whether `version` was set (likewise).
    pub version_set: bool,
}

/// One component and what the manifest does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Component<'a> {
    /// The encoded `SUIT_Component_Identifier` (a CBOR array of bstr).
    pub id: &'a [u8],
    /// Parameters after every sequence ran.
    pub params: Params<'a>,
    /// The URI a `directive-fetch` fetched this component from.
    pub fetched_from: Option<&'a str>,
    /// The digest and size an `image-match` requires of this component.
    pub image: Option<ImageExpectation<'a>>,
    /// Whether a `directive-invoke` runs it.
    pub invoked: bool,
    /// Set when `keyway-directive-apply-delta` ([`CMD_KEYWAY_APPLY_DELTA`])
    /// writes this component from a patch.
    #[cfg(feature = "delta")]
    pub delta: Option<DeltaSources>,
}

/// The components a `keyway-directive-apply-delta` reads: the patch and the
/// image it applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeltaSources {
    /// The component index holding the patch
    /// (`suit-parameter-source-component`).
    pub patch: u8,
    /// The component index holding the base image
    /// ([`PARAM_KEYWAY_DELTA_BASE`]).
    pub base: u8,
}

/// What a delta manifest binds: the image the patch applies to and the
/// image it produces. The payload (the patch itself) is still
/// [`Manifest::payload`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeltaBinding<'a> {
    /// SHA-256 of the installed image the patch applies to (borrowed from
    /// the manifest).
    pub base_digest: &'a [u8; 32],
    /// Its size in bytes.
    pub base_size: u64,
    /// The image the patch produces: what the written slot must hold.
    pub out: ImageExpectation<'a>,
}

/// The digest and size a payload must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageExpectation<'a> {
    /// SHA-256 of the image (borrowed from the manifest).
    pub digest: &'a [u8; 32],
    /// Size in bytes, when the manifest gives one (`image-size` is
    /// optional in SUIT; Keyway's own manifests always set it).
    pub size: Option<u64>,
    /// Where it is fetched from: `#key` names an integrated payload.
    pub uri: Option<&'a str>,
}

/// A manifest, decoded and run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest<'a> {
    /// `suit-manifest-sequence-number`.
    pub sequence: u64,
    /// `suit-set-version`, if present.
    pub version: Option<Version>,
    /// `suit-reference-uri`, if present.
    pub reference_uri: Option<&'a str>,
    /// The components and what the sequences did with them.
    pub components: heapless::Vec<Component<'a>, MAX_COMPONENTS>,
    /// Conditions decided at install time.
    pub policy: PolicyConditions,
    /// How the release notes are bound, if at all.
    pub text: Option<Member<'a>>,
    pub(crate) install: Option<Member<'a>>,
    pub(crate) payload_fetch: Option<Member<'a>>,
    pub(crate) validate: Option<&'a [u8]>,
    pub(crate) load: Option<&'a [u8]>,
    pub(crate) invoke: Option<&'a [u8]>,
    pub(crate) shared: Option<&'a [u8]>,
}

/// A severable member: present in the manifest, or severed and bound by
/// digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member<'a> {
    /// The member's bytes (the inside of its bstr).
    Inline(&'a [u8]),
    /// SHA-256 over the bstr-wrapped member, which travels in the envelope
    /// (borrowed from the manifest).
    Severed(&'a [u8; 32]),
}

impl<'a> Manifest<'a> {
    /// Decodes the manifest map (the inside of the envelope's bstr). The
    /// command sequences are run by [`Manifest::run`].
    pub(crate) fn decode(bytes: &'a [u8]) -> Result<Self, Error> {
        let mut m = Manifest::empty();
        m.decode_into(bytes)?;
        Ok(m)
    }

    /// A manifest with nothing in it (what [`crate::Verified::empty`] holds).
    pub const fn empty() -> Self {
        Manifest {
            sequence: 0,
            version: None,
            reference_uri: None,
            components: heapless::Vec::new(),
            policy: PolicyConditions {
                use_before: None,
                minimum_battery_mwh: None,
                update_authorized: UpdateAuthorization::NotRequired,
            },
            text: None,
            install: None,
            payload_fetch: None,
            validate: None,
            load: None,
            invoke: None,
            shared: None,
        }
    }

    /// Decodes into `self` (which must be [`Manifest::empty`]), in place.
    #[inline(never)]
    pub(crate) fn decode_into(&mut self, bytes: &'a [u8]) -> Result<(), Error> {
        let m = self;
        let mut r = Reader::new(bytes, Part::Manifest);
        if matches!(r.datatype()?, crate::cbor::Type::Tag) && r.tag()? != TAG_MANIFEST {
            return Err(Error::Malformed {
                part: Part::Manifest,
                offset: 0,
                expected: "map",
            });
        }
        let n = r.map()?;
        let (mut seen_version, mut seen_seq, mut common) = (false, false, None);
        let mut seen = 0u64;
        for _ in 0..n {
            let key = match r.key()? {
                Key::Int(k) => k,
                _ => {
                    r.skip()?;
                    continue;
                }
            };
            first_time(&mut seen, key, Part::Manifest)?;
            match key {
                MAN_VERSION => {
                    let v = r.u64()?;
                    if v != 1 {
                        return Err(Error::UnsupportedManifestVersion(v));
                    }
                    seen_version = true;
                }
                MAN_SEQUENCE => {
                    m.sequence = r.u64()?;
                    seen_seq = true;
                }
                MAN_COMMON => common = Some(r.bytes()?),
                MAN_REFERENCE_URI => m.reference_uri = Some(r.str()?),
                MAN_SET_VERSION => {
                    // update-management §3.1: `bstr .cbor [+ int]`.
                    let mut v = Reader::new(r.bytes()?, Part::Manifest);
                    m.version = Some(Version::decode(&mut v)?);
                    v.finish()?;
                }
                MAN_VALIDATE => m.validate = Some(r.bytes()?),
                MAN_LOAD => m.load = Some(r.bytes()?),
                MAN_INVOKE => m.invoke = Some(r.bytes()?),
                MAN_PAYLOAD_FETCH => m.payload_fetch = Some(member(&mut r)?),
                MAN_INSTALL => m.install = Some(member(&mut r)?),
                MAN_TEXT => m.text = Some(member(&mut r)?),
                MAN_COMPONENT_ID => r.skip()?,
                other => return Err(Error::UnsupportedMember(other)),
            }
        }
        r.finish()?;
        if !seen_version {
            return Err(Error::Missing {
                part: Part::Manifest,
                what: "version (1)",
            });
        }
        if !seen_seq {
            return Err(Error::Missing {
                part: Part::Manifest,
                what: "sequence (2)",
            });
        }
        let common = common.ok_or(Error::Missing {
            part: Part::Manifest,
            what: "common (3)",
        })?;
        m.decode_common(common)
    }

    fn decode_common(&mut self, bytes: &'a [u8]) -> Result<(), Error> {
        let mut r = Reader::new(bytes, Part::Common);
        let n = r.map()?;
        for _ in 0..n {
            match r.key()? {
                Key::Int(COMMON_COMPONENTS) => {
                    let c = r.array()?;
                    if c == 0 || c > MAX_COMPONENTS {
                        return Err(Error::TooMany {
                            what: Limit::Components,
                            max: MAX_COMPONENTS,
                        });
                    }
                    for _ in 0..c {
                        let start = r.position();
                        let parts = r.array()?;
                        if parts > 8 {
                            return Err(Error::TooMany {
                                what: Limit::ComponentId,
                                max: 8,
                            });
                        }
                        for _ in 0..parts {
                            r.bytes()?;
                        }
                        let id = bytes.get(start..r.position()).unwrap_or(&[]);
                        // Cannot overflow: bounded above.
                        let _ = self.components.push(Component {
                            id,
                            params: Params::default(),
                            fetched_from: None,
                            image: None,
                            invoked: false,
                            #[cfg(feature = "delta")]
                            delta: None,
                        });
                    }
                }
                Key::Int(COMMON_SHARED_SEQUENCE) => self.shared = Some(r.bytes()?),
                _ => r.skip()?,
            }
        }
        r.finish()?;
        if self.components.is_empty() {
            return Err(Error::Missing {
                part: Part::Common,
                what: "components (2)",
            });
        }
        Ok(())
    }

    /// Runs the shared sequence and then every command sequence present,
    /// checking identity conditions against `device`. Severed sequences are
    /// given by the envelope (already checked against their digests).
    #[inline(never)]
    pub(crate) fn run(
        &mut self,
        device: &DeviceIdentity,
        severed_install: Option<&'a [u8]>,
        severed_fetch: Option<&'a [u8]>,
    ) -> Result<(), Error> {
        fn inline<'a>(m: Option<Member<'a>>, severed: Option<&'a [u8]>) -> Option<&'a [u8]> {
            match m {
                Some(Member::Inline(b)) => Some(b),
                _ => severed,
            }
        }
        let sequences = [
            self.shared,
            inline(self.payload_fetch, severed_fetch),
            inline(self.install, severed_install),
            self.validate,
            self.load,
            self.invoke,
        ];
        // The sequences run on the manifest's own components: no copy.
        let mut state = State {
            components: &mut self.components,
            selected: 1,
            policy: PolicyConditions::default(),
        };
        for seq in sequences.into_iter().flatten() {
            state.selected = 1;
            run_sequence(&mut state, seq, device, 0)?;
        }
        self.policy = state.policy;
        Ok(())
    }

    /// The delta binding, if a `keyway-directive-apply-delta` ran: the first
    /// component it wrote, the base component's image-match (digest and
    /// size) and the written component's image-match (digest and size).
    /// The patch component must be the one [`Manifest::payload`] names.
    /// `Ok(None)` for a full image.
    /// (Feature `delta`.)
    #[cfg(feature = "delta")]
    pub fn delta(&self) -> Result<Option<DeltaBinding<'a>>, Error> {
        let Some((at, out, src)) = self
            .components
            .iter()
            .enumerate()
            .find_map(|(i, c)| Some((i, c.image, c.delta?)))
        else {
            return Ok(None);
        };
        // Another component's image-match, never the written one's.
        let image = |i: u8| {
            let i = usize::from(i);
            self.components
                .get(i)
                .filter(|_| i != at)
                .and_then(|c| c.image)
        };
        let payload = self.payload().map(|p| p.digest as *const [u8; 32]);
        let missing = |what| Error::Missing {
            part: Part::Commands,
            what,
        };
        let base = image(src.base).ok_or(missing("delta base image-match"))?;
        match (out, image(src.patch)) {
            (Some(out), Some(patch))
                if out.size.is_some() && payload == Some(patch.digest as *const [u8; 32]) =>
            {
                Ok(Some(DeltaBinding {
                    base_digest: base.digest,
                    base_size: base.size.ok_or(missing("delta base size"))?,
                    out,
                }))
            }
            _ => Err(missing("delta output size or fetched patch")),
        }
    }

    /// The image the payload must match: the first component fetched from a
    /// URI with an image-match, else the first component with one.
    pub fn payload(&self) -> Option<ImageExpectation<'a>> {
        self.components
            .iter()
            .filter_map(|c| c.image)
            .find(|i| i.uri.is_some())
            .or_else(|| self.components.iter().find_map(|c| c.image))
    }
}

fn member<'a>(r: &mut Reader<'a>) -> Result<Member<'a>, Error> {
    match r.datatype()? {
        crate::cbor::Type::Array => {
            let raw = r.raw_item()?;
            Ok(Member::Severed(decode_digest(raw, Part::Digest)?))
        }
        _ => Ok(Member::Inline(r.bytes()?)),
    }
}
