//! `config/seckill.example.toml` is the documentation of every key: it must
//! parse, list every key, and hold exactly the defaults.

use seckill_config::{Config, KEYS, Loaded, example_toml};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/seckill.example.toml");

#[test]
fn example_file_is_rendered_from_the_key_table() {
    let expected = example_toml();
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(EXAMPLE, &expected).unwrap();
    }
    let actual = std::fs::read_to_string(EXAMPLE).unwrap();
    assert!(actual == expected, "{EXAMPLE} is stale; rerun with BLESS=1 to rewrite it");
}

#[test]
fn example_file_loads_to_the_defaults() {
    let args = vec!["--config".to_owned(), EXAMPLE.to_owned()];
    let Loaded::Run(config) = Config::load(args, Vec::new()).unwrap() else { panic!("not a run") };
    assert_eq!(*config, Config::default());
}

#[test]
fn example_file_lists_every_key() {
    let text = std::fs::read_to_string(EXAMPLE).unwrap();
    let file: toml::Table = toml::from_str(&text).unwrap();
    for key in KEYS {
        let listed = match key.default {
            Some(_) => file.get(key.section).and_then(|section| section.get(key.name)).is_some(),
            None => text.contains(&format!("\n# {} = ", key.name)),
        };
        assert!(listed, "{} is missing from the example", key.path);
    }
}
