//! Where `sextant` finds its services, key and client.
//!
//! Precedence, for each setting on its own: the flag, then the environment
//! variable (`SEXTANT_COMMAND_URL`, `SEXTANT_QUERY_URL`, `SEXTANT_KEY`,
//! `SEXTANT_NATS_URL`, `SEXTANT_STREAM`, `SEXTANT_CLIENT`; clap reads both),
//! then the profile (`--profile`, `SEXTANT_PROFILE`, else the file's
//! `default_profile`, else `default`) in
//! `$XDG_CONFIG_HOME/sextant/config.toml` (`~/.config/...` without it),
//! then the built-in defaults of a local deployment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::error::{CliError, Result};

pub const DEFAULT_COMMAND_URL: &str = "http://127.0.0.1:8080";
pub const DEFAULT_QUERY_URL: &str = "http://127.0.0.1:8081";
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
pub const DEFAULT_STREAM: &str = "SEXTANT_EVENTS";
pub const DEFAULT_PROFILE: &str = "default";

/// An API key. Its `Debug` is `[REDACTED]` (secrecy's), so no log, panic or
/// error text can show it; only the `Authorization` header reads it.
#[derive(Clone)]
pub struct Key(SecretString);

impl Key {
    pub fn new(key: impl Into<String>) -> Self {
        Self(SecretString::from(key.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key([REDACTED])")
    }
}

/// One named profile of the file.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_url: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "expose_key",
        deserialize_with = "read_key"
    )]
    pub key: Option<Key>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// The client that client-scoped commands act on when no `--client` is
    /// given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

fn expose_key<S: serde::Serializer>(key: &Option<Key>, s: S) -> Result<S::Ok, S::Error> {
    match key {
        Some(key) => s.serialize_str(key.expose()),
        None => s.serialize_none(),
    }
}

fn read_key<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Key>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(Key::new))
}

/// `config.toml`: named profiles and which one is used by default.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_profile: Option<String>,
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// `$XDG_CONFIG_HOME/sextant/config.toml`, else `~/.config/sextant/config.toml`.
pub fn config_path() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("sextant").join("config.toml"));
    }
    home()
        .map(|h| h.join(".config").join("sextant").join("config.toml"))
        .ok_or_else(|| CliError::Usage("neither XDG_CONFIG_HOME nor HOME is set".into()))
}

/// `$XDG_STATE_HOME/sextant`, else `~/.local/state/sextant`.
pub fn state_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("sextant"));
    }
    home().map(|h| h.join(".local").join("state").join("sextant"))
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

impl ProfileFile {
    /// The file as it is; empty when there is none.
    pub fn load(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| {
                CliError::Usage(format!(
                    "{} is not a valid profile file: {}",
                    path.display(),
                    e.message()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(CliError::failed(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    /// Writes the file readable by its owner alone (0600), through a
    /// temporary file so a reader never sees half of it.
    pub fn save(&self, path: &Path) -> Result<()> {
        let dir = path
            .parent()
            .ok_or_else(|| CliError::Usage(format!("{} has no directory", path.display())))?;
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::failed(format!("cannot create {}: {e}", dir.display())))?;
        let text = toml::to_string_pretty(self)
            .map_err(|e| CliError::failed(format!("cannot write the profile file: {e}")))?;
        let tmp = path.with_extension("toml.tmp");
        write_private(&tmp, text.as_bytes())
            .map_err(|e| CliError::failed(format!("cannot write {}: {e}", tmp.display())))?;
        std::fs::rename(&tmp, path)
            .map_err(|e| CliError::failed(format!("cannot write {}: {e}", path.display())))
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // A file that existed keeps its mode through open(); make sure.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// What the flags and environment gave (clap merges the two).
#[derive(Debug, Default, Clone)]
pub struct Given {
    pub command_url: Option<String>,
    pub query_url: Option<String>,
    pub key: Option<String>,
    pub nats_url: Option<String>,
    pub stream: Option<String>,
    pub client: Option<String>,
    pub profile: Option<String>,
}

/// Everything resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub profile: String,
    pub command_url: String,
    pub query_url: String,
    pub key: Option<Key>,
    pub nats_url: String,
    pub stream: String,
    pub client: Option<String>,
}

impl Settings {
    /// Flags and environment first, then the profile, then the defaults.
    /// A profile named explicitly must exist.
    pub fn resolve(given: &Given, file: &ProfileFile) -> Result<Self> {
        let named = given.profile.clone();
        let profile_name = named
            .clone()
            .or_else(|| file.default_profile.clone())
            .unwrap_or_else(|| DEFAULT_PROFILE.to_owned());
        let profile = match file.profiles.get(&profile_name) {
            Some(p) => p.clone(),
            None if named.is_some() => {
                return Err(CliError::Usage(format!(
                    "no profile named {profile_name:?}: create it with sextant login --profile {profile_name}"
                )))
            }
            None => Profile::default(),
        };
        let pick = |flag: &Option<String>, profile: &Option<String>, default: &str| {
            flag.clone()
                .filter(|v| !v.is_empty())
                .or_else(|| profile.clone())
                .unwrap_or_else(|| default.to_owned())
        };
        Ok(Self {
            command_url: trim_url(pick(
                &given.command_url,
                &profile.command_url,
                DEFAULT_COMMAND_URL,
            )),
            query_url: trim_url(pick(
                &given.query_url,
                &profile.query_url,
                DEFAULT_QUERY_URL,
            )),
            key: given
                .key
                .clone()
                .filter(|k| !k.is_empty())
                .map(Key::new)
                .or(profile.key),
            nats_url: pick(&given.nats_url, &profile.nats_url, DEFAULT_NATS_URL),
            stream: pick(&given.stream, &profile.stream, DEFAULT_STREAM),
            client: given
                .client
                .clone()
                .filter(|c| !c.is_empty())
                .or(profile.client),
            profile: profile_name,
        })
    }

    /// The client a client-scoped command acts on.
    pub fn client(&self) -> Result<&str> {
        self.client.as_deref().ok_or_else(|| {
            CliError::Usage(
                "which client? pass --client ID, set SEXTANT_CLIENT, or give the profile a client (sextant login --client ID)".into(),
            )
        })
    }
}

fn trim_url(url: String) -> String {
    url.trim_end_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> ProfileFile {
        toml::from_str(
            r#"
default_profile = "staging"
[profiles.staging]
command_url = "http://staging:8080/"
key = "sxk_staging"
client = "c-staging"
[profiles.prod]
command_url = "http://prod:8080"
"#,
        )
        .expect("a profile file")
    }

    #[test]
    fn flags_and_environment_win_over_the_profile_which_wins_over_the_defaults() {
        let given = Given {
            query_url: Some("http://flag:1".into()),
            ..Given::default()
        };
        let s = Settings::resolve(&given, &file()).expect("settings");
        assert_eq!(s.profile, "staging");
        assert_eq!(s.command_url, "http://staging:8080");
        assert_eq!(s.query_url, "http://flag:1");
        assert_eq!(s.key.as_ref().map(Key::expose), Some("sxk_staging"));
        assert_eq!(s.nats_url, DEFAULT_NATS_URL);
        assert_eq!(s.client.as_deref(), Some("c-staging"));
    }

    #[test]
    fn a_named_profile_must_exist() {
        let given = Given {
            profile: Some("nope".into()),
            ..Given::default()
        };
        let err = Settings::resolve(&given, &file()).expect_err("no such profile");
        assert_eq!(err.exit_code(), crate::error::USAGE);
    }

    #[test]
    fn the_key_never_shows_in_debug_output() {
        let given = Given {
            key: Some("sxk_secret_value".into()),
            ..Given::default()
        };
        let s = Settings::resolve(&given, &ProfileFile::default()).expect("settings");
        assert!(!format!("{s:?}").contains("sxk_secret_value"));
    }
}
