//! `params:` entries (Airflow's `Param`), with the bare-value shorthand.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// A run parameter (Airflow's `Param`): a default, a description, and a JSON Schema (draft 2020-12, formats
/// checked, as Airflow's `Param` validates with `jsonschema`) that every value given at trigger time must match. A
/// bare scalar or list is shorthand for `{default: value}` (an object default needs the full form).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ParamSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Every other key of the mapping: `type`, `enum`, `minimum`, `pattern`, `items`, `properties`, ...
    #[serde(flatten)]
    pub schema: serde_json::Map<String, serde_json::Value>,
}

/// The simple types of JSON Schema, what `type` names (alone or in a list).
const PARAM_TYPES: [&str; 7] = ["string", "number", "integer", "boolean", "array", "object", "null"];

/// The keywords a param's schema may use: JSON Schema 2020-12's, and the annotations Airflow's trigger form reads.
/// A key outside this list is refused, so that a misspelt `minimum` is not silently ignored as JSON Schema would.
const SCHEMA_KEYWORDS: [&str; 57] = [
    "type",
    "enum",
    "const",
    "multipleOf",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "format",
    "items",
    "prefixItems",
    "contains",
    "maxContains",
    "minContains",
    "maxItems",
    "minItems",
    "uniqueItems",
    "unevaluatedItems",
    "maxProperties",
    "minProperties",
    "required",
    "properties",
    "patternProperties",
    "additionalProperties",
    "unevaluatedProperties",
    "propertyNames",
    "dependentRequired",
    "dependentSchemas",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "if",
    "then",
    "else",
    "$ref",
    "$defs",
    "definitions",
    "$schema",
    "$id",
    "$anchor",
    "$comment",
    "title",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "contentMediaType",
    "contentEncoding",
    "contentSchema",
    "description_md",
    "section",
    "values_display",
    "custom_html_form",
];

impl ParamSpec {
    /// The schema, compiled: an invalid schema (a misspelt `type`, `minimum: ten`) is an error saying why.
    pub fn validator(&self) -> Result<jsonschema::Validator, String> {
        if let Some(unknown) = types(&self.schema).into_iter().find(|t| !PARAM_TYPES.contains(t)) {
            return Err(format!(
                "unknown type {unknown:?}{} (expected one of {})",
                crate::load::suggest::hint(unknown, PARAM_TYPES),
                PARAM_TYPES.join(", ")
            ));
        }
        let schema = serde_json::Value::Object(self.schema.clone());
        jsonschema::options().should_validate_formats(true).build(&schema).map_err(|e| format!("invalid schema: {e}"))
    }

    /// Check `value` against the schema of param `name`; the error names the param and, inside an object or a
    /// list, where the value failed.
    pub fn check(&self, name: &str, value: &serde_json::Value) -> Result<(), String> {
        let validator = self.validator().map_err(|e| format!("param `{name}`: {e}"))?;
        check_with(&validator, name, value)
    }
}

/// [`ParamSpec::check`] with the schema compiled already.
pub(crate) fn check_with(
    validator: &jsonschema::Validator,
    name: &str,
    value: &serde_json::Value,
) -> Result<(), String> {
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| match e.instance_path().to_string() {
            at if at.is_empty() => format!("param `{name}`: {e}"),
            at => format!("param `{name}` at {at}: {e}"),
        })
        .collect();
    if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
}

/// The type names in a schema's `type`, whether one name or a list.
fn types(schema: &serde_json::Map<String, serde_json::Value>) -> Vec<&str> {
    match schema.get("type") {
        Some(serde_json::Value::String(t)) => vec![t.as_str()],
        Some(serde_json::Value::Array(list)) => list.iter().filter_map(serde_json::Value::as_str).collect(),
        _ => Vec::new(),
    }
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
        f.write_str("a default value, or a mapping of default, description and JSON Schema keywords")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ParamSpec, A::Error> {
        let mut param = ParamSpec::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                // An explicit `default: null` is a default of null, not a missing default.
                "default" => param.default = Some(map.next_value()?),
                "description" => param.description = map.next_value()?,
                keyword if SCHEMA_KEYWORDS.contains(&keyword) => {
                    param.schema.insert(key, map.next_value()?);
                }
                unknown => {
                    return Err(de::Error::custom(format!(
                        "unknown key `{unknown}` in a param{} (`default`, `description`, or a JSON Schema keyword)",
                        crate::load::suggest::hint(unknown, SCHEMA_KEYWORDS)
                    )));
                }
            }
        }
        Ok(param)
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
