//! Answer bodies as JSON (`keyway device --json`): byte strings as hex
//! text, map keys as text.

use ciborium::Value;

use super::Map;

/// A CBOR value as JSON: byte strings as hex text, other keys as text.
pub fn to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as JsonValue;
    match v {
        Value::Integer(i) => {
            let i = i128::from(*i);
            i64::try_from(i)
                .map(JsonValue::from)
                .or_else(|_| u64::try_from(i).map(JsonValue::from))
                .unwrap_or(JsonValue::Null)
        }
        Value::Bytes(b) => JsonValue::String(keyway_vendor::keys::hex(b)),
        Value::Float(f) => {
            serde_json::Number::from_f64(*f).map_or(JsonValue::Null, JsonValue::Number)
        }
        Value::Text(t) => JsonValue::String(t.clone()),
        Value::Bool(b) => JsonValue::Bool(*b),
        Value::Null => JsonValue::Null,
        Value::Tag(_, v) => to_json(v),
        Value::Array(a) => JsonValue::Array(a.iter().map(to_json).collect()),
        Value::Map(m) => map_to_json(m),
        _ => JsonValue::Null,
    }
}

/// A body map as a JSON object.
pub fn map_to_json(m: &Map) -> serde_json::Value {
    serde_json::Value::Object(
        m.iter()
            .map(|(k, v)| {
                let key = match k {
                    Value::Text(t) => t.clone(),
                    other => to_json(other).to_string(),
                };
                (key, to_json(v))
            })
            .collect(),
    )
}
