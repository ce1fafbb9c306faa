//! JSON whose objects name each key once. `serde_json`'s `Value` keeps the
//! last of two equal keys; another reader of the same signed body might keep
//! the first, so a body with a key twice means two things, and is refused
//! (as a form with a key twice is).

use std::fmt;

use serde::de::{Deserialize, Deserializer, Error, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// What [`parse`] refuses, by position only (never the input's text).
pub(crate) struct Refused {
    pub line: usize,
    pub column: usize,
    pub duplicate: bool,
}

/// Parses `bytes` as JSON, refusing an object that names a key twice.
pub(crate) fn parse(bytes: &[u8]) -> Result<Value, Refused> {
    serde_json::from_slice::<Unique>(bytes)
        .map(|u| u.0)
        .map_err(|e| Refused {
            line: e.line(),
            column: e.column(),
            // Only the visitor below raises errors of data.
            duplicate: e.is_data(),
        })
}

struct Unique(Value);

impl<'de> Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueVisitor).map(Unique)
    }
}

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Unique::deserialize(d).map(|u| u.0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Unique(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(A::Error::custom("a key appears twice"));
            }
            let Unique(v) = map.next_value()?;
            object.insert(key, v);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::parse;
    use serde_json::json;

    #[test]
    fn values_parse_as_serde_json_parses_them() {
        let text = r#"{"a":[1,-2,3.5,true,null,"x"],"b":{"c":{}},"amount":{"total":7000}}"#;
        assert_eq!(
            parse(text.as_bytes()).ok(),
            serde_json::from_str::<serde_json::Value>(text).ok()
        );
        assert_eq!(parse(b"[]").ok(), Some(json!([])));
    }

    #[test]
    fn a_key_twice_is_refused_at_any_depth() {
        for text in [
            r#"{"amount":"1","amount":"2"}"#,
            r#"{"a":{"total":1,"total":1}}"#,
            r#"[{"k":1},{"k":1,"k":2}]"#,
        ] {
            let refused = parse(text.as_bytes()).expect_err(text);
            assert!(refused.duplicate, "{text}");
            assert_eq!(refused.line, 1);
        }
        let syntax = parse(b"{\"a\": }").expect_err("syntax");
        assert!(!syntax.duplicate);
    }
}
