//! `callvault.toml`: the sources a plain `callvault sync` syncs.
//!
//! ```toml
//! [[source]]
//! provider = "bluejay"
//! agents = ["agent-1", "agent-2"]
//! base_url = "https://api.getbluejay.ai"   # optional
//! label = "production"                     # optional
//! key_env = "BLUEJAY_API_KEY"              # optional: the variable that holds the key
//! ```
//!
//! The file names the environment variable that holds a key, never the key itself: a key
//! written into it is refused with an error that says where keys belong.

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
    pub agents: Vec<String>,
    pub base_url: Option<String>,
    pub label: Option<String>,
    pub key_env: Option<String>,
}

impl SourceConfig {
    pub fn key_env(&self) -> &str {
        self.key_env
            .as_deref()
            .unwrap_or_else(|| self.provider.key_env())
    }
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
        if let Some(empty) = config.sources.iter().find(|s| s.agents.is_empty()) {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                message: format!("the {} source lists no agents", empty.provider),
            });
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
        assert_eq!(ok.sources[0].agents, vec!["a", "b"]);
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
}
