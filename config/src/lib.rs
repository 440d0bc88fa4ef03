//! seckill's configuration: the TOML file, the `SECKILL_*` environment and
//! the command-line flags of contract §1, merged per key with precedence
//! flag > environment > file > default, and validated once at start-up.
//! The rest of the server receives a [`Config`] whose every value is typed
//! and already checked; nothing else reads the environment.
//!
//! Map:
//! - [`schema`] — the key table: every section, key, type,
//!   default and doc line. The section structs and [`KEYS`] are generated
//!   from it, so a key is added in one place.
//! - `value` — how a key is written as text ([`Kind`]) and parsed into its
//!   type ([`ConfigValue`]); [`Secret`].
//! - `cidr`, `url` — [`Cidr`] for `server.trusted_proxies`; [`StoreUrl`] and
//!   [`CacheUrl`] for the backends.
//! - `layers` — the merge: defaults, then file, environment and flags.
//! - `load` — [`Config::load`], the command line, [`Loaded`].
//! - `validate` — rules relating keys (`uri_bytes_max < head_bytes_max`, …).
//! - `example` — renders the table as commented TOML: the example file and
//!   `--print-config`.
//!
//! How the server starts:
//!
//! ```
//! use seckill_config::{Config, Loaded, ReactorMode};
//!
//! // In the binary: `Config::from_process()`.
//! let args = ["--listen", "127.0.0.1:0", "--set", "server.threads=2"].map(String::from);
//! let env = [("SECKILL_SERVER_REACTOR".to_owned(), "acceptor".to_owned())];
//! let config = match Config::load(args, env) {
//!     Ok(Loaded::Run(config)) => config,
//!     Ok(Loaded::Help(text) | Loaded::Version(text) | Loaded::PrintConfig(text)) => {
//!         print!("{text}");
//!         return; // exit 0
//!     }
//!     Err(error) => panic!("seckill: {error}"), // the binary prints it and exits 2
//! };
//! assert_eq!(config.server.listen.port(), 0);
//! assert_eq!(config.server.event_loops(), 2);
//! assert_eq!(config.server.reactor, ReactorMode::Acceptor);
//! ```
//!
//! Architecture invariant: this crate reads no file other than the one given
//! with `--config` and no environment except through [`Config::from_process`];
//! it knows every limit and default, and no socket.

mod cidr;
mod error;
mod example;
mod layers;
mod load;
pub mod schema;
mod url;
mod validate;
mod value;

pub use cidr::Cidr;
pub use error::{ConfigError, Source};
pub use example::example_toml;
pub use load::{FLAGS, Flag, Loaded, help_text};
pub use schema::{
    Auth, Cache, Captcha, Config, ConfirmMode, Http, KEYS, Key, Limits, LogLevel, ReactorMode, SECTIONS, Sale, Server,
    StockStrategy, Store,
};
pub use url::{CacheUrl, StoreUrl};
pub use value::{ConfigValue, Kind, Secret};
