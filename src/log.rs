//! Structured logs: one JSON object per line on stderr, at or above the
//! configured level. Logging is for events (start, stop, faults), never per
//! request, so a line may allocate.

use std::fmt::{Display, Write as _};
use std::io::Write as _;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
    Trace = 5,
}

impl Level {
    const fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        }
    }
}

static MAX_LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

pub fn set_level(level: Level) {
    MAX_LEVEL.store(level as u8, Relaxed);
}

pub fn enabled(level: Level) -> bool {
    level as u8 <= MAX_LEVEL.load(Relaxed)
}

/// Writes one line: `{"ts_ms":…,"level":"info","msg":"…","key":"value",…}`.
pub fn emit(level: Level, msg: &str, fields: &[(&str, &dyn Display)]) {
    let ts_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let mut line = format!("{{\"ts_ms\":{ts_ms},\"level\":\"{}\",\"msg\":", level.name());
    push_json_string(&mut line, msg);
    for (key, value) in fields {
        line.push(',');
        push_json_string(&mut line, key);
        line.push(':');
        push_json_string(&mut line, &value.to_string());
    }
    line.push_str("}\n");
    // A failed write to stderr has nowhere better to be reported.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `log!(Level::Info, "listening", addr = addr, threads = n)`.
#[macro_export]
macro_rules! log {
    ($level:expr, $msg:expr $(, $key:ident = $value:expr)* $(,)?) => {
        if $crate::log::enabled($level) {
            $crate::log::emit($level, $msg, &[$((stringify!($key), &$value as &dyn ::std::fmt::Display)),*]);
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_json() {
        let mut s = String::new();
        push_json_string(&mut s, "a\"b\\c\nd\u{1}");
        assert_eq!(s, "\"a\\\"b\\\\c\\nd\\u0001\"");
        let parsed: String = serde_json::from_str(&s).unwrap();
        assert_eq!(parsed, "a\"b\\c\nd\u{1}");
    }

    #[test]
    fn levels_filter() {
        set_level(Level::Warn);
        assert!(enabled(Level::Error));
        assert!(!enabled(Level::Info));
        set_level(Level::Info);
    }
}
