//! The target URL: `http://host[:port][/path[?query]]`, resolved once at start-up.
//!
//! Only plain `http` is supported: the bench measures the server, not TLS.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};

/// A parsed `http://` URL and the address it resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The authority as written (`127.0.0.1:8080`), sent as the `Host` header.
    pub authority: String,
    /// Host without the port (brackets kept for IPv6 literals).
    pub host: String,
    pub port: u16,
    /// Origin-form request target, always starting with `/`.
    pub path: String,
}

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlError {
    /// Not `http://…` (`https` is refused on purpose).
    Scheme,
    EmptyHost,
    BadPort,
    /// Userinfo, fragments and whitespace have no place in a benchmark target.
    Unsupported,
    /// The host did not resolve to any address.
    Resolve(String),
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlError::Scheme => f.write_str("the URL must start with http:// (no TLS)"),
            UrlError::EmptyHost => f.write_str("the URL has no host"),
            UrlError::BadPort => f.write_str("the URL's port is not a number in 1..=65535"),
            UrlError::Unsupported => {
                f.write_str("the URL has userinfo, a fragment or whitespace, which are not supported")
            }
            UrlError::Resolve(e) => write!(f, "cannot resolve the URL's host: {e}"),
        }
    }
}

impl std::error::Error for UrlError {}

impl Target {
    /// Parses `http://host[:port][/path]`; the port defaults to 80 and the path to `/`.
    pub fn parse(url: &str) -> Result<Target, UrlError> {
        let rest = url.strip_prefix("http://").ok_or(UrlError::Scheme)?;
        if rest.contains(['#', '@', ' ', '\t', '\r', '\n']) {
            return Err(UrlError::Unsupported);
        }
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'?' => (&rest[..i], format!("/{}", &rest[i..])),
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, "/".to_string()),
        };
        let (host, port) = split_host_port(authority)?;
        if host.is_empty() {
            return Err(UrlError::EmptyHost);
        }
        Ok(Target { authority: authority.to_string(), host: host.to_string(), port, path })
    }

    /// Resolves the host, preferring the first address the resolver returns.
    pub fn resolve(&self) -> Result<SocketAddr, UrlError> {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        (host, self.port)
            .to_socket_addrs()
            .map_err(|e| UrlError::Resolve(e.to_string()))?
            .next()
            .ok_or_else(|| UrlError::Resolve("no address".to_string()))
    }

    /// The URL again, normalised (`http://authority/path`).
    pub fn url(&self) -> String {
        format!("http://{}{}", self.authority, self.path)
    }
}

fn split_host_port(authority: &str) -> Result<(&str, u16), UrlError> {
    // An IPv6 literal keeps its colons inside the brackets.
    let port_colon = match authority.rfind(']') {
        Some(close) => authority[close..].find(':').map(|i| close + i),
        None => authority.rfind(':'),
    };
    let Some(colon) = port_colon else {
        return Ok((authority, 80));
    };
    let port: u16 = authority[colon + 1..].parse().map_err(|_| UrlError::BadPort)?;
    if port == 0 {
        return Err(UrlError::BadPort);
    }
    Ok((&authority[..colon], port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str, host: &str, port: u16, path: &str) {
        let t = Target::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!((t.host.as_str(), t.port, t.path.as_str()), (host, port, path), "{url}");
    }

    #[test]
    fn parses_the_usual_forms() {
        check("http://127.0.0.1:8080/healthz", "127.0.0.1", 8080, "/healthz");
        check("http://localhost/", "localhost", 80, "/");
        check("http://localhost", "localhost", 80, "/");
        check("http://h:1/a/b?c=d&e", "h", 1, "/a/b?c=d&e");
        check("http://h:9?x=1", "h", 9, "/?x=1");
        check("http://[::1]:8080/p", "[::1]", 8080, "/p");
        check("http://[::1]/p", "[::1]", 80, "/p");
    }

    #[test]
    fn refuses_what_it_cannot_send() {
        assert_eq!(Target::parse("https://h/"), Err(UrlError::Scheme));
        assert_eq!(Target::parse("h:80/"), Err(UrlError::Scheme));
        assert_eq!(Target::parse("http://:80/"), Err(UrlError::EmptyHost));
        assert_eq!(Target::parse("http:///x"), Err(UrlError::EmptyHost));
        assert_eq!(Target::parse("http://h:0/"), Err(UrlError::BadPort));
        assert_eq!(Target::parse("http://h:70000/"), Err(UrlError::BadPort));
        assert_eq!(Target::parse("http://h:x/"), Err(UrlError::BadPort));
        assert_eq!(Target::parse("http://u@h/"), Err(UrlError::Unsupported));
        assert_eq!(Target::parse("http://h/#f"), Err(UrlError::Unsupported));
    }

    #[test]
    fn resolves_literals() {
        let t = Target::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(t.resolve().unwrap(), "127.0.0.1:8080".parse().unwrap());
        let t = Target::parse("http://[::1]:8080/").unwrap();
        assert_eq!(t.resolve().unwrap(), "[::1]:8080".parse().unwrap());
        assert_eq!(t.url(), "http://[::1]:8080/");
    }
}
