//! Where a value came from, and everything that can go wrong while loading.

use std::fmt;
use std::path::PathBuf;

/// The layer a key's effective value came from. Carried into every error so
/// that an operator knows which of file, environment or command line to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in default of the key table.
    Default,
    /// The TOML file given with `--config`.
    File(PathBuf),
    /// An environment variable, by name (`SECKILL_HTTP_HEAD_BYTES_MAX`).
    Env(String),
    /// A command-line flag, as typed (`--listen`, `--set http.head_bytes_max`).
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("the default"),
            Source::File(path) => write!(f, "{}", path.display()),
            Source::Env(name) => f.write_str(name),
            Source::Flag(flag) => f.write_str(flag),
        }
    }
}

/// Why the configuration could not be loaded. Every variant names what the
/// operator must change; the server prints it and exits non-zero.
#[derive(Debug)]
pub enum ConfigError {
    /// A flag the binary does not know (`--lisen`).
    UnknownFlag(String),
    /// A flag that needs a value was last on the command line.
    MissingFlagValue(String),
    /// `--set` without `section.key=value`.
    MalformedSet(String),
    /// The file given with `--config` could not be read.
    ReadFile { path: PathBuf, error: std::io::Error },
    /// The file is not valid TOML.
    ParseFile { path: PathBuf, message: String },
    /// A key (or section) the configuration does not have: a typo in the
    /// file, in a `SECKILL_<SECTION>_<KEY>` variable or in `--set`.
    /// `suggestion` is the nearest known key (or variable), if one is close.
    UnknownKey { key: String, source: Source, suggestion: Option<String> },
    /// A value of the wrong type or out of range, or one that breaks a rule
    /// relating two keys. `key` is `section.key`.
    InvalidValue { key: String, source: Source, message: String },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::UnknownFlag(flag) => {
                write!(f, "unknown flag {flag} (try --help)")
            }
            ConfigError::MissingFlagValue(flag) => write!(f, "flag {flag} needs a value"),
            ConfigError::MalformedSet(arg) => {
                write!(f, "--set expects section.key=value, got {arg:?}")
            }
            ConfigError::ReadFile { path, error } => {
                write!(f, "cannot read config file {}: {error}", path.display())
            }
            ConfigError::ParseFile { path, message } => {
                write!(f, "config file {} is not valid TOML: {message}", path.display())
            }
            ConfigError::UnknownKey { key, source, suggestion } => {
                match source {
                    Source::Env(_) => write!(f, "unknown configuration variable {key}")?,
                    _ => write!(f, "unknown configuration key {key} (in {source})")?,
                }
                match suggestion {
                    Some(nearest) => write!(f, "; did you mean {nearest}?"),
                    None => Ok(()),
                }
            }
            ConfigError::InvalidValue { key, source, message } => {
                write!(f, "invalid value for {key} (from {source}): {message}")
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::ReadFile { error, .. } => Some(error),
            _ => None,
        }
    }
}
