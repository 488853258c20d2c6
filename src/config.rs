//! `callvault.toml`: the sources a plain `callvault sync` syncs.
//!
//! ```toml
//! [[source]]
//! provider = "bluejay"
//! account = "production"                   # optional: the account's name (default "default")
//! agents = ["agent-1", "agent-2"]          # optional: every agent (or the whole account)
//! base_url = "https://api.getbluejay.ai"   # optional
//! label = "production"                     # optional: Bluejay's label filter
//! key_env = "BLUEJAY_PROD_API_KEY"         # optional: the variable that holds the key
//! ```
//!
//! The file names the environment variable that holds a key, never the key itself: a key
//! written into it is refused with an error that says where keys belong, and `key_env` must
//! name a variable meant for a key (ending in `_KEY`), so a planted file cannot send, say,
//! `GITHUB_TOKEN` to a provider.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::providers::ProviderKind;

/// The file's name, looked for next to the archive unless `--config` names another.
pub const CONFIG_FILE: &str = "callvault.toml";

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default, rename = "source")]
    pub sources: Vec<SourceConfig>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub provider: ProviderKind,
    pub account: Option<String>,
    /// `None`: every agent the account has (or the whole account).
    pub agents: Option<Vec<String>>,
    pub base_url: Option<String>,
    pub label: Option<String>,
    pub key_env: Option<String>,
}

/// The account name a source has when none is given.
pub const DEFAULT_ACCOUNT: &str = "default";

impl SourceConfig {
    pub fn key_env(&self) -> &str {
        self.key_env
            .as_deref()
            .unwrap_or_else(|| self.provider.key_env())
    }

    pub fn account(&self) -> &str {
        self.account.as_deref().unwrap_or(DEFAULT_ACCOUNT)
    }
}

/// Whether `name` may hold an API key: a variable name ending in `_KEY`.
pub fn is_key_variable(name: &str) -> bool {
    name.ends_with("_KEY")
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{path}: API keys never go in the config file; put the key in an environment variable and name it with `key_env`")]
    KeyInFile { path: PathBuf },
}

impl Config {
    /// Reads the config at `path`; `None` when there is no such file.
    pub fn load(path: &Path) -> Result<Option<Config>, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        Self::parse(&text, path).map(Some)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: e.message().to_string(),
        })?;
        let has_key = raw
            .get("source")
            .and_then(|s| s.as_array())
            .is_some_and(|sources| {
                sources.iter().any(|s| {
                    s.as_table().is_some_and(|t| {
                        t.keys()
                            .any(|k| matches!(k.as_str(), "api_key" | "key" | "token"))
                    })
                })
            });
        if has_key {
            return Err(ConfigError::KeyInFile {
                path: path.to_path_buf(),
            });
        }
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: e.message().to_string(),
        })?;
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        for source in &config.sources {
            if source.agents.as_ref().is_some_and(Vec::is_empty) {
                return Err(invalid(format!(
                    "the {} source lists no agents; leave `agents` out to sync every agent",
                    source.provider
                )));
            }
            if let Some(agent) = source.agents.iter().flatten().find(|a| a.trim().is_empty()) {
                return Err(invalid(format!(
                    "the {} source lists an empty agent id {agent:?}",
                    source.provider
                )));
            }
            if let Some(var) = &source.key_env {
                if !is_key_variable(var) {
                    // The value is not shown: a key pasted here by mistake must not be printed.
                    return Err(invalid(format!(
                        "the {} source's key_env must name an environment variable ending in _KEY (like {})",
                        source.provider,
                        source.provider.key_env()
                    )));
                }
            }
            if let Some(url) = &source.base_url {
                crate::providers::http::check_base_url(url).map_err(|e| {
                    invalid(format!("the {} source's base_url: {e}", source.provider))
                })?;
            }
            if source.account.as_ref().is_some_and(|a| a.trim().is_empty()) {
                return Err(invalid(format!(
                    "the {} source has an empty account name",
                    source.provider
                )));
            }
        }
        let mut names = std::collections::HashSet::new();
        for source in &config.sources {
            let base = source
                .base_url
                .as_deref()
                .unwrap_or(source.provider.default_base_url());
            if !names.insert((
                source.provider,
                source.account(),
                base.trim_end_matches('/'),
            )) {
                return Err(invalid(format!(
                    "two {} sources are both account '{}' at {base}; give one an `account` name",
                    source.provider,
                    source.account()
                )));
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sources_and_refuses_keys() {
        let path = Path::new("callvault.toml");
        let ok = Config::parse(
            "[[source]]\nprovider = \"bluejay\"\nagents = [\"a\", \"b\"]\nkey_env = \"MY_KEY\"\n",
            path,
        )
        .unwrap();
        assert_eq!(
            ok.sources[0].agents.as_deref(),
            Some(&["a".to_string(), "b".to_string()][..])
        );
        assert_eq!(ok.sources[0].key_env(), "MY_KEY");
        let err = Config::parse(
            "[[source]]\nprovider = \"bluejay\"\nagents = [\"a\"]\napi_key = \"sk-123\"\n",
            path,
        )
        .unwrap_err();
        assert!(matches!(err, ConfigError::KeyInFile { .. }));
        assert!(!err.to_string().contains("sk-123"));
        let err =
            Config::parse("[[source]]\nprovider = \"nope\"\nagents = [\"a\"]\n", path).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn refuses_sources_that_are_ambiguous_or_point_keys_elsewhere() {
        let path = Path::new("callvault.toml");
        let err = |text: &str| Config::parse(text, path).unwrap_err().to_string();
        let token = err("[[source]]\nprovider = \"bluejay\"\nkey_env = \"GITHUB_TOKEN\"\n");
        assert!(token.contains("ending in _KEY"), "{token}");
        assert!(!token.contains("GITHUB_TOKEN"), "{token}");
        assert!(
            err("[[source]]\nprovider = \"bluejay\"\nagents = []\n").contains("leave `agents` out")
        );
        assert!(
            err("[[source]]\nprovider = \"bluejay\"\nagents = [\"\"]\n").contains("empty agent")
        );
        assert!(err("[[source]]\nprovider = \"bluejay\"\nagentz = [\"a\"]\n").contains("agentz"));
        let twice = err(
            "[[source]]\nprovider = \"clarion\"\n[[source]]\nprovider = \"clarion\"\nkey_env = \"OTHER_KEY\"\n",
        );
        assert!(twice.contains("give one an `account` name"), "{twice}");
        let two_accounts = Config::parse(
            "[[source]]\nprovider = \"clarion\"\n[[source]]\nprovider = \"clarion\"\naccount = \"eu\"\nkey_env = \"CLARION_EU_API_KEY\"\n",
            path,
        )
        .unwrap();
        assert_eq!(two_accounts.sources[1].account(), "eu");
        assert_eq!(two_accounts.sources[0].agents, None);
    }
}
