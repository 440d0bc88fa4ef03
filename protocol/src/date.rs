//! The `Date` header (RFC 9110 §6.6.1), rendered in IMF-fixdate once a
//! second into a fixed buffer. Each event loop owns one and refreshes it once
//! per tick; encoding a response copies the bytes.

use std::time::SystemTime;

/// `Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n`, re-rendered when the second changes.
#[derive(Debug, Clone)]
pub struct DateHeader {
    line: [u8; 37],
    second: u64,
}

impl DateHeader {
    /// Rendered for `now`.
    pub fn new(now: SystemTime) -> Self {
        let mut d = DateHeader { line: *b"Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n", second: u64::MAX };
        d.refresh(now);
        d
    }

    /// Re-renders if `now` falls in another second than the last rendering.
    pub fn refresh(&mut self, now: SystemTime) {
        let _ = now;
        todo!()
    }

    /// The whole header line including `Date: ` and the trailing CRLF.
    pub fn line(&self) -> &[u8; 37] {
        &self.line
    }
}
