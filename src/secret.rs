//! Secrets: an API key that never shows itself, and text scrubbed of keys.
//!
//! `ApiKey` is the only way a key travels through callvault. Its `Debug` and `Display` print
//! `***`, so a key cannot reach a log line, an error message or the archive by accident; the
//! raw text is handed out only to build the one HTTP header that needs it. Text callvault did
//! not write itself (a provider's error message, which may echo the key it refused) goes
//! through `redact` before it is stored or printed: every key this process read, and anything
//! shaped like a key, becomes `***`.

use std::fmt;
use std::sync::{Mutex, OnceLock};

/// What replaces a secret in text.
const MASK: &str = "***";

/// Prefixes that mark a token as a key whatever its provider (`sk-`, `sk_car_`, ...).
const KEY_PREFIXES: [&str; 5] = ["sk-", "sk_", "pk_", "rk_", "key_"];

/// Shorter tokens with a key's prefix are words, not keys.
const MIN_KEY_LEN: usize = 12;

/// Every key this process read, so text can be scrubbed of them.
fn known_keys() -> &'static Mutex<Vec<String>> {
    static KEYS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    KEYS.get_or_init(|| Mutex::new(Vec::new()))
}

fn remember(key: &str) {
    if key.len() >= 4 {
        let mut keys = known_keys().lock().unwrap_or_else(|e| e.into_inner());
        if !keys.iter().any(|k| k == key) {
            keys.push(key.to_string());
        }
    }
}

/// `text` with every key this process read, every `Bearer` token and every token shaped like
/// a key replaced by `***`.
pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    {
        let keys = known_keys().lock().unwrap_or_else(|e| e.into_inner());
        for key in keys.iter() {
            out = out.replace(key.as_str(), MASK);
        }
    }
    let mut words: Vec<String> = Vec::new();
    let mut after_bearer = false;
    for word in out.split_inclusive(|c: char| c.is_whitespace() || "\"',;()[]{}=:".contains(c)) {
        let token =
            word.trim_end_matches(|c: char| c.is_whitespace() || "\"',;()[]{}=:".contains(c));
        let tail = &word[token.len()..];
        let shaped = token.len() >= MIN_KEY_LEN
            && KEY_PREFIXES
                .iter()
                .any(|p| token.to_ascii_lowercase().starts_with(p));
        if (after_bearer && !token.is_empty()) || shaped {
            words.push(format!("{MASK}{tail}"));
        } else {
            words.push(word.to_string());
        }
        if !token.is_empty() {
            after_bearer = token.eq_ignore_ascii_case("bearer");
        }
    }
    words.concat()
}

#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        let key = key.into();
        remember(&key);
        ApiKey(key)
    }

    /// Reads a key from the environment variable `var`.
    pub fn from_env(var: &str) -> Result<Self, MissingKey> {
        match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(ApiKey::new(v.trim())),
            _ => Err(MissingKey {
                var: var.to_string(),
            }),
        }
    }

    /// The key's text, for building an authentication header and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the environment variable {} is not set; it must hold the API key", shown_variable(.var))]
pub struct MissingKey {
    pub var: String,
}

/// A variable's name as an error shows it: not at all when it looks like a key pasted where
/// the name belongs.
fn shown_variable(var: &str) -> &str {
    let plausible = !var.is_empty()
        && var.len() <= 64
        && var
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && redact(var) == var;
    if plausible {
        var
    } else {
        "named for the key (its name is not shown: it looks like a key itself)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_never_formats_itself() {
        let key = ApiKey::new("sk-very-secret");
        assert_eq!(format!("{key}"), "***");
        assert!(!format!("{key:?}").contains("secret"));
        assert_eq!(key.expose(), "sk-very-secret");
    }

    #[test]
    fn text_loses_every_key_it_holds() {
        let _key = ApiKey::new("plainkey1234");
        let text = r#"{"detail":"key plainkey1234 is invalid"} Authorization: Bearer abc.def sk_car_0123456789abcdef, call 3f2a"#;
        let clean = redact(text);
        assert!(!clean.contains("plainkey1234"), "{clean}");
        assert!(!clean.contains("abc.def"), "{clean}");
        assert!(!clean.contains("sk_car_0123456789abcdef"), "{clean}");
        assert!(
            clean.contains("call 3f2a") && clean.contains("is invalid"),
            "{clean}"
        );
        assert_eq!(redact("sk-ip is short"), "sk-ip is short");
        let pasted = MissingKey {
            var: "sk-live-0123456789abcdef".into(),
        };
        assert!(!pasted.to_string().contains("0123456789"), "{pasted}");
        let named = MissingKey {
            var: "CARTESIA_API_KEY".into(),
        };
        assert!(named.to_string().contains("CARTESIA_API_KEY"));
    }
}
