//! `params:` entries (Airflow's `Param`), with the bare-value shorthand.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// A run parameter (Airflow's `Param`): a default and an optional JSON-schema-like check. A bare scalar or list is
/// shorthand for `{default: value}` (an object default needs the full form).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ParamSpec {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    #[serde(rename = "enum", skip_serializing_if = "Option::is_none")]
    pub r#enum: Option<Vec<serde_json::Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The accepted values of `ParamSpec::type`.
pub const PARAM_TYPES: [&str; 6] = ["string", "number", "integer", "boolean", "array", "object"];

/// The mapping form of [`ParamSpec`], derived so that unknown keys are reported by name.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ParamFields {
    #[serde(default, rename = "type")]
    r#type: Option<String>,
    // Not `Option<Value>`: an explicit `default: null` is a default of null, not a missing default.
    #[serde(default, deserialize_with = "present")]
    default: Option<serde_json::Value>,
    #[serde(default, rename = "enum")]
    r#enum: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    minimum: Option<f64>,
    #[serde(default)]
    maximum: Option<f64>,
    #[serde(default)]
    description: Option<String>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

impl<'de> Deserialize<'de> for ParamSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ParamVisitor)
    }
}

struct ParamVisitor;

impl<'de> Visitor<'de> for ParamVisitor {
    type Value = ParamSpec;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a default value or a mapping with type/default/enum/minimum/maximum/description")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ParamSpec, A::Error> {
        let f = ParamFields::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(ParamSpec {
            r#type: f.r#type,
            default: f.default,
            r#enum: f.r#enum,
            minimum: f.minimum,
            maximum: f.maximum,
            description: f.description,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ParamSpec, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<serde_json::Value>()? {
            items.push(item);
        }
        Ok(shorthand(serde_json::Value::Array(items)))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<ParamSpec, E> {
        Ok(shorthand(v.into()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ParamSpec, E> {
        Ok(shorthand(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<ParamSpec, E> {
        Ok(shorthand(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<ParamSpec, E> {
        Ok(shorthand(v.into()))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<ParamSpec, E> {
        Ok(shorthand(v.into()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<ParamSpec, E> {
        Ok(shorthand(serde_json::Value::Null))
    }
    fn visit_none<E: de::Error>(self) -> Result<ParamSpec, E> {
        Ok(shorthand(serde_json::Value::Null))
    }
}

fn shorthand(default: serde_json::Value) -> ParamSpec {
    ParamSpec { default: Some(default), ..ParamSpec::default() }
}
