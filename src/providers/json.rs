//! Lenient reading of provider JSON.
//!
//! Providers add fields, drop them, send `null`, and now and then send a number as a string.
//! None of that may break a sync: every getter here answers `None` for a missing, null or
//! unusable value instead of failing, and the raw record is kept whole beside the typed
//! columns, so nothing is lost when a getter gives up.

use serde_json::{Map, Value};

/// A JSON object to read fields from.
#[derive(Clone, Copy)]
pub struct Fields<'a>(pub &'a Map<String, Value>);

static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

impl<'a> Fields<'a> {
    /// The object `value` holds; an empty one for anything else.
    pub fn of(value: &'a Value) -> Self {
        match value {
            Value::Object(map) => Fields(map),
            _ => Fields(&EMPTY),
        }
    }

    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    /// A nested object (an empty one when absent).
    pub fn object(&self, key: &str) -> Fields<'a> {
        self.get(key).map(Fields::of).unwrap_or(Fields(&EMPTY))
    }

    /// Text; numbers and booleans are written out.
    pub fn text(&self, key: &str) -> Option<String> {
        match self.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    pub fn float(&self, key: &str) -> Option<f64> {
        match self.get(key)? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .filter(|f| f.is_finite())
    }

    /// An integer; a float is rounded.
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.get(key)? {
            Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f.round() as i64)),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    pub fn boolean(&self, key: &str) -> Option<bool> {
        match self.get(key)? {
            Value::Bool(b) => Some(*b),
            Value::Number(n) => n.as_i64().map(|i| i != 0),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Some(true),
                "false" | "0" | "no" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    /// Any non-null value as compact JSON text.
    pub fn json(&self, key: &str) -> Option<String> {
        self.get(key).map(|v| v.to_string())
    }

    /// The elements of an array (none when absent or not an array).
    pub fn array(&self, key: &str) -> &'a [Value] {
        match self.get(key) {
            Some(Value::Array(items)) => items,
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn getters_never_fail_on_odd_values() {
        let v = json!({"a": "12", "b": 3.6, "c": null, "d": [1], "e": "true", "f": {"x": 1}});
        let f = Fields::of(&v);
        assert_eq!(f.int("a"), Some(12));
        assert_eq!(f.int("b"), Some(4));
        assert_eq!(f.float("c"), None);
        assert_eq!(f.text("d"), None);
        assert_eq!(f.boolean("e"), Some(true));
        assert_eq!(f.json("f").as_deref(), Some(r#"{"x":1}"#));
        assert_eq!(f.array("missing").len(), 0);
        assert_eq!(f.object("f").int("x"), Some(1));
        assert_eq!(Fields::of(&json!([1, 2])).text("a"), None);
    }
}
