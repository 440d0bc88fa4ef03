//! Loading: the command line, the environment and the file, merged by
//! precedence flag > environment > file > default, per key.

use std::path::PathBuf;

use crate::error::{ConfigError, Source};
use crate::layers::Layers;
use crate::schema::{Config, KEYS, Key, SECTIONS};
use crate::validate::validate;

/// What the binary should do after [`Config::load`]. The texts end with a
/// newline, ready for `print!`.
#[derive(Debug)]
pub enum Loaded {
    /// Run the server with this configuration.
    Run(Box<Config>),
    /// `--help`: print this to stdout and exit 0.
    Help(String),
    /// `--version`: print this to stdout and exit 0.
    Version(String),
    /// `--print-config`: print this (the effective configuration as TOML,
    /// secrets redacted) to stdout and exit 0.
    PrintConfig(String),
}

/// A shortcut flag: `--listen ADDR` is `--set server.listen=ADDR`.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    /// `--listen`
    pub name: &'static str,
    /// `ADDR`, for `--help`.
    pub metavar: &'static str,
    /// `server.listen`
    pub key: &'static str,
}

/// The shortcut flags, for the keys set most often.
pub const FLAGS: &[Flag] = &[
    Flag { name: "--listen", metavar: "ADDR", key: "server.listen" },
    Flag { name: "--threads", metavar: "N", key: "server.threads" },
    Flag { name: "--reactor", metavar: "NAME", key: "server.reactor" },
    Flag { name: "--log-level", metavar: "LEVEL", key: "server.log_level" },
    Flag { name: "--store", metavar: "URL", key: "store.url" },
    Flag { name: "--cache", metavar: "URL", key: "cache.url" },
    Flag { name: "--admin-token", metavar: "TOKEN", key: "auth.admin_token" },
];

/// The prefix of every configuration variable.
const ENV_PREFIX: &str = "SECKILL_";

/// What the command line asked for, before anything is read.
#[derive(Debug, Default)]
struct CommandLine {
    config_file: Option<PathBuf>,
    /// `(key, text, the flag as typed)`, in command-line order so that a
    /// later flag wins over an earlier one for the same key.
    sets: Vec<(&'static Key, String, String)>,
    print_config: bool,
}

impl Config {
    /// Loads the configuration from `args` (without the program name) and
    /// `env` (every variable of the process; only `SECKILL_*` ones are
    /// read). Pure: nothing else is consulted, so tests pass their own.
    pub fn load(
        args: impl IntoIterator<Item = String>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        let args: Vec<String> = args.into_iter().collect();
        // Looked for before anything is parsed, so that a confused user
        // gets the help even with a bad flag beside it.
        if args.iter().any(|arg| arg == "--help" || arg == "-h") {
            return Ok(Loaded::Help(help_text()));
        }
        if args.iter().any(|arg| arg == "--version" || arg == "-V") {
            return Ok(Loaded::Version(format!("seckill {}\n", env!("CARGO_PKG_VERSION"))));
        }
        let command_line = parse_args(args)?;
        let mut layers = Layers::defaults();
        if let Some(path) = &command_line.config_file {
            layers.overlay_file(read_file(path)?, &Source::File(path.clone()))?;
        }
        overlay_env(&mut layers, env)?;
        for (key, text, flag) in &command_line.sets {
            layers.set_text(key, text, Source::Flag(flag.clone()))?;
        }
        let config = Config::from_layers(&layers)?;
        validate(&config, &layers)?;
        if command_line.print_config {
            return Ok(Loaded::PrintConfig(config.to_toml_redacted()));
        }
        Ok(Loaded::Run(Box::new(config)))
    }

    /// [`Config::load`] with the process's own arguments and environment.
    pub fn from_process() -> Result<Loaded, ConfigError> {
        Config::load(
            std::env::args().skip(1),
            std::env::vars_os().filter_map(|(k, v)| {
                // A variable that is not UTF-8 cannot be one of ours unless it is
                // malformed; keep ours lossily so the error names it.
                let k = k.into_string().ok()?;
                Some((k, v.to_string_lossy().into_owned()))
            }),
        )
    }

    /// The effective value of one key (`"http.head_bytes_max"`) as TOML,
    /// unredacted; `None` for an unknown key or an absent optional one.
    pub fn value(&self, path: &str) -> Option<toml::Value> {
        let (section, name) = path.split_once('.')?;
        self.to_table(false).get(section)?.get(name).cloned()
    }
}

impl Default for Config {
    /// The built-in defaults, as `seckill` with no configuration runs.
    fn default() -> Self {
        match Config::load(Vec::new(), Vec::new()) {
            Ok(Loaded::Run(config)) => *config,
            // The `defaults_are_valid` test proves this is unreachable.
            other => panic!("the built-in defaults do not load: {other:?}"),
        }
    }
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<CommandLine, ConfigError> {
    let mut command_line = CommandLine::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value)),
            _ => (arg.as_str(), None),
        };
        match flag {
            // Handled by `Config::load` before parsing.
            "--help" | "-h" | "--version" | "-V" => continue,
            "--print-config" => {
                command_line.print_config = true;
                continue;
            }
            "--config" | "--set" => {}
            _ if FLAGS.iter().any(|known| known.name == flag) => {}
            _ => return Err(ConfigError::UnknownFlag(flag.to_owned())),
        }
        let value = match inline {
            Some(value) => value.to_owned(),
            None => args.next().ok_or_else(|| ConfigError::MissingFlagValue(flag.to_owned()))?,
        };
        match flag {
            "--config" => command_line.config_file = Some(PathBuf::from(value)),
            "--set" => command_line.sets.push(parse_set(&value)?),
            _ => command_line.sets.push((shortcut_key(flag), value, flag.to_owned())),
        }
    }
    Ok(command_line)
}

/// `--set section.key=value`
fn parse_set(assignment: &str) -> Result<(&'static Key, String, String), ConfigError> {
    let (path, text) = assignment.split_once('=').ok_or_else(|| ConfigError::MalformedSet(assignment.to_owned()))?;
    let key = Key::find(path).ok_or_else(|| ConfigError::UnknownKey {
        key: path.to_owned(),
        suggestion: Key::nearest_path(path),
        source: Source::Flag("--set".to_owned()),
    })?;
    Ok((key, text.to_owned(), format!("--set {path}")))
}

/// The key of a shortcut flag that `parse_args` has checked is in [`FLAGS`].
fn shortcut_key(flag: &str) -> &'static Key {
    let path = FLAGS.iter().find(|known| known.name == flag).map(|known| known.key);
    // FLAGS names only keys of the table (`shortcut_flags_set_their_key_in_both_spellings`).
    path.and_then(Key::find).expect("a shortcut flag names a known key")
}

fn read_file(path: &PathBuf) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::ReadFile { path: path.clone(), error })?;
    toml::from_str(&text).map_err(|error| ConfigError::ParseFile { path: path.clone(), message: error.to_string() })
}

/// Reads `SECKILL_<SECTION>_<KEY>` variables. A variable whose section is
/// known but whose key is not is a typo and an error; one that names no
/// section (`SECKILL_TEST_REDIS`, `SECKILL_LOG`) belongs to something else
/// (tests, scripts) and is ignored.
fn overlay_env(layers: &mut Layers, env: impl IntoIterator<Item = (String, String)>) -> Result<(), ConfigError> {
    // Sorted, so that with several errors the same one is reported every run.
    let mut ours: Vec<(String, String)> = env.into_iter().filter(|(name, _)| name.starts_with(ENV_PREFIX)).collect();
    ours.sort();
    for (name, text) in ours {
        let rest = &name[ENV_PREFIX.len()..];
        let Some(section) =
            SECTIONS.iter().find(|section| rest.starts_with(&format!("{}_", section.to_ascii_uppercase())))
        else {
            continue;
        };
        let key = KEYS.iter().find(|key| key.section == *section && key.env_var() == name).ok_or_else(|| {
            ConfigError::UnknownKey {
                key: name.clone(),
                source: Source::Env(name.clone()),
                suggestion: Key::nearest_env_var(&name),
            }
        })?;
        layers.set_text(key, &text, Source::Env(name))?;
    }
    Ok(())
}

/// The `--help` text.
pub fn help_text() -> String {
    let mut text = String::from(
        "seckill: a flash-sale HTTP/1.1 server\n\n\
         Usage: seckill [--config FILE] [FLAGS]\n\n\
         Flags:\n\
         \x20 --config FILE            read a TOML configuration file (see config/seckill.example.toml)\n",
    );
    for flag in FLAGS {
        text.push_str(&format!("  {:<25}sets {}\n", format!("{} {}", flag.name, flag.metavar), flag.key));
    }
    text.push_str(
        "  --set SECTION.KEY=VALUE  sets any key (repeatable; lists comma-separated)\n\
         \x20 --print-config           print the effective configuration (secrets redacted) and exit\n\
         \x20 --version                print the version and exit\n\
         \x20 --help                   print this and exit\n\n\
         Every key can also be set by the environment variable SECKILL_<SECTION>_<KEY>\n\
         (e.g. SECKILL_STORE_URL). Precedence: flag > environment > file > default.\n\nKeys:\n",
    );
    for key in KEYS {
        let default = key.default.map_or("(none)".to_owned(), |d| format!("{d:?}"));
        text.push_str(&format!("  {:<32} default {default}\n", key.path));
    }
    text
}
