//! Renders a configuration as a commented TOML document in the order of the
//! key table. Used twice: for `config/seckill.example.toml` (every key at its
//! default; a test compares the file with [`example_toml`], run it with
//! `BLESS=1` to rewrite the file) and for `--print-config`.

use toml::Value;

use crate::schema::{Config, KEYS, Key, SECTIONS};

const EXAMPLE_HEADER: &str = "\
# seckill configuration: every key, at its default.
# Generated from config/src/schema.rs (BLESS=1 cargo test -p seckill-config rewrites it).
# Each key can be overridden by the environment variable SECKILL_<SECTION>_<KEY>
# (lists comma-separated) and by `--set section.key=value`.
# Precedence: flag > environment > file > default.
";

const EFFECTIVE_HEADER: &str = "\
# seckill: the effective configuration (secrets redacted).
";

/// The example configuration: every key at its default, with its doc line.
/// Optional keys without a default are shown commented out.
pub fn example_toml() -> String {
    render(EXAMPLE_HEADER, |key| {
        // Defaults are valid text for their kind (`defaults_are_valid`).
        key.default.map(|text| key.kind.parse_text(text).expect("a default parses"))
    })
}

impl Config {
    /// The effective configuration as a commented TOML document that could
    /// be used as a file, secrets and URL passwords replaced by `<redacted>`.
    pub fn to_toml_redacted(&self) -> String {
        let table = self.to_table(true);
        render(EFFECTIVE_HEADER, |key| table.get(key.section)?.get(key.name).cloned())
    }
}

fn render(header: &str, value_of: impl Fn(&Key) -> Option<Value>) -> String {
    let mut text = String::from(header);
    for section in SECTIONS {
        text.push_str(&format!("\n[{section}]\n"));
        for key in KEYS.iter().filter(|key| key.section == *section) {
            text.push_str(&format!("# {}\n", key.doc.trim()));
            match value_of(key) {
                Some(value) => text.push_str(&format!("{} = {value}\n", key.name)),
                None => text.push_str(&format!("# {} = \"...\"\n", key.name)),
            }
        }
    }
    text
}
