//! `store.url` and `cache.url`: which backend, parsed once at start-up so
//! that the server matches on an enum instead of re-reading a string.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use toml::Value;

use crate::value::{ConfigValue, Kind, expect_str};

/// The durable store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// The embedded store, in one file. `sqlite://./data/seckill.db` is the
    /// relative path `./data/seckill.db`; `sqlite:///var/lib/s.db` is absolute.
    Sqlite { path: PathBuf },
    /// MySQL or MariaDB. `url` is normalised to the `mysql://` scheme (a
    /// `mariadb://` URL is accepted as an alias) and keeps its credentials.
    Mysql { url: String },
}

/// The shared cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheUrl {
    /// In-process, per instance: `memory://`.
    Memory,
    /// One Redis server: `redis://[user:pass@]host[:port][/db]`, or
    /// `rediss://` for TLS. `url` is as written.
    Redis { url: String },
    /// A Redis Cluster: `redis-cluster://[user:pass@]h1:7000,h2:7001`.
    /// `nodes` are the seed nodes as `host:port`.
    RedisCluster { nodes: Vec<String>, username: Option<String>, password: Option<String> },
}

const STORE_FORMS: &str = "expected sqlite://PATH or mysql://USER:PASS@HOST:PORT/DB";
const CACHE_FORMS: &str =
    "expected memory://, redis://HOST:PORT/DB, rediss://HOST:PORT/DB or redis-cluster://HOST:PORT,HOST:PORT";

/// Splits `user:pass@rest` into the credentials and the rest. The last `@`
/// separates them, because a password may itself hold an `@`.
fn split_userinfo(authority: &str) -> (Option<&str>, &str) {
    match authority.rsplit_once('@') {
        Some((userinfo, rest)) => (Some(userinfo), rest),
        None => (None, authority),
    }
}

/// Checks `host`, `host:port` or `[v6]:port`; `port_required` for cluster
/// nodes, which have no conventional port.
fn check_host_port(text: &str, port_required: bool) -> Result<(), String> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("has an unclosed [ in its host")?;
        (host, after.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err("has no host".to_owned());
    }
    match port {
        Some(port) if port.parse::<u16>().map_or(true, |p| p == 0) => {
            Err(format!("has a port {port:?} that is not between 1 and 65535"))
        }
        None if port_required => Err(format!("has a node {text:?} without a port")),
        _ => Ok(()),
    }
}

/// Replaces the password of `scheme://user:pass@host…` by `<redacted>`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match split_userinfo(authority) {
        (Some(userinfo), host) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{scheme}://{user}:<redacted>@{host}{path}")
        }
        (None, _) => url.to_owned(),
    }
}

impl FromStr for StoreUrl {
    type Err = String;

    /// The error completes the sentence `"text" …`.
    fn from_str(text: &str) -> Result<Self, String> {
        if let Some(path) = text.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err("has no file path (such as sqlite://./data/seckill.db)".to_owned());
            }
            return Ok(StoreUrl::Sqlite { path: PathBuf::from(path) });
        }
        let rest = text
            .strip_prefix("mysql://")
            .or_else(|| text.strip_prefix("mariadb://"))
            .ok_or_else(|| format!("has an unknown scheme; {STORE_FORMS}"))?;
        let (authority, db) = rest.split_once('/').ok_or_else(|| format!("names no database; {STORE_FORMS}"))?;
        let db = db.split_once('?').map_or(db, |(db, _)| db);
        if db.is_empty() {
            return Err(format!("names no database; {STORE_FORMS}"));
        }
        check_host_port(split_userinfo(authority).1, false)?;
        Ok(StoreUrl::Mysql { url: format!("mysql://{rest}") })
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Sqlite { path } => write!(f, "sqlite://{}", path.display()),
            StoreUrl::Mysql { url } => f.write_str(url),
        }
    }
}

impl ConfigValue for StoreUrl {
    const KIND: Kind = Kind::String;
    fn from_toml(value: &Value) -> Result<Self, String> {
        let text = expect_str(value)?;
        text.parse().map_err(|why| format!("{:?} {why}", redact_url(text)))
    }
    fn to_toml(&self) -> Option<Value> {
        Some(Value::String(self.to_string()))
    }
    fn to_toml_redacted(&self) -> Option<Value> {
        Some(Value::String(redact_url(&self.to_string())))
    }
}

impl FromStr for CacheUrl {
    type Err = String;

    /// The error completes the sentence `"text" …`.
    fn from_str(text: &str) -> Result<Self, String> {
        if text == "memory://" {
            return Ok(CacheUrl::Memory);
        }
        if let Some(rest) = text.strip_prefix("redis-cluster://") {
            return parse_cluster(rest);
        }
        let rest = text
            .strip_prefix("redis://")
            .or_else(|| text.strip_prefix("rediss://"))
            .ok_or_else(|| format!("has an unknown scheme; {CACHE_FORMS}"))?;
        let (authority, db) = rest.split_once('/').unwrap_or((rest, ""));
        if !db.is_empty() && db.parse::<u32>().is_err() {
            return Err(format!("has a database {db:?} that is not a number"));
        }
        check_host_port(split_userinfo(authority).1, false)?;
        Ok(CacheUrl::Redis { url: text.to_owned() })
    }
}

fn parse_cluster(rest: &str) -> Result<CacheUrl, String> {
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (userinfo, nodes) = split_userinfo(rest);
    let nodes: Vec<String> = nodes.split(',').map(str::to_owned).collect();
    for node in &nodes {
        check_host_port(node, true)?;
    }
    let (username, password) = match userinfo {
        None => (None, None),
        Some(info) => match info.split_once(':') {
            Some((user, pass)) => (Some(user), Some(pass)),
            None => (Some(info), None),
        },
    };
    let non_empty = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_owned);
    Ok(CacheUrl::RedisCluster { nodes, username: non_empty(username), password: non_empty(password) })
}

impl fmt::Display for CacheUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheUrl::Memory => f.write_str("memory://"),
            CacheUrl::Redis { url } => f.write_str(url),
            CacheUrl::RedisCluster { nodes, username, password } => {
                f.write_str("redis-cluster://")?;
                match (username, password) {
                    (None, None) => {}
                    (user, None) => write!(f, "{}@", user.as_deref().unwrap_or(""))?,
                    (user, Some(pass)) => write!(f, "{}:{pass}@", user.as_deref().unwrap_or(""))?,
                }
                f.write_str(&nodes.join(","))
            }
        }
    }
}

impl ConfigValue for CacheUrl {
    const KIND: Kind = Kind::String;
    fn from_toml(value: &Value) -> Result<Self, String> {
        let text = expect_str(value)?;
        text.parse().map_err(|why| format!("{:?} {why}", redact_url(text)))
    }
    fn to_toml(&self) -> Option<Value> {
        Some(Value::String(self.to_string()))
    }
    fn to_toml_redacted(&self) -> Option<Value> {
        Some(Value::String(redact_url(&self.to_string())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls() {
        let sqlite = |path: &str| StoreUrl::Sqlite { path: PathBuf::from(path) };
        assert_eq!("sqlite://./data/seckill.db".parse(), Ok(sqlite("./data/seckill.db")));
        assert_eq!("sqlite:///var/lib/s.db".parse(), Ok(sqlite("/var/lib/s.db")));
        let mysql = StoreUrl::Mysql { url: "mysql://u:p@db:3306/sale".to_owned() };
        assert_eq!("mysql://u:p@db:3306/sale".parse(), Ok(mysql.clone()));
        assert_eq!("mariadb://u:p@db:3306/sale".parse(), Ok(mysql));
        for text in ["sqlite://./a.db", "sqlite:///a.db", "mysql://u:p@h:1/d"] {
            assert_eq!(text.parse::<StoreUrl>().unwrap().to_string(), text, "round trip");
        }
    }

    #[test]
    fn bad_store_urls() {
        let check = |text: &str, why: &str| assert_eq!(text.parse::<StoreUrl>().unwrap_err(), why);
        check("sqlite://", "has no file path (such as sqlite://./data/seckill.db)");
        check("postgres://h/db", &format!("has an unknown scheme; {STORE_FORMS}"));
        check("mysql://u:p@h:3306", &format!("names no database; {STORE_FORMS}"));
        check("mysql://u:p@h:3306/", &format!("names no database; {STORE_FORMS}"));
        check("mysql://u:p@h:x/db", "has a port \"x\" that is not between 1 and 65535");
        check("mysql://u:p@/db", "has no host");
    }

    #[test]
    fn cache_urls() {
        assert_eq!("memory://".parse(), Ok(CacheUrl::Memory));
        let redis = |url: &str| CacheUrl::Redis { url: url.to_owned() };
        assert_eq!("redis://h:6379/0".parse(), Ok(redis("redis://h:6379/0")));
        assert_eq!("rediss://:pw@h".parse(), Ok(redis("rediss://:pw@h")));
        let cluster: CacheUrl = "redis-cluster://h1:7000,[::1]:7001".parse().unwrap();
        let nodes = vec!["h1:7000".to_owned(), "[::1]:7001".to_owned()];
        assert_eq!(cluster, CacheUrl::RedisCluster { nodes, username: None, password: None });
        let cluster: CacheUrl = "redis-cluster://:pw@h1:7000".parse().unwrap();
        assert_eq!(
            cluster,
            CacheUrl::RedisCluster {
                nodes: vec!["h1:7000".to_owned()],
                username: None,
                password: Some("pw".to_owned())
            }
        );
        assert_eq!(cluster.to_string(), "redis-cluster://:pw@h1:7000");
    }

    #[test]
    fn bad_cache_urls() {
        let check = |text: &str, why: &str| assert_eq!(text.parse::<CacheUrl>().unwrap_err(), why);
        check("memcached://h", &format!("has an unknown scheme; {CACHE_FORMS}"));
        check("redis://h:6379/x", "has a database \"x\" that is not a number");
        check("redis://h:0", "has a port \"0\" that is not between 1 and 65535");
        check("redis-cluster://h1:7000,h2", "has a node \"h2\" without a port");
        check("redis-cluster://", "has no host");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact_url("mysql://u:secret@h:3306/db"), "mysql://u:<redacted>@h:3306/db");
        assert_eq!(redact_url("redis://h:6379/0"), "redis://h:6379/0");
        assert_eq!(redact_url("redis-cluster://:pw@a:1,b:2"), "redis-cluster://:<redacted>@a:1,b:2");
    }
}
