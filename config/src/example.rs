//! `config/seckill.example.toml`, rendered from the key table so that the
//! documentation cannot drift from the code: a test compares the file with
//! [`example_toml`] (run it with `BLESS=1` to rewrite the file).

use crate::schema::{KEYS, SECTIONS};

/// The example configuration: every key at its default, with its doc line.
/// Optional keys without a default are shown commented out.
pub fn example_toml() -> String {
    let mut text = String::from(
        "# seckill configuration: every key, at its default.\n\
         # Generated from config/src/schema.rs (BLESS=1 cargo test -p seckill-config rewrites it).\n\
         # Each key can be overridden by the environment variable SECKILL_<SECTION>_<KEY>\n\
         # (lists comma-separated) and by `--set section.key=value`.\n\
         # Precedence: flag > environment > file > default.\n",
    );
    for section in SECTIONS {
        text.push_str(&format!("\n[{section}]\n"));
        for key in KEYS.iter().filter(|key| key.section == *section) {
            text.push_str(&format!("# {}\n", key.doc.trim()));
            match key.default {
                Some(default) => {
                    // Defaults are valid text for their kind (tested).
                    let value = key.kind.parse_text(default).expect("default parses");
                    text.push_str(&format!("{} = {value}\n", key.name));
                }
                None => text.push_str(&format!("# {} = \"...\"\n", key.name)),
            }
        }
    }
    text
}
