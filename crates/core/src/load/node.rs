//! A YAML document as a tree of located nodes, and a serde `Deserializer` over it that reports where it failed.
//!
//! serde-saphyr parses the YAML (anchors, merges, duplicate keys) and gives each node its location through
//! `Spanned`. Deserialising the spec types from this tree instead of from the text lets [`crate::load`] deserialise
//! each part of the file on its own (so one file reports every bad task, not only the first), and lets semantic checks
//! point at the exact node they complain about, found by path.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, Visitor};
use serde_saphyr::Spanned;

/// 1-based line and column; (0, 0) when unknown.
pub(crate) type Loc = (usize, usize);

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub loc: Loc,
    pub kind: Kind,
    /// For numbers and booleans, the text as written, so that `3.10` read as a string stays "3.10".
    pub raw: Option<String>,
    /// Byte range of the node's definition in the source, used to fill `raw`.
    pub span: Option<(usize, usize)>,
}

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// One step of a path into the tree.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

impl Node {
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value under a string key of a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    /// The key node and value node of a string key of a mapping.
    pub fn entry(&self, key: &str) -> Option<(&Node, &Node)> {
        match &self.kind {
            Kind::Map(entries) => entries.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(k, v)| (k, v)),
            _ => None,
        }
    }

    /// The node at `path`, or the deepest node on the way there when the path goes further than the tree.
    pub fn find(&self, path: &[Seg<'_>]) -> &Node {
        let mut node = self;
        for seg in path {
            let next = match (seg, &node.kind) {
                (Seg::Key(key), Kind::Map(_)) => node.get(key),
                (Seg::Index(i), Kind::Seq(items)) => items.get(*i),
                _ => None,
            };
            match next {
                Some(next) => node = next,
                None => break,
            }
        }
        node
    }
}

/// Parse a YAML document into a located tree.
/// How deep mappings and lists may nest. Each level costs the deserialiser tens of KiB of stack in a debug build (a
/// mapping in a mapping about 40), so serde-saphyr's default of 64 overflows a 2 MiB thread stack, which aborts the
/// process instead of failing the file. DAG files nest a dozen levels at most (a param's JSON Schema is the deepest).
pub(crate) const MAX_DEPTH: usize = 32;

pub(crate) fn parse(source: &str) -> Result<Node, serde_saphyr::Error> {
    let mut options = serde_saphyr::Options::default();
    // YAML 1.2 booleans only: `n`, `no`, `on` and `yes` stay strings (the "Norway problem").
    options.strict_booleans = true;
    let mut budget = options.budget.take().unwrap_or_default();
    budget.max_depth = MAX_DEPTH;
    options.budget = Some(budget);
    let mut root: Node = serde_saphyr::from_str_with_options(source, options)?;
    fill_raw(&mut root, source);
    Ok(root)
}

fn fill_raw(node: &mut Node, source: &str) {
    match &mut node.kind {
        Kind::Bool(_) | Kind::Int(_) | Kind::UInt(_) | Kind::Float(_) => {
            node.raw = node
                .span
                .and_then(|(start, len)| source.get(start..start + len))
                .map(|text| text.trim().to_owned())
                .filter(|text| !text.is_empty() && !text.starts_with(['*', '!', '&']));
        }
        Kind::Seq(items) => items.iter_mut().for_each(|n| fill_raw(n, source)),
        Kind::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
            fill_raw(k, source);
            fill_raw(v, source);
        }),
        Kind::Null | Kind::Str(_) => {}
    }
}

fn loc_of<T>(s: &Spanned<T>) -> Loc {
    let loc = s.referenced;
    (usize::try_from(loc.line()).unwrap_or(0), usize::try_from(loc.column()).unwrap_or(0))
}

/// Converts the located error of a failed saphyr parse.
pub(crate) fn saphyr_error_loc(err: &serde_saphyr::Error) -> Loc {
    err.location()
        .map_or((1, 1), |loc| (usize::try_from(loc.line()).unwrap_or(1), usize::try_from(loc.column()).unwrap_or(1)))
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Kind>::deserialize(d)?;
        let span = spanned.defined.span();
        let span = span
            .byte_offset()
            .zip(span.byte_len())
            .and_then(|(start, len)| Some((usize::try_from(start).ok()?, usize::try_from(len).ok()?)));
        Ok(Node { loc: loc_of(&spanned), kind: spanned.value, raw: None, span })
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(KindVisitor)
    }
}

struct KindVisitor;

impl<'de> Visitor<'de> for KindVisitor {
    type Value = Kind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Kind, E> {
        Ok(Kind::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Kind, E> {
        Ok(Kind::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Kind, E> {
        Ok(Kind::UInt(v))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Kind, E> {
        i64::try_from(v).map(Kind::Int).map_err(|_| E::custom(format!("integer {v} is too large")))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Kind, E> {
        u64::try_from(v).map(Kind::UInt).map_err(|_| E::custom(format!("integer {v} is too large")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Kind, E> {
        Ok(Kind::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Kind, E> {
        Ok(Kind::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Kind, E> {
        Ok(Kind::Str(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Kind, D::Error> {
        Kind::deserialize(d)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Kind, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Kind::Seq(items))
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Kind, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<Node, Node>()? {
            entries.push(entry);
        }
        Ok(Kind::Map(entries))
    }
}

/// An error from deserialising a node, with the location of the innermost node it arose in.
#[derive(Debug, Clone)]
pub(crate) struct NodeError {
    pub message: String,
    pub loc: Option<Loc>,
    /// Index of the mapping entry the error passed through, innermost mapping first: the last one is the entry of the
    /// outermost mapping.
    entries: Vec<usize>,
}

impl NodeError {
    fn at(mut self, loc: Loc) -> NodeError {
        self.loc.get_or_insert(loc);
        self
    }
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for NodeError {}

impl de::Error for NodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        NodeError { message: msg.to_string(), loc: None, entries: Vec::new() }
    }

    // The two errors below are the ones users hit with typos, so they get a "did you mean" instead of serde's list.
    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        Self::custom(format!("unknown field `{field}`{}", super::suggest::hint(field, expected.iter().copied())))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        Self::custom(format!(
            "unknown value `{variant}`{} (expected one of {})",
            super::suggest::hint(variant, expected.iter().copied()),
            expected.join(", ")
        ))
    }
}

/// Deserialises spec types from a node. Scalars are read as strings where a string is wanted (`PORT: 8080` in an env
/// map is the string "8080"), as YAML users expect.
#[derive(Clone, Copy)]
pub(crate) struct NodeDe<'a>(pub &'a Node);

impl<'de> Deserializer<'de> for NodeDe<'_> {
    type Error = NodeError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, NodeError> {
        let node = self.0;
        let result = match &node.kind {
            Kind::Null => v.visit_unit(),
            Kind::Bool(b) => v.visit_bool(*b),
            Kind::Int(i) => v.visit_i64(*i),
            Kind::UInt(u) => v.visit_u64(*u),
            Kind::Float(f) => v.visit_f64(*f),
            Kind::Str(s) => v.visit_str(s),
            Kind::Seq(items) => v.visit_seq(SeqAccess(items.iter())),
            Kind::Map(entries) => v.visit_map(MapAccess { entries: entries.iter(), value: None, index: 0 }),
        };
        result.map_err(|e| e.at(node.loc))
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, NodeError> {
        match self.0.kind {
            Kind::Null => v.visit_none(),
            _ => v.visit_some(self),
        }
        .map_err(|e| e.at(self.0.loc))
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, NodeError> {
        let text = match &self.0.kind {
            _ if self.0.raw.is_some() => self.0.raw.clone().unwrap_or_default(),
            Kind::Bool(b) => b.to_string(),
            Kind::Int(i) => i.to_string(),
            Kind::UInt(u) => u.to_string(),
            Kind::Float(f) => f.to_string(),
            _ => return self.deserialize_any(v),
        };
        v.visit_string(text).map_err(|e: NodeError| e.at(self.0.loc))
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, NodeError> {
        self.deserialize_str(v)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, NodeError> {
        match &self.0.kind {
            // Unit variants (trigger rules) are written as plain strings.
            Kind::Str(s) => v.visit_enum(s.as_str().into_deserializer()).map_err(|e: NodeError| e.at(self.0.loc)),
            // Variants with data (transform steps) are a mapping of one entry: `- one_hot: {columns: [a]}`.
            Kind::Map(entries) if entries.len() == 1 => {
                let (key, value) = &entries[0];
                v.visit_enum(EnumAccess { key, value }).map_err(|e| e.at(self.0.loc))
            }
            _ => self.deserialize_any(v),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, v: V) -> Result<V::Value, NodeError> {
        v.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf unit unit_struct seq tuple
        tuple_struct map struct identifier ignored_any
    }
}

/// The variant name (the key) and its data (the value) of an enum written as a one-entry mapping.
struct EnumAccess<'a> {
    key: &'a Node,
    value: &'a Node,
}

impl<'de, 'a> de::EnumAccess<'de> for EnumAccess<'a> {
    type Error = NodeError;
    type Variant = NodeDe<'a>;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, NodeDe<'a>), NodeError> {
        let variant = seed.deserialize(NodeDe(self.key)).map_err(|e| e.at(self.key.loc))?;
        Ok((variant, NodeDe(self.value)))
    }
}

impl<'de> de::VariantAccess<'de> for NodeDe<'_> {
    type Error = NodeError;

    fn unit_variant(self) -> Result<(), NodeError> {
        match self.0.kind {
            Kind::Null => Ok(()),
            _ => Err(<NodeError as de::Error>::custom("this value takes no settings").at(self.0.loc)),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, NodeError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, v: V) -> Result<V::Value, NodeError> {
        self.deserialize_any(v)
    }

    fn struct_variant<V: Visitor<'de>>(self, _fields: &'static [&'static str], v: V) -> Result<V::Value, NodeError> {
        self.deserialize_any(v)
    }
}

struct SeqAccess<'a>(std::slice::Iter<'a, Node>);

impl<'de> de::SeqAccess<'de> for SeqAccess<'_> {
    type Error = NodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, NodeError> {
        self.0.next().map(|node| seed.deserialize(NodeDe(node))).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct MapAccess<'a> {
    entries: std::slice::Iter<'a, (Node, Node)>,
    value: Option<&'a Node>,
    /// Index of the entry being read.
    index: usize,
}

impl MapAccess<'_> {
    fn mark(&self, mut e: NodeError) -> NodeError {
        e.entries.push(self.index);
        e
    }
}

impl<'de> de::MapAccess<'de> for MapAccess<'_> {
    type Error = NodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, NodeError> {
        match self.entries.next() {
            Some((key, value)) => {
                self.value = Some(value);
                seed.deserialize(NodeDe(key)).map(Some).map_err(|e| self.mark(e))
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, NodeError> {
        match self.value.take() {
            Some(value) => {
                let result = seed.deserialize(NodeDe(value)).map_err(|e| self.mark(e));
                self.index += 1;
                result
            }
            None => Err(de::Error::custom("value requested before key")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// What [`deserialize_collecting`] could read.
pub(crate) struct Partial<T> {
    /// The value, read without the `dropped` entries; None when even that failed.
    pub value: Option<T>,
    /// Keys of the entries that had errors and were left out.
    pub dropped: Vec<String>,
    /// Whether any error was found (the value is then only good for further checks, not for use).
    pub failed: bool,
}

/// Deserialise `T` from a mapping node, collecting errors: when an error lies inside one entry, that entry is
/// dropped and deserialisation is tried again, so that one pass reports every bad field of the mapping.
pub(crate) fn deserialize_collecting<T: de::DeserializeOwned>(node: &Node, errors: &mut Vec<NodeError>) -> Partial<T> {
    let mut partial = Partial { value: None, dropped: Vec::new(), failed: false };
    let Kind::Map(entries) = &node.kind else {
        match T::deserialize(NodeDe(node)) {
            Ok(value) => partial.value = Some(value),
            Err(e) => {
                errors.push(e.at(node.loc));
                partial.failed = true;
            }
        }
        return partial;
    };
    let mut entries = entries.clone();
    // Each retry drops one entry, so this ends; the bound only guards against a bug looping forever.
    for _ in 0..=entries.len() {
        let attempt = Node { kind: Kind::Map(entries.clone()), ..node.clone() };
        match T::deserialize(NodeDe(&attempt)) {
            Ok(value) => {
                partial.value = Some(value);
                return partial;
            }
            Err(e) => {
                // An error of the mapping itself (a missing field) belongs to no entry and ends the retries.
                let holder = e.entries.last().copied();
                errors.push(e.at(node.loc));
                partial.failed = true;
                match holder {
                    Some(i) if i < entries.len() => {
                        let (key, _) = entries.remove(i);
                        partial.dropped.push(key.as_str().unwrap_or_default().to_owned());
                    }
                    _ => return partial,
                }
            }
        }
    }
    partial
}
