//! CBOR labels used by Keyway envelopes.
//!
//! The SUIT labels come from draft-ietf-suit-manifest-37 (Appendix A, the
//! CDDL) and draft-ietf-suit-update-management-13 (the IANA section). The
//! Keyway labels are private extensions, chosen outside the ranges that those
//! drafts and their IANA registries use; ARCHITECTURE.md lists them.

/// `SUIT_Envelope_Tagged` = #6.107.
pub const TAG_ENVELOPE: u64 = 107;
/// `SUIT_Manifest_Tagged` = #6.1070.
pub const TAG_MANIFEST: u64 = 1070;
/// `COSE_Sign1_Tagged` = #6.18.
pub const TAG_COSE_SIGN1: u64 = 18;
/// `COSE_Sign_Tagged` = #6.98 (recognised so the error can name it).
pub const TAG_COSE_SIGN: u64 = 98;
/// `COSE_Mac0_Tagged` = #6.17 (recognised so the error can name it).
pub const TAG_COSE_MAC0: u64 = 17;
/// `COSE_Mac_Tagged` = #6.97 (recognised so the error can name it).
pub const TAG_COSE_MAC: u64 = 97;

/// Envelope: `suit-authentication-wrapper`.
pub const ENV_AUTH: i64 = 2;
/// Envelope: `suit-manifest`.
pub const ENV_MANIFEST: i64 = 3;
/// Envelope: severed `suit-payload-fetch`.
pub const ENV_PAYLOAD_FETCH: i64 = 16;
/// Envelope: severed `suit-install`.
pub const ENV_INSTALL: i64 = 20;
/// Envelope: severed `suit-text`.
pub const ENV_TEXT: i64 = 23;
/// Envelope: Keyway extension carrying a root-signed key-set document.
pub const ENV_KEYWAY_KEYSET: i64 = -19287;

/// Manifest: `suit-manifest-version`.
pub const MAN_VERSION: i64 = 1;
/// Manifest: `suit-manifest-sequence-number`.
pub const MAN_SEQUENCE: i64 = 2;
/// Manifest: `suit-common`.
pub const MAN_COMMON: i64 = 3;
/// Manifest: `suit-reference-uri`.
pub const MAN_REFERENCE_URI: i64 = 4;
/// Manifest: `suit-manifest-component-id` (draft-ietf-suit-trust-domains):
/// where the manifest itself would be stored; accepted and ignored.
pub const MAN_COMPONENT_ID: i64 = 5;
/// Manifest: `suit-set-version` (update-management §3.1), `bstr .cbor
/// [+ int]`.
pub const MAN_SET_VERSION: i64 = 6;
/// Manifest: `suit-validate`.
pub const MAN_VALIDATE: i64 = 7;
/// Manifest: `suit-load`.
pub const MAN_LOAD: i64 = 8;
/// Manifest: `suit-invoke`.
pub const MAN_INVOKE: i64 = 9;
/// Manifest: `suit-coswid` (update-management): refused as an unsupported
/// member (Keyway carries no CoSWID).
pub const MAN_COSWID: i64 = 14;
/// Manifest: `suit-payload-fetch`.
pub const MAN_PAYLOAD_FETCH: i64 = 16;
/// Manifest: `suit-install`.
pub const MAN_INSTALL: i64 = 20;
/// Manifest: `suit-text`.
pub const MAN_TEXT: i64 = 23;

/// Common: `suit-components`.
pub const COMMON_COMPONENTS: i64 = 2;
/// Common: `suit-shared-sequence`.
pub const COMMON_SHARED_SEQUENCE: i64 = 4;

/// Condition: vendor identifier.
pub const CMD_VENDOR_ID: i64 = 1;
/// Condition: class identifier.
pub const CMD_CLASS_ID: i64 = 2;
/// Condition: image match.
pub const CMD_IMAGE_MATCH: i64 = 3;
/// Condition: use before (update-management).
pub const CMD_USE_BEFORE: i64 = 4;
/// Condition: component slot.
pub const CMD_COMPONENT_SLOT: i64 = 5;
/// Condition: check content.
pub const CMD_CHECK_CONTENT: i64 = 6;
/// Directive: set component index.
pub const CMD_SET_COMPONENT_INDEX: i64 = 12;
/// Condition: abort.
pub const CMD_ABORT: i64 = 14;
/// Directive: try each.
pub const CMD_TRY_EACH: i64 = 15;
/// Directive: write.
pub const CMD_WRITE: i64 = 18;
/// Directive: override parameters.
pub const CMD_OVERRIDE_PARAMETERS: i64 = 20;
/// Directive: fetch.
pub const CMD_FETCH: i64 = 21;
/// Directive: copy.
pub const CMD_COPY: i64 = 22;
/// Directive: invoke.
pub const CMD_INVOKE: i64 = 23;
/// Condition: device identifier.
pub const CMD_DEVICE_ID: i64 = 24;
/// Condition: image not match (update-management).
pub const CMD_IMAGE_NOT_MATCH: i64 = 25;
/// Condition: minimum battery (update-management).
pub const CMD_MINIMUM_BATTERY: i64 = 26;
/// Condition: update authorized (update-management).
pub const CMD_UPDATE_AUTHORIZED: i64 = 27;
/// Condition: version (update-management).
pub const CMD_VERSION: i64 = 28;
/// Directive: swap.
pub const CMD_SWAP: i64 = 31;
/// Directive: run sequence.
pub const CMD_RUN_SEQUENCE: i64 = 32;
/// Directive (Keyway custom command, draft-ietf-suit-manifest-37 §8.4.11,
/// below -256): `keyway-directive-apply-delta`. Writes into the selected
/// component the image a Keyway delta patch (KWDP version 1, FORMAT.md)
/// produces: the patch is the component named by
/// `suit-parameter-source-component`, the image it applies to is the one
/// named by [`PARAM_KEYWAY_DELTA_BASE`].
pub const CMD_KEYWAY_APPLY_DELTA: i64 = -257;

/// Parameter: vendor identifier (UUID).
pub const PARAM_VENDOR_ID: i64 = 1;
/// Parameter: class identifier (UUID).
pub const PARAM_CLASS_ID: i64 = 2;
/// Parameter: image digest (`bstr .cbor SUIT_Digest`).
pub const PARAM_IMAGE_DIGEST: i64 = 3;
/// Parameter: use before, seconds since 1970 (update-management).
pub const PARAM_USE_BEFORE: i64 = 4;
/// Parameter: component slot.
pub const PARAM_COMPONENT_SLOT: i64 = 5;
/// Parameter: strict order.
pub const PARAM_STRICT_ORDER: i64 = 12;
/// Parameter: soft failure.
pub const PARAM_SOFT_FAILURE: i64 = 13;
/// Parameter: image size.
pub const PARAM_IMAGE_SIZE: i64 = 14;
/// Parameter: content.
pub const PARAM_CONTENT: i64 = 18;
/// Parameter: URI.
pub const PARAM_URI: i64 = 21;
/// Parameter: source component.
pub const PARAM_SOURCE_COMPONENT: i64 = 22;
/// Parameter: invoke arguments.
pub const PARAM_INVOKE_ARGS: i64 = 23;
/// Parameter: device identifier.
pub const PARAM_DEVICE_ID: i64 = 24;
/// Parameter: fetch arguments.
pub const PARAM_FETCH_ARGS: i64 = 25;
/// Parameter: minimum battery in mWh (update-management).
pub const PARAM_MINIMUM_BATTERY: i64 = 26;
/// Parameter: update priority (update-management).
pub const PARAM_UPDATE_PRIORITY: i64 = 27;
/// Parameter: version match (update-management).
pub const PARAM_VERSION: i64 = 28;
/// Parameter (Keyway custom parameter, draft-ietf-suit-manifest-37
/// §8.4.8.16, a negative label): the index of the component holding the
/// image a delta patch applies to (its base), for
/// [`CMD_KEYWAY_APPLY_DELTA`].
pub const PARAM_KEYWAY_DELTA_BASE: i64 = -257;

/// Text: manifest description (Keyway: the release notes, Markdown).
pub const TEXT_MANIFEST_DESCRIPTION: i64 = 1;
/// Text: update description.
pub const TEXT_UPDATE_DESCRIPTION: i64 = 2;
/// Component text: vendor name.
pub const TEXT_VENDOR_NAME: i64 = 1;
/// Component text: model name.
pub const TEXT_MODEL_NAME: i64 = 2;
/// Component text: vendor domain.
pub const TEXT_VENDOR_DOMAIN: i64 = 3;
/// Component text: current version (update-management).
pub const TEXT_CURRENT_VERSION: i64 = 8;
/// Text (Keyway extension): the vulnerabilities this release fixes, as
/// `[* [cve-id: tstr, severity: tstr]]`. A negative integer below -255:
/// draft-ietf-suit-manifest-37 §8.4.4 reserves negative integer ids for
/// application-specific text values (and the registry's private use range
/// lies below -255).
pub const TEXT_KEYWAY_FIXED_CVES: i64 = -257;

/// COSE header: algorithm.
pub const COSE_HDR_ALG: i64 = 1;
/// COSE header: key identifier.
pub const COSE_HDR_KID: i64 = 4;
/// COSE algorithm: ES256 (ECDSA with SHA-256, the curve left to the key).
pub const COSE_ALG_ES256: i64 = -7;
/// COSE algorithm: ESP256 (ECDSA on P-256 with SHA-256, fully specified,
/// RFC 9864 §2.1), what the SUIT MTI profiles sign with.
pub const COSE_ALG_ESP256: i64 = -9;
/// COSE algorithm: EdDSA (used here with Ed25519 only).
pub const COSE_ALG_EDDSA: i64 = -8;
/// COSE algorithm: Ed25519 (fully specified, RFC 9864).
pub const COSE_ALG_ED25519: i64 = -19;
/// COSE algorithm: SHA-256.
pub const COSE_ALG_SHA256: i64 = -16;

/// COSE_Key: key type.
pub const COSE_KEY_KTY: i64 = 1;
/// COSE_Key: curve.
pub const COSE_KEY_CRV: i64 = -1;
/// COSE_Key: x coordinate (or the OKP public key).
pub const COSE_KEY_X: i64 = -2;
/// COSE_Key: y coordinate.
pub const COSE_KEY_Y: i64 = -3;
/// COSE key type OKP.
pub const COSE_KTY_OKP: i64 = 1;
/// COSE key type EC2.
pub const COSE_KTY_EC2: i64 = 2;
/// COSE curve P-256.
pub const COSE_CRV_P256: i64 = 1;
/// COSE curve Ed25519.
pub const COSE_CRV_ED25519: i64 = 6;

/// Key-set document: the authentication wrapper (same shape as SUIT's).
pub const KEYSET_DOC_AUTH: i64 = 1;
/// Key-set document: the `bstr .cbor KeySet`.
pub const KEYSET_DOC_BODY: i64 = 2;
/// Key set: version.
pub const KEYSET_VERSION: i64 = 1;
/// Key set: signature threshold.
pub const KEYSET_THRESHOLD: i64 = 2;
/// Key set: signers, `[+ COSE_Key]`.
pub const KEYSET_SIGNERS: i64 = 3;
/// Key set: revoked key ids, `[* bstr]`.
pub const KEYSET_REVOKED: i64 = 4;
