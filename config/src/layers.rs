//! The merged layers: for every key, its effective value as TOML and the
//! source it came from. Defaults go in first; the file, the environment and
//! the flags overwrite in that order, which is the whole precedence rule.

use std::collections::BTreeMap;

use toml::Value;

use crate::error::{ConfigError, Source};
use crate::schema::{KEYS, Key, SECTIONS, nearest_section};
use crate::value::ConfigValue;

#[derive(Debug)]
pub(crate) struct Layers {
    values: BTreeMap<&'static str, (Value, Source)>,
}

impl Layers {
    /// The defaults of the key table.
    pub(crate) fn defaults() -> Self {
        let mut values = BTreeMap::new();
        for key in KEYS {
            if let Some(text) = key.default {
                // The defaults are text so that they go through the same
                // parser as the environment; `defaults_are_valid` tests them.
                let value = key
                    .kind
                    .parse_text(text)
                    .unwrap_or_else(|why| panic!("default of {} is not valid: {why}", key.path));
                values.insert(key.path, (value, Source::Default));
            }
        }
        Layers { values }
    }

    /// Sets one key from a value already in TOML form.
    pub(crate) fn set(&mut self, key: &'static Key, value: Value, source: Source) {
        self.values.insert(key.path, (value, source));
    }

    /// Sets one key from text (an environment variable or a flag).
    pub(crate) fn set_text(&mut self, key: &'static Key, text: &str, source: Source) -> Result<(), ConfigError> {
        let value = key.kind.parse_text(text).map_err(|message| ConfigError::InvalidValue {
            key: key.path.to_owned(),
            source: source.clone(),
            message,
        })?;
        self.set(key, value, source);
        Ok(())
    }

    /// Overlays a parsed TOML file. Unknown sections and keys are errors:
    /// a typo must not silently leave a limit at its default.
    pub(crate) fn overlay_file(&mut self, file: toml::Table, source: &Source) -> Result<(), ConfigError> {
        for (section, body) in file {
            if !SECTIONS.contains(&section.as_str()) {
                let suggestion = nearest_section(&section);
                return Err(ConfigError::UnknownKey { key: section, source: source.clone(), suggestion });
            }
            let Value::Table(body) = body else {
                return Err(ConfigError::InvalidValue {
                    key: section.clone(),
                    source: source.clone(),
                    message: format!("expected a table [{section}]"),
                });
            };
            for (name, value) in body {
                let path = format!("{section}.{name}");
                let key = Key::find(&path).ok_or_else(|| ConfigError::UnknownKey {
                    suggestion: Key::nearest_path(&path),
                    key: path,
                    source: source.clone(),
                })?;
                self.set(key, value, source.clone());
            }
        }
        Ok(())
    }

    /// The source of a key's effective value.
    pub(crate) fn source_of(&self, path: &str) -> Source {
        self.values.get(path).map_or(Source::Default, |(_, source)| source.clone())
    }

    /// The typed value of a key, or an error naming the key and its source.
    pub(crate) fn take<T: ConfigValue>(&self, path: &'static str) -> Result<T, ConfigError> {
        let result = match self.values.get(path) {
            Some((value, _)) => T::from_toml(value),
            None => T::absent(),
        };
        result.map_err(|message| ConfigError::InvalidValue {
            key: path.to_owned(),
            source: self.source_of(path),
            message,
        })
    }
}
