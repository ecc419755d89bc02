//! Asset conditions: which updates of which assets start a run of a DAG scheduled on assets (Airflow's `&` and `|`
//! of assets).

use std::fmt;

use serde::{Deserialize, Serialize};

/// `schedule: {assets: ...}` as written: an asset URI, `{all: [...]}`, `{any: [...]}`, or a plain list, which means
/// all of it; the items of a list are conditions too, so they nest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum AssetCondition {
    Uri(String),
    List(Vec<AssetCondition>),
    All { all: Vec<AssetCondition> },
    Any { any: Vec<AssetCondition> },
}

impl AssetCondition {
    fn parts(&self) -> Option<(&[AssetCondition], bool)> {
        match self {
            AssetCondition::Uri(_) => None,
            AssetCondition::List(all) | AssetCondition::All { all } => Some((all, true)),
            AssetCondition::Any { any } => Some((any, false)),
        }
    }

    /// Every asset named, once each, in the order written.
    pub fn uris(&self) -> Vec<&str> {
        let mut uris = Vec::new();
        self.collect(&mut uris);
        uris
    }

    fn collect<'a>(&'a self, uris: &mut Vec<&'a str>) {
        match (self, self.parts()) {
            (AssetCondition::Uri(uri), _) if !uris.contains(&uri.as_str()) => uris.push(uri),
            (_, Some((items, _))) => items.iter().for_each(|c| c.collect(uris)),
            _ => {}
        }
    }

    /// Whether the condition holds when the assets for which `updated` is true have been updated.
    pub fn holds(&self, updated: &dyn Fn(&str) -> bool) -> bool {
        match (self, self.parts()) {
            (AssetCondition::Uri(uri), _) => updated(uri),
            (_, Some((items, true))) => items.iter().all(|c| c.holds(updated)),
            (_, Some((items, false))) => items.iter().any(|c| c.holds(updated)),
            (_, None) => false,
        }
    }

    /// Why the condition cannot be used, if it cannot: an empty list or URI.
    pub fn check(&self) -> Result<(), String> {
        match (self, self.parts()) {
            (AssetCondition::Uri(uri), _) if uri.trim().is_empty() => Err("an asset URI is empty".to_owned()),
            (_, Some(([], _))) => Err("a list of assets is empty".to_owned()),
            (_, Some((items, _))) => items.iter().try_for_each(AssetCondition::check),
            _ => Ok(()),
        }
    }
}

/// Airflow's notation: `a & (b | c)`.
impl fmt::Display for AssetCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (items, all) = match (self, self.parts()) {
            (AssetCondition::Uri(uri), _) => return f.write_str(uri),
            (_, Some(parts)) => parts,
            (_, None) => return Ok(()),
        };
        let nested = |c: &AssetCondition| c.parts().is_some_and(|(items, _)| items.len() > 1);
        let texts: Vec<String> =
            items.iter().map(|c| if nested(c) { format!("({c})") } else { c.to_string() }).collect();
        f.write_str(&texts.join(if all { " & " } else { " | " }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(json: &str) -> AssetCondition {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
    }

    #[test]
    fn all_any_and_plain_lists_nest() {
        let rows: &[(&str, &[&str], bool)] = &[
            (r#"["a", "b"]"#, &[], false),
            (r#"["a", "b"]"#, &["a"], false),
            (r#"["a", "b"]"#, &["a", "b"], true),
            (r#"{"all": ["a", "b"]}"#, &["b", "a"], true),
            (r#"{"any": ["a", "b"]}"#, &["b"], true),
            (r#"{"any": ["a", "b"]}"#, &[], false),
            (r#"{"all": ["a", {"any": ["b", "c"]}]}"#, &["a", "c"], true),
            (r#"{"all": ["a", {"any": ["b", "c"]}]}"#, &["b", "c"], false),
            (r#"{"any": ["a", ["b", "c"]]}"#, &["b"], false),
            (r#"{"any": ["a", ["b", "c"]]}"#, &["c", "b"], true),
            (r#""a""#, &["a"], true),
        ];
        for (json, updated, holds) in rows {
            let c = condition(json);
            assert_eq!(c.holds(&|uri| updated.contains(&uri)), *holds, "{json} after {updated:?}");
        }
    }

    #[test]
    fn uris_summary_and_checks() {
        let c = condition(r#"{"all": ["s3://x/a", {"any": ["b", "c", "s3://x/a"]}]}"#);
        assert_eq!(c.uris(), ["s3://x/a", "b", "c"]);
        assert_eq!(c.to_string(), "s3://x/a & (b | c | s3://x/a)");
        assert_eq!(condition(r#"["a"]"#).to_string(), "a");
        assert_eq!(condition(r#"["a", "b"]"#).to_string(), "a & b");
        assert!(c.check().is_ok());
        assert_eq!(condition(r#"{"any": []}"#).check(), Err("a list of assets is empty".to_owned()));
        assert_eq!(condition(r#"["a", {"all": [" "]}]"#).check(), Err("an asset URI is empty".to_owned()));
        assert!(serde_json::from_str::<AssetCondition>(r#"{"all": ["a"], "any": ["b"]}"#).is_err());
        assert!(serde_json::from_str::<AssetCondition>(r#"{"some": ["a"]}"#).is_err());
    }
}
