//! `keyway inspect`: what an envelope says, structure and digests checked,
//! signatures not; and the try-each alternatives a manifest offers.

use keyway_suit as suit;

use crate::keys::hex;

/// The slots [`alternatives`] tries.
pub const SLOTS_TRIED: u64 = 8;

/// One try-each alternative of a manifest: the slot that selects it
/// (`None` when the manifest's image does not depend on the slot) and the
/// image it expects there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alternative<'a> {
    /// The component slot (`suit-condition-component-slot`) it is for.
    pub slot: Option<u64>,
    /// The image the payload must match in that slot.
    pub image: suit::ImageExpectation<'a>,
}

/// Every alternative the manifest offers, found by running it (structure
/// and digests checked, no signature) for each slot below [`SLOTS_TRIED`]:
/// one entry with `slot: None` when the image is the same for every slot,
/// else one per slot that some alternative accepts. Empty without a
/// payload expectation.
pub fn alternatives(bytes: &[u8]) -> Result<Vec<Alternative<'_>>, suit::Error> {
    let first = suit::inspect_envelope(bytes)?.payload;
    let mut per_slot = Vec::new();
    for slot in 0..SLOTS_TRIED {
        let id = suit::DeviceIdentity {
            slot: Some(slot),
            ..suit::DeviceIdentity::ANY
        };
        if let Ok(i) = suit::inspect_envelope_with(bytes, &id)
            && let Some(image) = i.payload
        {
            per_slot.push(Alternative {
                slot: Some(slot),
                image,
            });
        }
    }
    let uniform =
        per_slot.len() as u64 == SLOTS_TRIED && per_slot.iter().all(|a| Some(a.image) == first);
    Ok(match first {
        None => Vec::new(),
        Some(image) if uniform => vec![Alternative { slot: None, image }],
        Some(_) => per_slot,
    })
}

pub(super) fn alternative_text(a: &Alternative<'_>) -> String {
    let size = a
        .image
        .size
        .map_or("unsized".to_string(), |s| format!("{s} bytes"));
    let from = a.image.uri.map_or(String::new(), |u| format!(" from {u}"));
    format!(
        "slot {}: {size} sha256 {}…{from}",
        a.slot.map_or("any".to_string(), |s| s.to_string()),
        &hex(&a.image.digest[..])[..16]
    )
}

pub(super) fn uuid_text(b: &[u8]) -> String {
    uuid::Uuid::from_slice(b).map_or_else(|_| hex(b), |u| u.hyphenated().to_string())
}

/// Everything `keyway inspect` shows, as JSON.
pub fn inspect_json(bytes: &[u8]) -> Result<serde_json::Value, suit::Error> {
    let i = suit::inspect_envelope(bytes)?;
    let components: Vec<serde_json::Value> = i
        .manifest
        .components
        .iter()
        .map(|c| {
            serde_json::json!({
                "id": hex(c.id),
                "vendor_id": c.params.vendor_id.map(|v| uuid_text(&v[..])),
                "class_id": c.params.class_id.map(|v| uuid_text(&v[..])),
                "image_digest": c.image.map(|x| hex(&x.digest[..])),
                "image_size": c.image.and_then(|x| x.size),
                "fetched_from": c.fetched_from,
                "invoked": c.invoked,
            })
        })
        .collect();
    let notes = i.notes.map(|n| {
        serde_json::json!({
            "language": n.language,
            "text": n.description,
            "version": n.version,
            "vendor_domain": n.vendor_domain,
            "model": n.model_name,
            "cves": n.cves().map(|c| serde_json::json!({"id": c.id, "severity": c.severity.as_str()})).collect::<Vec<_>>(),
        })
    });
    let p = i.manifest.policy;
    Ok(serde_json::json!({
        "sequence": i.manifest.sequence,
        "version": i.manifest.version.map(|v| v.to_string()),
        "manifest_digest": hex(&i.manifest_digest),
        "reference_uri": i.manifest.reference_uri,
        "components": components,
        "delta": i.delta.map(|d| serde_json::json!({
            "base_digest": hex(&d.base_digest[..]),
            "base_size": d.base_size,
            "out_digest": hex(&d.out.digest[..]),
            "out_size": d.out.size,
        })),
        "payload": i.payload.map(|x| serde_json::json!({
            "digest": hex(&x.digest[..]),
            "size": x.size,
            "uri": x.uri,
            "integrated": i.integrated.map(|ip| ip.len),
        })),
        "alternatives": alternatives(bytes)?
            .iter()
            .filter(|a| a.slot.is_some())
            .map(|a| serde_json::json!({
                "slot": a.slot,
                "digest": hex(&a.image.digest[..]),
                "size": a.image.size,
                "uri": a.image.uri,
            }))
            .collect::<Vec<_>>(),
        "signatures": i.signatures.iter().map(|s| serde_json::json!({
            "cose_alg": s.cose_alg,
            "key_id": s.kid.map(|k| format!("{k:?}")),
        })).collect::<Vec<_>>(),
        "keyset_version": i.keyset_version,
        "conditions": {
            "owner_consent": p.update_authorized.is_required(),
            "update_priority": p.update_authorized.priority(),
            "minimum_battery_mwh": p.minimum_battery_mwh,
            "use_before": p.use_before,
        },
        "release_notes": notes,
        "verified": false,
    }))
}

/// A JSON value as `keyway inspect` prints it: `-` for null, a string
/// without quotes.
fn shown(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "-".to_string(),
        serde_json::Value::String(x) => x.clone(),
        other => other.to_string(),
    }
}

/// `template` as a line, each `{}` in it replaced by the next of `keys`'
/// values in `obj`, [`shown`].
fn filled(template: &str, obj: &serde_json::Value, keys: &[&str]) -> String {
    let mut parts = template.split("{}");
    let mut line = parts.next().unwrap_or_default().to_string();
    debug_assert_eq!(parts.clone().count(), keys.len(), "{template}");
    for (key, part) in keys.iter().zip(parts) {
        line += &shown(&obj[*key]);
        line += part;
    }
    line + "\n"
}

/// `keyway inspect` as text.
pub fn inspect_text(j: &serde_json::Value) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "UNVERIFIED contents (inspect checks structure and digests, not signatures; use `keyway verify`)"
    );
    s += &filled("sequence:        {}", j, &["sequence"]);
    s += &filled("version:         {}", j, &["version"]);
    s += &filled("manifest digest: {}", j, &["manifest_digest"]);
    if let Some(cs) = j["components"].as_array() {
        for (n, c) in cs.iter().enumerate() {
            let _ = write!(s, "component {n}:     ");
            s += &filled(
                "id {} vendor {} class {}",
                c,
                &["id", "vendor_id", "class_id"],
            );
            if !c["image_digest"].is_null() {
                let _ = writeln!(
                    s,
                    "                 image sha256 {} size {}{}",
                    shown(&c["image_digest"]),
                    shown(&c["image_size"]),
                    if c["fetched_from"].is_null() {
                        String::new()
                    } else {
                        format!(" from {}", shown(&c["fetched_from"]))
                    }
                );
            }
        }
    }
    if let Some(alts) = j["alternatives"].as_array() {
        for a in alts {
            s += &filled(
                "alternative:     slot {}: image sha256 {} size {} from {}",
                a,
                &["slot", "digest", "size", "uri"],
            );
        }
    }
    if let Some(sigs) = j["signatures"].as_array() {
        for sig in sigs {
            s += &filled(
                "signature:       COSE alg {} key id {}",
                sig,
                &["cose_alg", "key_id"],
            );
        }
    }
    let d = &j["delta"];
    if !d.is_null() {
        s += &filled(
            "delta:           payload is a Keyway patch (KWDP v1) for the installed image sha256 {} size {}",
            d,
            &["base_digest", "base_size"],
        );
        s += &filled(
            "                 it produces the image sha256 {} size {}",
            d,
            &["out_digest", "out_size"],
        );
    }
    s += &filled("key set:         {}", j, &["keyset_version"]);
    s += &filled(
        "conditions:      owner consent {}, priority {}, min battery {} mWh, use before {}",
        &j["conditions"],
        &[
            "owner_consent",
            "update_priority",
            "minimum_battery_mwh",
            "use_before",
        ],
    );
    let n = &j["release_notes"];
    if n.is_null() {
        let _ = writeln!(s, "release notes:   none");
    } else {
        let _ = writeln!(s, "release notes ({}):", shown(&n["language"]));
        for line in shown(&n["text"]).lines() {
            let _ = writeln!(s, "    {line}");
        }
        if let Some(cves) = n["cves"].as_array() {
            for cve in cves {
                s += &filled("fixes:           {} ({})", cve, &["id", "severity"]);
            }
        }
    }
    s
}
