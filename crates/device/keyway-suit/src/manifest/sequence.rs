//! The static run of a manifest's command sequences over an abstract
//! device: conditions on the device's identity are checked now, install-time
//! conditions are collected, and each component's image digest and size
//! are recorded (draft-ietf-suit-manifest, section 6). Directives and
//! conditions outside Keyway's profile are refused.

use super::*;

/// The abstract device the sequences run on: the manifest's components,
/// borrowed, plus the selection and the collected policy.
pub(super) struct State<'a, 's> {
    pub(super) components: &'s mut heapless::Vec<Component<'a>, MAX_COMPONENTS>,
    /// Bit i set: component i is selected.
    pub(super) selected: u8,
    pub(super) policy: PolicyConditions,
}

/// Whether an error is a condition failing (so try-each may go on).
fn is_condition_failure(e: &Error) -> bool {
    matches!(
        e,
        Error::WrongVendor { .. }
            | Error::WrongClass { .. }
            | Error::Aborted
            | Error::ConditionFailed { .. }
    )
}

pub(super) fn run_sequence<'a>(
    state: &mut State<'a, '_>,
    seq: &'a [u8],
    device: &DeviceIdentity,
    depth: usize,
) -> Result<(), Error> {
    if depth > MAX_NESTING {
        return Err(Error::TooMany {
            what: Limit::Nesting,
            max: MAX_NESTING,
        });
    }
    let mut r = Reader::new(seq, Part::Commands);
    let n = r.array()?;
    if n % 2 != 0 {
        return Err(Error::Malformed {
            part: Part::Commands,
            offset: 0,
            expected: "command pairs",
        });
    }
    for _ in 0..n / 2 {
        let cmd = r.i64()?;
        match cmd {
            CMD_SET_COMPONENT_INDEX => state.selected = select(&mut r, state.components.len())?,
            CMD_OVERRIDE_PARAMETERS => {
                let k = r.map()?;
                for _ in 0..k {
                    let p = r.i64()?;
                    let value = ParamValue::decode(&mut r, p)?;
                    for (i, c) in state.components.iter_mut().enumerate() {
                        if state.selected & (1 << i) != 0 {
                            value.apply(&mut c.params);
                        }
                    }
                }
            }
            CMD_RUN_SEQUENCE => {
                let inner = r.bytes()?;
                run_sequence(state, inner, device, depth + 1)?;
            }
            CMD_TRY_EACH => try_each(state, &mut r, device, depth)?,
            other if takes_policy(other) => {
                r.u64()?;
                command(state, other, device)?;
            }
            // Refused before its argument is read: unsupported, whatever
            // that argument's shape (never "malformed").
            other => return Err(Error::UnsupportedCommand(other)),
        }
    }
    r.finish()
}

/// The argument of set-component-index: `true`, an index, or an array of
/// indices.
fn select(r: &mut Reader<'_>, count: usize) -> Result<u8, Error> {
    Ok(match r.datatype()? {
        crate::cbor::Type::Bool => {
            if r.bool()? {
                ((1u16 << count) - 1) as u8
            } else {
                0
            }
        }
        crate::cbor::Type::Array => {
            let k = r.array()?;
            let mut sel = 0u8;
            for _ in 0..k {
                sel |= index_bit(r.u64()?, count)?;
            }
            sel
        }
        _ => index_bit(r.u64()?, count)?,
    })
}

/// `directive-try-each`: the first alternative whose conditions hold is
/// kept. Not inlined, so the saved components cost stack only in manifests
/// that use it (and are saved once per alternative tried, not per level of
/// the whole state).
#[inline(never)]
fn try_each<'a>(
    state: &mut State<'a, '_>,
    r: &mut Reader<'a>,
    device: &DeviceIdentity,
    depth: usize,
) -> Result<(), Error> {
    let k = r.array()?;
    let mut last = Error::Aborted;
    let mut done = false;
    for _ in 0..k {
        if matches!(r.datatype()?, crate::cbor::Type::Null) {
            r.null()?;
            done = true;
            continue;
        }
        let alt = r.bytes()?;
        if done {
            continue;
        }
        // What an alternative may change, restored if it fails.
        let saved = (state.components.clone(), state.selected, state.policy);
        match run_sequence(state, alt, device, depth + 1) {
            Ok(()) => done = true,
            Err(e) if is_condition_failure(&e) => {
                (*state.components, state.selected, state.policy) = saved;
                last = e;
            }
            Err(e) => return Err(e),
        }
    }
    if done { Ok(()) } else { Err(last) }
}

/// The commands [`command`] implements (all take a reporting policy),
/// Keyway's own apply-delta aside: bit n for command n.
const POLICY_COMMANDS: u32 = {
    let cmds = [
        CMD_VENDOR_ID,
        CMD_CLASS_ID,
        CMD_IMAGE_MATCH,
        CMD_USE_BEFORE,
        CMD_COMPONENT_SLOT,
        CMD_CHECK_CONTENT,
        CMD_ABORT,
        CMD_WRITE,
        CMD_FETCH,
        CMD_COPY,
        CMD_INVOKE,
        CMD_DEVICE_ID,
        CMD_IMAGE_NOT_MATCH,
        CMD_MINIMUM_BATTERY,
        CMD_UPDATE_AUTHORIZED,
        CMD_VERSION,
        CMD_SWAP,
    ];
    let mut mask = 0u32;
    let mut i = 0;
    while i < cmds.len() {
        mask |= 1 << cmds[i];
        i += 1;
    }
    mask
};

/// Whether [`command`] implements `cmd`. A bit mask rather than a
/// `matches!` (smaller on the device).
fn takes_policy(cmd: i64) -> bool {
    #[cfg(feature = "delta")]
    if cmd == CMD_KEYWAY_APPLY_DELTA {
        return true;
    }
    (0..32).contains(&cmd) && POLICY_COMMANDS >> cmd & 1 == 1
}

fn index_bit(i: u64, count: usize) -> Result<u8, Error> {
    if i >= count as u64 {
        return Err(Error::BadComponentIndex(i));
    }
    Ok(1 << i)
}

fn need<T>(v: Option<T>, command: i64, parameter: i64) -> Result<T, Error> {
    v.ok_or(Error::ParameterNotSet { command, parameter })
}

/// An identity condition: passes when the device has no value for it.
fn same<const N: usize>(got: &[u8; N], expected: &Option<[u8; N]>) -> bool {
    expected.as_ref().is_none_or(|e| e == got)
}

#[inline(never)]
fn command(state: &mut State<'_, '_>, cmd: i64, device: &DeviceIdentity) -> Result<(), Error> {
    let policy = &mut state.policy;
    for (i, c) in state.components.iter_mut().enumerate() {
        if state.selected & (1 << i) == 0 {
            continue;
        }
        let p = &c.params;
        match cmd {
            CMD_VENDOR_ID => {
                let got = need(p.vendor_id, cmd, PARAM_VENDOR_ID)?;
                if !same(got, &device.vendor_id) {
                    return Err(Error::WrongVendor { got: *got });
                }
            }
            CMD_CLASS_ID => {
                let got = need(p.class_id, cmd, PARAM_CLASS_ID)?;
                if !same(got, &device.class_id) {
                    return Err(Error::WrongClass { got: *got });
                }
            }
            CMD_DEVICE_ID => {
                if !same(need(p.device_id, cmd, PARAM_DEVICE_ID)?, &device.device_id) {
                    return Err(Error::ConditionFailed { command: cmd });
                }
            }
            CMD_COMPONENT_SLOT => {
                let got = need(p.component_slot, cmd, PARAM_COMPONENT_SLOT)?;
                if device.slot.is_some_and(|s| s != got) {
                    return Err(Error::ConditionFailed { command: cmd });
                }
            }
            CMD_IMAGE_MATCH => {
                c.image = Some(ImageExpectation {
                    digest: need(p.image_digest, cmd, PARAM_IMAGE_DIGEST)?,
                    size: p.image_size,
                    uri: c.fetched_from,
                });
            }
            CMD_IMAGE_NOT_MATCH => {
                need(p.image_digest, cmd, PARAM_IMAGE_DIGEST)?;
            }
            // §8.4.9: a condition without its parameter fails; with it,
            // these are not implemented (the verifier cannot decide them).
            CMD_CHECK_CONTENT | CMD_WRITE | CMD_VERSION => {
                let (set, parameter) = if cmd == CMD_VERSION {
                    (p.version_set, PARAM_VERSION)
                } else {
                    (p.content_set, PARAM_CONTENT)
                };
                need(set.then_some(()), cmd, parameter)?;
                return Err(Error::UnsupportedCommand(cmd));
            }
            CMD_ABORT => return Err(Error::Aborted),
            CMD_USE_BEFORE => {
                let t = need(p.use_before, cmd, PARAM_USE_BEFORE)?;
                policy.use_before = Some(policy.use_before.map_or(t, |u| u.min(t)));
            }
            CMD_MINIMUM_BATTERY => {
                let b = need(p.minimum_battery, cmd, PARAM_MINIMUM_BATTERY)?;
                policy.minimum_battery_mwh =
                    Some(policy.minimum_battery_mwh.map_or(b, |u| u.max(b)));
            }
            CMD_UPDATE_AUTHORIZED => {
                let pr = need(p.update_priority, cmd, PARAM_UPDATE_PRIORITY)?;
                policy.update_authorized = UpdateAuthorization::Required { priority: pr };
            }
            CMD_FETCH => c.fetched_from = Some(need(p.uri, cmd, PARAM_URI)?),
            CMD_COPY | CMD_SWAP => {
                need(p.source_component, cmd, PARAM_SOURCE_COMPONENT)?;
            }
            CMD_INVOKE => c.invoked = true,
            #[cfg(feature = "delta")]
            CMD_KEYWAY_APPLY_DELTA => {
                // Indices are checked by `Manifest::delta`: one out of
                // range (saturated here) finds no image there.
                let patch = need(p.source_component, cmd, PARAM_SOURCE_COMPONENT)?;
                let base = need(p.delta_base, cmd, PARAM_KEYWAY_DELTA_BASE)?;
                c.delta = Some(DeltaSources {
                    patch: u8::try_from(patch).unwrap_or(u8::MAX),
                    base,
                });
            }
            other => return Err(Error::UnsupportedCommand(other)),
        }
    }
    Ok(())
}

/// One parameter value from an override-parameters map.
#[derive(Clone, Copy)]
enum ParamValue<'a> {
    Vendor(&'a [u8; 16]),
    Class(&'a [u8; 16]),
    Device(&'a [u8; 16]),
    Digest(&'a [u8; 32]),
    Size(u64),
    Uri(&'a str),
    UseBefore(u64),
    Battery(u64),
    Priority(i64),
    Slot(u64),
    Source(u64),
    #[cfg(feature = "delta")]
    DeltaBase(u8),
    Content,
    VersionMatch,
    Ignored,
}

impl<'a> ParamValue<'a> {
    #[inline(never)]
    fn decode(r: &mut Reader<'a>, p: i64) -> Result<Self, Error> {
        Ok(match p {
            PARAM_VENDOR_ID => {
                if matches!(r.datatype()?, crate::cbor::Type::Tag) {
                    // cbor-pen (#6.112): a private enterprise number, not a
                    // UUID; kept as an unmatchable all-zero UUID.
                    r.tag()?;
                    r.bytes()?;
                    ParamValue::Vendor(&[0; 16])
                } else {
                    ParamValue::Vendor(r.bytes_n::<16>("uuid")?)
                }
            }
            PARAM_CLASS_ID => ParamValue::Class(r.bytes_n::<16>("uuid")?),
            PARAM_DEVICE_ID => ParamValue::Device(r.bytes_n::<16>("uuid")?),
            PARAM_IMAGE_DIGEST => {
                let raw = r.bytes()?;
                ParamValue::Digest(decode_digest(raw, Part::Digest)?)
            }
            PARAM_IMAGE_SIZE => ParamValue::Size(r.u64()?),
            PARAM_URI => ParamValue::Uri(r.str()?),
            PARAM_USE_BEFORE => ParamValue::UseBefore(r.u64()?),
            PARAM_MINIMUM_BATTERY => ParamValue::Battery(r.u64()?),
            PARAM_UPDATE_PRIORITY => ParamValue::Priority(r.i64()?),
            PARAM_COMPONENT_SLOT => ParamValue::Slot(r.u64()?),
            PARAM_SOURCE_COMPONENT => ParamValue::Source(r.u64()?),
            #[cfg(feature = "delta")]
            PARAM_KEYWAY_DELTA_BASE => {
                ParamValue::DeltaBase(u8::try_from(r.u64()?).unwrap_or(u8::MAX))
            }
            PARAM_STRICT_ORDER | PARAM_SOFT_FAILURE => {
                r.bool()?;
                ParamValue::Ignored
            }
            PARAM_CONTENT => {
                r.bytes()?;
                ParamValue::Content
            }
            PARAM_INVOKE_ARGS | PARAM_FETCH_ARGS => {
                r.bytes()?;
                ParamValue::Ignored
            }
            PARAM_VERSION => {
                r.bytes()?;
                ParamValue::VersionMatch
            }
            other => return Err(Error::UnsupportedParameter(other)),
        })
    }

    fn apply(self, p: &mut Params<'a>) {
        match self {
            ParamValue::Vendor(v) => p.vendor_id = Some(v),
            ParamValue::Class(v) => p.class_id = Some(v),
            ParamValue::Device(v) => p.device_id = Some(v),
            ParamValue::Digest(v) => p.image_digest = Some(v),
            ParamValue::Size(v) => p.image_size = Some(v),
            ParamValue::Uri(v) => p.uri = Some(v),
            ParamValue::UseBefore(v) => p.use_before = Some(v),
            ParamValue::Battery(v) => p.minimum_battery = Some(v),
            ParamValue::Priority(v) => p.update_priority = Some(v),
            ParamValue::Slot(v) => p.component_slot = Some(v),
            ParamValue::Source(v) => p.source_component = Some(v),
            #[cfg(feature = "delta")]
            ParamValue::DeltaBase(v) => p.delta_base = Some(v),
            ParamValue::Content => p.content_set = true,
            ParamValue::VersionMatch => p.version_set = true,
            ParamValue::Ignored => {}
        }
    }
}
