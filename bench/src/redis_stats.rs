//! What a sale cost Redis, by Redis's own count: `INFO commandstats` read
//! just before the buy and just after it, over a plain RESP connection (the
//! bench links no Redis client, and needs only this one command).
//!
//! Redis counts every client's commands, so the figure is only the sale's
//! when nothing else uses that Redis meanwhile: point it at a Redis of the
//! benchmark's own. The two `INFO` calls themselves are left out.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Calls per command name (lower case, as Redis names them).
pub type Calls = BTreeMap<String, u64>;

/// `host:port` of `redis://host:port[/db]` (or of `host:port` itself).
pub fn address(url: &str) -> Result<String, String> {
    let rest = url.strip_prefix("redis://").unwrap_or(url);
    let host_port = rest.split('/').next().unwrap_or(rest);
    let host_port = host_port.rsplit('@').next().unwrap_or(host_port);
    if host_port.is_empty() {
        return Err(format!("{url}: no host"));
    }
    Ok(if host_port.contains(':') { host_port.to_string() } else { format!("{host_port}:6379") })
}

/// The commands Redis at `address` has run since its statistics were reset.
pub fn read(address: &str) -> Result<Calls, String> {
    let fail = |e: std::io::Error| format!("INFO commandstats from {address}: {e}");
    let stream = TcpStream::connect(address).map_err(fail)?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(fail)?;
    (&stream).write_all(b"*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n").map_err(fail)?;
    let mut reader = BufReader::new(&stream);
    let mut header = String::new();
    reader.read_line(&mut header).map_err(fail)?;
    let length: usize = header
        .strip_prefix('$')
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| format!("INFO commandstats from {address}: answered {header:?}"))?;
    let mut body = vec![0; length + 2];
    std::io::Read::read_exact(&mut reader, &mut body).map_err(fail)?;
    Ok(parse(&String::from_utf8_lossy(&body)))
}

/// `cmdstat_get:calls=3,usec=…` lines → `{"get": 3}`.
fn parse(info: &str) -> Calls {
    info.lines()
        .filter_map(|line| {
            let (name, fields) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = fields.split(',').find_map(|f| f.strip_prefix("calls="))?.parse().ok()?;
            Some((name.to_string(), calls))
        })
        .collect()
}

/// The commands run between two readings, without the readings themselves.
pub fn between(before: &Calls, after: &Calls) -> Calls {
    after
        .iter()
        .filter(|(name, _)| name.as_str() != "info")
        .filter_map(|(name, &calls)| {
            let ran = calls.saturating_sub(before.get(name).copied().unwrap_or(0));
            (ran > 0).then(|| (name.clone(), ran))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(address("redis://127.0.0.1:6380/0").unwrap(), "127.0.0.1:6380");
        assert_eq!(address("redis://user:pw@h:1").unwrap(), "h:1");
        assert_eq!(address("localhost").unwrap(), "localhost:6379");
        assert!(address("redis://").is_err());
    }

    #[test]
    fn counts_are_parsed_and_subtracted() {
        let before =
            parse("# Commandstats\r\ncmdstat_get:calls=3,usec=9,usec_per_call=3.00\r\ncmdstat_info:calls=1,usec=1\r\n");
        let after = parse(
            "# Commandstats\r\ncmdstat_get:calls=5,usec=9\r\ncmdstat_evalsha:calls=2,usec=1\r\ncmdstat_info:calls=2,usec=1\r\n",
        );
        assert_eq!(before["get"], 3);
        let ran = between(&before, &after);
        assert_eq!(ran, Calls::from([("get".into(), 2), ("evalsha".into(), 2)]));
    }
}
