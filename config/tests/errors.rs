//! Bad configuration is refused at start-up with a message that names the
//! key and where its value came from.

use seckill_config::{Config, ConfigError, Loaded, help_text};

fn env_error(name: &str, value: &str) -> String {
    Config::load(Vec::new(), vec![(name.to_owned(), value.to_owned())]).unwrap_err().to_string()
}

fn set_error(assignment: &str) -> String {
    Config::load(vec!["--set".to_owned(), assignment.to_owned()], Vec::new()).unwrap_err().to_string()
}

fn file_error(text: &str) -> (String, String) {
    let dir = std::env::temp_dir().join(format!("seckill-config-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // One file per content, so tests running in parallel do not share one.
    let path = dir.join(format!("{:x}.toml", text.bytes().fold(0u64, |h, b| h.wrapping_mul(31) ^ u64::from(b))));
    std::fs::write(&path, text).unwrap();
    let error = Config::load(vec!["--config".to_owned(), path.display().to_string()], Vec::new()).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    (error.to_string(), path.display().to_string())
}

#[test]
fn numbers() {
    assert_eq!(
        env_error("SECKILL_HTTP_HEAD_BYTES_MAX", "abc"),
        r#"invalid value for http.head_bytes_max (from SECKILL_HTTP_HEAD_BYTES_MAX): "abc" is not a whole number"#
    );
    assert_eq!(
        set_error("sale.lease_ms=-5"),
        r#"invalid value for sale.lease_ms (from --set sale.lease_ms): "-5" is not a whole number"#
    );
    assert_eq!(
        set_error("auth.argon2_iterations=99999999999"),
        "invalid value for auth.argon2_iterations (from --set auth.argon2_iterations): \
         99999999999 is too large (at most 4294967295)"
    );
    let (error, path) = file_error("[http]\nhead_bytes_max = \"8k\"\n");
    assert_eq!(error, format!(r#"invalid value for http.head_bytes_max (from {path}): "8k" is not a whole number"#));
    let (error, path) = file_error("[http]\nbody_bytes_max = -1\n");
    assert_eq!(error, format!("invalid value for http.body_bytes_max (from {path}): -1 is negative"));
    let (error, path) = file_error("[server]\npin_cpus = \"yes\"\n");
    assert_eq!(
        error,
        format!(r#"invalid value for server.pin_cpus (from {path}): expected true or false, found a string "yes""#)
    );
    assert_eq!(
        env_error("SECKILL_SERVER_PIN_CPUS", "yes"),
        r#"invalid value for server.pin_cpus (from SECKILL_SERVER_PIN_CPUS): "yes" is not true or false"#
    );
}

#[test]
fn zero_where_zero_makes_no_sense() {
    for key in
        ["http.head_timeout_ms", "http.connections_max", "sale.order_queue_max", "captcha.ttl_ms", "store.commit_lanes"]
    {
        assert_eq!(
            set_error(&format!("{key}=0")),
            format!("invalid value for {key} (from --set {key}): must be at least 1")
        );
    }
}

#[test]
fn enums() {
    assert_eq!(
        env_error("SECKILL_SERVER_REACTOR", "epoll"),
        r#"invalid value for server.reactor (from SECKILL_SERVER_REACTOR): "epoll" is not one of "reuseport", "acceptor""#
    );
    assert_eq!(
        set_error("server.log_level=INFO"),
        r#"invalid value for server.log_level (from --set server.log_level): "INFO" is not one of "error", "warn", "info", "debug", "trace""#
    );
    assert_eq!(
        set_error("sale.confirm=maybe"),
        r#"invalid value for sale.confirm (from --set sale.confirm): "maybe" is not one of "sync", "async""#
    );
    assert_eq!(
        set_error("sale.stock_strategy=lua"),
        r#"invalid value for sale.stock_strategy (from --set sale.stock_strategy): "lua" is not one of "lease", "evalsha""#
    );
}

#[test]
fn addresses_and_cidrs() {
    let error = Config::load(vec!["--listen".to_owned(), "localhost:80".to_owned()], Vec::new()).unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"invalid value for server.listen (from --listen): "localhost:80" is not a socket address IP:PORT (such as 127.0.0.1:8080 or [::1]:8080)"#
    );
    assert_eq!(
        env_error("SECKILL_SERVER_TRUSTED_PROXIES", "10.0.0.0/8,10.1.2.3/8"),
        r#"invalid value for server.trusted_proxies (from SECKILL_SERVER_TRUSTED_PROXIES): item 2: "10.1.2.3/8" has host bits set; the network is 10.0.0.0/8"#
    );
    let (error, path) = file_error("[server]\ntrusted_proxies = \"10.0.0.0/8\"\n");
    assert_eq!(
        error,
        format!(
            r#"invalid value for server.trusted_proxies (from {path}): expected a list, found a string "10.0.0.0/8""#
        )
    );
}

#[test]
fn urls_without_leaking_passwords() {
    assert_eq!(
        env_error("SECKILL_STORE_URL", "mysql://root:hunter2@db:3306"),
        "invalid value for store.url (from SECKILL_STORE_URL): \"mysql://root:<redacted>@db:3306\" names no database; \
         expected sqlite://PATH or mysql://USER:PASS@HOST:PORT/DB"
    );
    assert_eq!(
        set_error("cache.url=memcached://m:11211"),
        "invalid value for cache.url (from --set cache.url): \"memcached://m:11211\" has an unknown scheme; \
         expected memory://, redis://HOST:PORT/DB, rediss://HOST:PORT/DB or redis-cluster://HOST:PORT,HOST:PORT"
    );
    assert_eq!(
        set_error("cache.url=redis-cluster://h1:7000,h2"),
        r#"invalid value for cache.url (from --set cache.url): "redis-cluster://h1:7000,h2" has a node "h2" without a port"#
    );
}

#[test]
fn unknown_keys_sections_and_flags() {
    let (error, path) = file_error("[server]\nlisten = \"127.0.0.1:1\"\nlisen = \"127.0.0.1:2\"\n");
    assert_eq!(error, format!("unknown configuration key server.lisen (in {path}); did you mean server.listen?"));
    let (error, path) = file_error("[servr]\nlisten = \"127.0.0.1:1\"\n");
    assert_eq!(error, format!("unknown configuration key servr (in {path}); did you mean server?"));
    let (error, path) = file_error("server = 5\n");
    assert_eq!(error, format!("invalid value for server (from {path}): expected a table [server]"));
    let (error, path) = file_error("[server\n");
    assert!(error.starts_with(&format!("config file {path} is not valid TOML: ")), "{error}");

    assert_eq!(
        env_error("SECKILL_HTTP_HEAD_BYTES", "1"),
        "unknown configuration variable SECKILL_HTTP_HEAD_BYTES; did you mean SECKILL_HTTP_HEAD_BYTES_MAX?"
    );
    assert_eq!(
        set_error("http.head_bytes=1"),
        "unknown configuration key http.head_bytes (in --set); did you mean http.head_bytes_max?"
    );
    assert_eq!(
        set_error("http.nonsense=1"),
        "unknown configuration key http.nonsense (in --set)",
        "no far-fetched guess"
    );
    assert_eq!(set_error("http.head_bytes_max"), r#"--set expects section.key=value, got "http.head_bytes_max""#);

    let error = |args: &[&str]| Config::load(args.iter().map(|a| a.to_string()), Vec::new()).unwrap_err().to_string();
    assert_eq!(error(&["--lisen", "x"]), "unknown flag --lisen (try --help)");
    assert_eq!(error(&["--listen"]), "flag --listen needs a value");
    assert_eq!(
        error(&["--config", "/nonexistent/seckill.toml"]).split(':').next(),
        Some("cannot read config file /nonexistent/seckill.toml")
    );
}

#[test]
fn rules_between_keys() {
    let check = |sets: &[&str], expected: &str| {
        let args = sets.iter().flat_map(|s| ["--set".to_owned(), s.to_string()]);
        let error = Config::load(args, Vec::new()).unwrap_err();
        assert!(matches!(error, ConfigError::InvalidValue { .. }));
        assert_eq!(error.to_string(), expected);
    };
    check(
        &["http.uri_bytes_max=8192"],
        "invalid value for http.uri_bytes_max (from --set http.uri_bytes_max): must be less than http.head_bytes_max (8192)",
    );
    check(
        &["http.head_bytes_max=1024"],
        "invalid value for http.uri_bytes_max (from the default): must be less than http.head_bytes_max (1024)",
    );
    check(
        &["http.header_count_max=257"],
        "invalid value for http.header_count_max (from --set http.header_count_max): 257 is more than 256",
    );
    check(
        &["limits.per_user_burst=0"],
        "invalid value for limits.per_user_burst (from --set limits.per_user_burst): must be at least 1 when limits.per_user_rps is not 0",
    );
    check(
        &["cache.key_prefix=my app:"],
        r#"invalid value for cache.key_prefix (from --set cache.key_prefix): "my app:" must be non-empty and hold no spaces or control characters"#,
    );
    check(
        &["auth.secret=short"],
        "invalid value for auth.secret (from --set auth.secret): is 5 bytes; it must be at least 16",
    );
    check(
        &["auth.admin_token="],
        "invalid value for auth.admin_token (from --set auth.admin_token): must not be empty",
    );
    check(
        &["server.drain_ms=10000"],
        "invalid value for server.drain_ms (from --set server.drain_ms): must be less than server.shutdown_grace_ms (10000)",
    );
    check(
        &["sale.batch_wait_ms=2000"],
        "invalid value for sale.batch_wait_ms (from --set sale.batch_wait_ms): must be less than sale.confirm_timeout_ms (2000)",
    );
    check(
        &["store.pool_max=2", "store.commit_lanes=3"],
        "invalid value for store.commit_lanes (from --set store.commit_lanes): must be at most store.pool_max (2)",
    );
    check(
        &["store.pool_max=100", "store.commit_lanes=65"],
        "invalid value for store.commit_lanes (from --set store.commit_lanes): must be at most 64",
    );
    check(
        &["auth.argon2_parallelism=4", "auth.argon2_memory_kib=16"],
        "invalid value for auth.argon2_memory_kib (from --set auth.argon2_memory_kib): must be at least 8 × auth.argon2_parallelism (32)",
    );
    // Rules are about the values, not the sources: fixing both keys passes.
    let fixed = ["--set", "http.head_bytes_max=1024", "--set", "http.uri_bytes_max=512"].map(String::from);
    assert!(Config::load(fixed, Vec::new()).is_ok());
    // A rate of 0 turns the limit off, so its burst may be 0 too.
    let off = ["--set", "limits.per_ip_rps=0", "--set", "limits.per_ip_burst=0"].map(String::from);
    assert!(Config::load(off, Vec::new()).is_ok());
}

#[test]
fn help_version_and_print_config() {
    let run = |args: &[&str]| Config::load(args.iter().map(|a| a.to_string()), Vec::new()).unwrap();
    // --help wins even over a bad flag, so a confused user can always get it.
    let Loaded::Help(help) = run(&["--lisen", "--help"]) else { panic!() };
    assert_eq!(help, help_text());
    assert!(
        help.contains("--listen ADDR") && help.contains("SECKILL_<SECTION>_<KEY>") && help.contains("sale.lease_ms")
    );
    let Loaded::Version(version) = run(&["--version"]) else { panic!() };
    assert!(version.starts_with("seckill "));

    let args = ["--print-config", "--admin-token", "adm1n", "--store", "mysql://u:dbpass@h:3306/d"];
    let Loaded::PrintConfig(printed) = run(&args) else { panic!() };
    assert!(!printed.contains("adm1n") && !printed.contains("dbpass"), "secrets leaked:\n{printed}");
    assert!(printed.contains(r#"admin_token = "<redacted>""#));
    assert!(printed.contains(r#"url = "mysql://u:<redacted>@h:3306/d""#));
    let table: toml::Table = toml::from_str(&printed).unwrap();
    assert_eq!(table["http"]["head_bytes_max"].as_integer(), Some(8192));
    assert!(table["auth"].get("secret").is_none(), "an absent optional key is commented out");
    assert!(printed.contains("\n# secret = "));
    assert!(
        !format!("{:?}", Config::load(args[1..].iter().map(|a| a.to_string()), Vec::new()).unwrap()).contains("adm1n")
    );
}
