//! Secrets: an API key that never shows itself.
//!
//! `ApiKey` is the only way a key travels through callvault. Its `Debug` and `Display` print
//! `***`, so a key cannot reach a log line, an error message or the archive by accident; the
//! raw text is handed out only to build the one HTTP header that needs it.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }

    /// Reads a key from the environment variable `var`.
    pub fn from_env(var: &str) -> Result<Self, MissingKey> {
        match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(ApiKey(v.trim().to_string())),
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
#[error("the environment variable {var} is not set; it must hold the API key")]
pub struct MissingKey {
    pub var: String,
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
}
