//! The manifest: the shared sequence (identity and image digest), the
//! install sequence (conditions, fetch, the delta's apply), validate and
//! invoke, `suit-set-version` and the severed text's digest.

use super::{
    ReleaseVersion, component_id, installed_component_id, int, patch_component_id, seq_bstr,
    suit_digest_of_hash, uint,
};
use crate::cbor::{Value, ValueExt};
use crate::labels as l;

/// Reporting policy `15` (all bits) used on conditions.
const POLICY_CONDITION: u64 = 15;
/// Reporting policy `2` used on directives.
const POLICY_DIRECTIVE: u64 = 2;

/// Everything that goes into the manifest. No validation is done by
/// [`encode_manifest`]; the builder fills this in from its inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestParams {
    /// `suit-manifest-version`; 1 for every real envelope.
    pub manifest_version: u64,
    /// `suit-manifest-sequence-number` (anti-rollback counter).
    pub sequence: u64,
    /// `suit-set-version`.
    pub version: ReleaseVersion,
    /// Vendor UUID (see [`vendor_uuid`](super::vendor_uuid)).
    pub vendor_uuid: [u8; 16],
    /// Class UUID (see [`class_uuid`](super::class_uuid)).
    pub class_uuid: [u8; 16],
    /// SHA-256 of the payload.
    pub payload_digest: [u8; 32],
    /// Payload size in bytes.
    pub payload_size: u64,
    /// `use-before`, seconds since 1970, if any.
    pub use_before: Option<u64>,
    /// Minimum battery in mWh, if any.
    pub min_battery_mwh: Option<u64>,
    /// `update-priority` (see [`update_priority`](super::update_priority)).
    pub update_priority: i64,
    /// SHA-256 of the text map bytes, if release notes are attached.
    pub text_digest: Option<[u8; 32]>,
    /// Where the payload is fetched from: [`PAYLOAD_KEY`](super::PAYLOAD_KEY) for an integrated
    /// payload, any other URI for a detached one.
    pub payload_uri: String,
    /// For a delta update (the payload is a Keyway patch): the base and
    /// the produced image. `None`: the payload is the image.
    pub delta: Option<DeltaParams>,
}

/// What a delta manifest binds besides the patch (FORMAT.md, "Delta
/// manifest").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeltaParams {
    /// SHA-256 of the image the patch applies to.
    pub base_digest: [u8; 32],
    /// Its size.
    pub base_size: u64,
    /// SHA-256 of the image the patch produces.
    pub out_digest: [u8; 32],
    /// Its size.
    pub out_size: u64,
}

/// The manifest as a [`Value`] (see [`encode_manifest`]).
pub fn manifest_value(p: &ManifestParams) -> Value {
    // Component 0 is the image in the slot: the payload itself, or what the
    // patch produces.
    let (image_digest, image_size) = match &p.delta {
        Some(d) => (d.out_digest, d.out_size),
        None => (p.payload_digest, p.payload_size),
    };
    let shared = seq_bstr(vec![
        int(l::CMD_SET_COMPONENT_INDEX),
        uint(0),
        int(l::CMD_OVERRIDE_PARAMETERS),
        Value::Map(vec![
            (
                int(l::PARAM_VENDOR_ID),
                Value::Bytes(p.vendor_uuid.to_vec()),
            ),
            (int(l::PARAM_CLASS_ID), Value::Bytes(p.class_uuid.to_vec())),
            (
                int(l::PARAM_IMAGE_DIGEST),
                Value::Bytes(suit_digest_of_hash(&image_digest)),
            ),
            (int(l::PARAM_IMAGE_SIZE), uint(image_size)),
        ]),
        int(l::CMD_VENDOR_ID),
        uint(POLICY_CONDITION),
        int(l::CMD_CLASS_ID),
        uint(POLICY_CONDITION),
    ]);
    let mut components = vec![component_id()];
    if p.delta.is_some() {
        components.extend([patch_component_id(), installed_component_id()]);
    }
    let common = Value::Map(vec![
        (int(l::COMMON_COMPONENTS), Value::Array(components)),
        (int(l::COMMON_SHARED_SEQUENCE), shared),
    ]);

    let mut install_params = Vec::new();
    if let Some(t) = p.use_before {
        install_params.push((int(l::PARAM_USE_BEFORE), uint(t)));
    }
    if let Some(b) = p.min_battery_mwh {
        install_params.push((int(l::PARAM_MINIMUM_BATTERY), uint(b)));
    }
    install_params.push((int(l::PARAM_UPDATE_PRIORITY), int(p.update_priority)));
    install_params.push((int(l::PARAM_URI), Value::from(p.payload_uri.as_str())));
    let mut install = Vec::new();
    if let Some(d) = &p.delta {
        // The running image (component 2) must be the patch's base; the
        // patch (component 1) is fetched and checked like a full image.
        install.extend([
            int(l::CMD_SET_COMPONENT_INDEX),
            uint(2),
            int(l::CMD_OVERRIDE_PARAMETERS),
            Value::Map(vec![
                (
                    int(l::PARAM_IMAGE_DIGEST),
                    Value::Bytes(suit_digest_of_hash(&d.base_digest)),
                ),
                (int(l::PARAM_IMAGE_SIZE), uint(d.base_size)),
            ]),
            int(l::CMD_IMAGE_MATCH),
            uint(POLICY_CONDITION),
        ]);
        install_params.extend([
            (
                int(l::PARAM_IMAGE_DIGEST),
                Value::Bytes(suit_digest_of_hash(&p.payload_digest)),
            ),
            (int(l::PARAM_IMAGE_SIZE), uint(p.payload_size)),
        ]);
    }
    let payload_component = if p.delta.is_some() { 1 } else { 0 };
    install.extend([
        int(l::CMD_SET_COMPONENT_INDEX),
        uint(payload_component),
        int(l::CMD_OVERRIDE_PARAMETERS),
        Value::Map(install_params),
    ]);
    if p.use_before.is_some() {
        install.extend([int(l::CMD_USE_BEFORE), uint(POLICY_CONDITION)]);
    }
    if p.min_battery_mwh.is_some() {
        install.extend([int(l::CMD_MINIMUM_BATTERY), uint(POLICY_CONDITION)]);
    }
    install.extend([
        int(l::CMD_UPDATE_AUTHORIZED),
        uint(POLICY_CONDITION),
        int(l::CMD_FETCH),
        uint(POLICY_DIRECTIVE),
        int(l::CMD_IMAGE_MATCH),
        uint(POLICY_CONDITION),
    ]);
    if p.delta.is_some() {
        // Component 0 is written by applying the patch (source-component 1)
        // to the running image (Keyway's delta-base parameter, 2), then must
        // match the output digest and size the shared sequence set.
        install.extend([
            int(l::CMD_SET_COMPONENT_INDEX),
            uint(0),
            int(l::CMD_OVERRIDE_PARAMETERS),
            Value::Map(vec![
                (int(l::PARAM_SOURCE_COMPONENT), uint(1)),
                (int(l::PARAM_KEYWAY_DELTA_BASE), uint(2)),
            ]),
            int(l::CMD_KEYWAY_APPLY_DELTA),
            uint(POLICY_DIRECTIVE),
            int(l::CMD_IMAGE_MATCH),
            uint(POLICY_CONDITION),
        ]);
    }

    let mut m = vec![
        (int(l::MAN_VERSION), uint(p.manifest_version)),
        (int(l::MAN_SEQUENCE), uint(p.sequence)),
        (int(l::MAN_COMMON), Value::Bytes(common.to_bytes())),
        (
            // update-management §3.1: `bstr .cbor [+ int]`.
            int(l::MAN_SET_VERSION),
            Value::Bytes(
                Value::Array(vec![
                    uint(p.version.major),
                    uint(p.version.minor),
                    uint(p.version.patch),
                ])
                .to_bytes(),
            ),
        ),
        (
            int(l::MAN_VALIDATE),
            on_image(l::CMD_IMAGE_MATCH, POLICY_CONDITION),
        ),
        (
            int(l::MAN_INVOKE),
            on_image(l::CMD_INVOKE, POLICY_DIRECTIVE),
        ),
        (int(l::MAN_INSTALL), seq_bstr(install)),
    ];
    if let Some(td) = p.text_digest {
        // Severed text: a bare SUIT_Digest (not a byte string), as the draft
        // encodes it.
        m.push((
            int(l::MAN_TEXT),
            Value::Array(vec![
                Value::from(l::COSE_ALG_SHA256),
                Value::Bytes(td.to_vec()),
            ]),
        ));
    }
    Value::Map(m)
}

/// A command sequence of one command, `command` with reporting `policy`, on
/// component 0 (the image in the slot).
fn on_image(command: i64, policy: u64) -> Value {
    seq_bstr(vec![
        int(l::CMD_SET_COMPONENT_INDEX),
        uint(0),
        int(command),
        uint(policy),
    ])
}

/// Encodes the manifest map (the bytes that go inside the envelope's `3:`
/// byte string and that the signatures cover).
pub fn encode_manifest(p: &ManifestParams) -> Vec<u8> {
    manifest_value(p).to_bytes()
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;

    #[test]
    fn manifest_matches_format() {
        let b = builder(vec![key(Algorithm::Ed25519)]);
        let built = b.build().unwrap();
        let m = decode(&built.manifest);
        assert_eq!(
            keys_of(&m),
            [1, 2, 3, 6, 7, 9, 20, 23].map(Value::from).to_vec()
        );
        assert_eq!(m.get_int(1), Some(&Value::from(1)));
        assert_eq!(m.get_int(2), Some(&Value::from(7)));
        // update-management §3.1: `bstr .cbor [+ int]`.
        assert_eq!(
            bstr_item(m.get_int(6).unwrap()),
            Value::Array([1, 2, 3].map(Value::from).to_vec())
        );

        let common = bstr_item(m.get_int(3).unwrap());
        assert_eq!(
            common.get_int(2),
            Some(&Value::Array(vec![Value::Array(vec![Value::from(vec![
                0
            ])])]))
        );
        let shared = bstr_item(common.get_int(4).unwrap());
        let shared = shared.as_array().unwrap();
        assert_eq!(shared.len(), 8);
        assert_eq!(shared[..2], [Value::from(12), Value::from(0)]);
        assert_eq!(shared[2], Value::from(20));
        assert_eq!(shared[4..], [1, 15, 2, 15].map(Value::from));
        let params = &shared[3];
        assert_eq!(keys_of(params), [1, 2, 3, 14].map(Value::from).to_vec());
        let vendor = vendor_uuid("keyway.example");
        assert_eq!(
            params.get_int(1).unwrap().as_bytes().unwrap().as_slice(),
            vendor
        );
        assert_eq!(
            params.get_int(2).unwrap().as_bytes().unwrap().as_slice(),
            class_uuid(&vendor, "deadbolt-v2")
        );
        let digest = bstr_item(params.get_int(3).unwrap());
        assert_eq!(
            digest,
            Value::Array(vec![
                Value::from(-16),
                Value::Bytes(sha256(&b.payload).to_vec())
            ])
        );
        assert_eq!(params.get_int(14), Some(&Value::from(3000)));

        // Exact bytes of the fixed sequences.
        assert_eq!(
            m.get_int(7).unwrap().as_bytes().unwrap().as_slice(),
            [0x84, 0x0c, 0x00, 0x03, 0x0f]
        );
        assert_eq!(
            m.get_int(9).unwrap().as_bytes().unwrap().as_slice(),
            [0x84, 0x0c, 0x00, 0x17, 0x02]
        );

        let install = bstr_item(m.get_int(20).unwrap());
        let install = install.as_array().unwrap();
        assert_eq!(install[..3], [12, 0, 20].map(Value::from));
        assert_eq!(
            install[3],
            // RFC 8949 §4.2.1 order: 4, 21, 26 (0x18 1a), 27 (0x18 1b).
            Value::Map(vec![
                (Value::from(4), Value::from(1_900_000_000)),
                (Value::from(21), Value::from("#firmware")),
                (Value::from(26), Value::from(500)),
                (Value::from(27), Value::from(-1)),
            ])
        );
        assert_eq!(
            install[4..],
            [4, 15, 26, 15, 27, 15, 21, 2, 3, 15].map(Value::from)
        );

        // Severed text: a bare SUIT_Digest over the bstr-wrapped text.
        assert_eq!(
            m.get_int(23).unwrap(),
            &Value::Array(vec![
                Value::from(-16),
                Value::Bytes(wrapped_sha256(built.text.as_deref().unwrap()).to_vec())
            ])
        );
    }

    #[test]
    fn install_without_optional_conditions() {
        let b = EnvelopeBuilder {
            use_before: None,
            min_battery_mwh: None,
            cves: vec![Cve::new("CVE-2024-0001", Severity::Medium).unwrap()],
            ..builder(vec![key(Algorithm::P256)])
        };
        let m = decode(&b.build().unwrap().manifest);
        let install = bstr_item(m.get_int(20).unwrap());
        assert_eq!(
            install,
            Value::Array(vec![
                Value::from(12),
                Value::from(0),
                Value::from(20),
                Value::Map(vec![
                    (Value::from(21), Value::from("#firmware")),
                    (Value::from(27), Value::from(0)),
                ]),
                Value::from(27),
                Value::from(15),
                Value::from(21),
                Value::from(2),
                Value::from(3),
                Value::from(15),
            ])
        );
    }
}
