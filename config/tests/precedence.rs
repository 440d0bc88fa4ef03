//! Every key of the table is readable from the file, the environment and a
//! flag, and the precedence is flag > environment > file > default, per key.

use seckill_config::{CacheUrl, Config, ConfigError, FLAGS, KEYS, Key, Kind, Loaded, Source};
use toml::Value;

/// A scratch config file, removed on drop.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("seckill-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A sequence number keeps parallel tests off each other's files.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!("{n}-{name}"));
        std::fs::write(&path, text).unwrap();
        TempFile(path)
    }
    fn arg(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Three values for a key, as text, each different from the one before it
/// (and the first different from the default), all valid with every other
/// key at its default.
fn samples(key: &Key) -> [String; 3] {
    let own = |a: &str, b: &str, c: &str| [a.to_owned(), b.to_owned(), c.to_owned()];
    match (key.kind, key.type_name) {
        (Kind::Integer, _) => {
            let default: u64 = key.default.unwrap().parse().unwrap();
            [1, 2, 3].map(|step| (default + step).to_string())
        }
        (Kind::Bool, _) => own("true", "false", "true"),
        (Kind::List, _) => own("10.0.0.0/8", "127.0.0.1/32,fd00::/8", "::1/128"),
        (Kind::Secret, _) => own("first-secret-0123456789", "second-secret-0123456789", "third-secret-0123456789"),
        (_, "SocketAddr") => own("127.0.0.1:1", "[::1]:2", "0.0.0.0:3"),
        (_, "ReactorMode") => own("acceptor", "reuseport", "acceptor"),
        (_, "LogLevel") => own("debug", "warn", "trace"),
        (_, "ConfirmMode") => own("async", "sync", "async"),
        (_, "StockStrategy") => own("evalsha", "lease", "evalsha"),
        (_, "StoreUrl") => own("sqlite:///var/lib/seckill.db", "mysql://u:p@db:3306/sale", "sqlite://./other.db"),
        (_, "CacheUrl") => own("redis://r:6379/1", "redis-cluster://h1:7000,h2:7001", "rediss://r:6380/2"),
        (_, "String") => own("first:", "second:", "third:"),
        other => panic!("no samples for {} of {other:?}: add some here", key.path),
    }
}

fn load(args: Vec<String>, env: Vec<(String, String)>) -> Result<Box<Config>, ConfigError> {
    match Config::load(args, env)? {
        Loaded::Run(config) => Ok(config),
        other => panic!("expected a run, got {other:?}"),
    }
}

fn file_with(key: &Key, text: &str) -> TempFile {
    let value = key.kind.parse_text(text).unwrap();
    let mut section = toml::Table::new();
    section.insert(key.name.to_owned(), value);
    let mut file = toml::Table::new();
    file.insert(key.section.to_owned(), Value::Table(section));
    TempFile::new(&format!("{}.toml", key.path), &toml::to_string(&file).unwrap())
}

#[test]
fn every_key_follows_flag_over_env_over_file_over_default() {
    for key in KEYS {
        let expect = |config: &Config, text: Option<&str>, layer: &str| {
            let expected = text.map(|t| key.kind.parse_text(t).unwrap());
            assert_eq!(config.value(key.path), expected, "{} from {layer}", key.path);
        };
        let [in_file, in_env, in_flag] = samples(key);
        // Each layer must change the value, or the test could not fail.
        assert_ne!(key.default, Some(in_file.as_str()), "{}: the file sample is the default", key.path);
        assert!(in_file != in_env && in_env != in_flag, "{}: samples must differ", key.path);
        let file = file_with(key, &in_file);
        let env = vec![(key.env_var(), in_env.clone())];
        let flag = vec![format!("--set"), format!("{}={in_flag}", key.path)];
        let with_file = || vec!["--config".to_owned(), file.arg()];

        expect(&load(vec![], vec![]).unwrap(), key.default, "default");
        expect(&load(with_file(), vec![]).unwrap(), Some(&in_file), "file");
        expect(&load(with_file(), env.clone()).unwrap(), Some(&in_env), "env over file");
        expect(&load([with_file(), flag.clone()].concat(), env.clone()).unwrap(), Some(&in_flag), "flag over env");
        expect(&load(vec![], env.clone()).unwrap(), Some(&in_env), "env alone");
        expect(&load(flag.clone(), vec![]).unwrap(), Some(&in_flag), "flag alone");
        // The flag may come before --config: precedence is by layer, not position.
        expect(&load([flag, with_file()].concat(), env).unwrap(), Some(&in_flag), "flag before --config");
    }
}

#[test]
fn shortcut_flags_set_their_key_in_both_spellings() {
    for flag in FLAGS {
        let (flag, path) = (flag.name, flag.key);
        let key = Key::find(path).unwrap();
        let [value, _, other] = samples(key);
        let expected = key.kind.parse_text(&value).unwrap();
        let spaced = load(vec![flag.to_string(), value.clone()], vec![]).unwrap();
        assert_eq!(spaced.value(path), Some(expected.clone()), "{flag} VALUE");
        let joined = load(vec![format!("{flag}={value}")], vec![]).unwrap();
        assert_eq!(joined.value(path), Some(expected), "{flag}=VALUE");
        // Of two flags for one key, the later wins.
        let twice = load(vec![format!("{flag}={value}"), format!("--set={path}={other}")], vec![]).unwrap();
        assert_eq!(twice.value(path), Some(key.kind.parse_text(&other).unwrap()), "{flag} then --set");
    }
}

#[test]
fn env_lists_are_comma_separated() {
    let env = vec![("SECKILL_SERVER_TRUSTED_PROXIES".to_owned(), "127.0.0.1/32, 10.0.0.0/8,::1".to_owned())];
    let config = load(vec![], env).unwrap();
    let proxies: Vec<String> = config.server.trusted_proxies.iter().map(ToString::to_string).collect();
    assert_eq!(proxies, ["127.0.0.1/32", "10.0.0.0/8", "::1/128"]);
    assert!(config.server.trusted_proxies[1].contains("10.9.8.7".parse().unwrap()));

    let empty = vec![("SECKILL_SERVER_TRUSTED_PROXIES".to_owned(), String::new())];
    assert!(load(vec![], empty).unwrap().server.trusted_proxies.is_empty(), "empty text is an empty list");

    let flag = vec!["--set".to_owned(), "server.trusted_proxies=192.168.0.0/16,fd00::/8".to_owned()];
    assert_eq!(load(flag, vec![]).unwrap().server.trusted_proxies.len(), 2);
}

#[test]
fn typed_values_reach_the_config() {
    let args = ["--cache", "redis-cluster://:pw@h1:7000,h2:7001", "--admin-token", "tok"].map(String::from).to_vec();
    let config = load(args, vec![]).unwrap();
    let CacheUrl::RedisCluster { nodes, password, .. } = &config.cache.url else { panic!("not a cluster") };
    assert_eq!(nodes, &["h1:7000", "h2:7001"]);
    assert_eq!(password.as_deref(), Some("pw"));
    assert_eq!(config.auth.admin_token.as_ref().map(|t| t.expose()), Some("tok"));
    assert_eq!(config.auth.secret, None, "absent unless configured");
}

#[test]
fn unrelated_seckill_variables_are_ignored() {
    let env = [("SECKILL_TEST_REDIS", "1"), ("SECKILL_LOG", "x"), ("PATH", "/bin"), ("SECKILL_server_listen", "x")]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .to_vec();
    assert_eq!(*load(vec![], env).unwrap(), Config::default());
}

#[test]
fn errors_name_the_source() {
    let key = Key::find("http.head_bytes_max").unwrap();
    let file = file_with(key, "0");
    let error = load(vec!["--config".to_owned(), file.arg()], vec![]).unwrap_err();
    let ConfigError::InvalidValue { key, source, .. } = error else { panic!("{error}") };
    assert_eq!((key.as_str(), source), ("http.head_bytes_max", Source::File(file.0.clone())));
}

#[test]
fn print_config_is_a_file_that_loads_back() {
    let args = [
        "--print-config",
        "--threads",
        "3",
        "--cache",
        "redis-cluster://a:1,b:2",
        "--set",
        "server.trusted_proxies=::1",
    ];
    let Loaded::PrintConfig(printed) = Config::load(args.map(String::from), vec![]).unwrap() else { panic!() };
    let file = TempFile::new("printed.toml", &printed);
    let reloaded = load(vec!["--config".to_owned(), file.arg()], vec![]).unwrap();
    assert_eq!(reloaded, load(args[1..].iter().map(|a| a.to_string()).collect(), vec![]).unwrap());
}
