//! The size limits of the `[http]` configuration section that the parser
//! enforces. Timeouts and connection counts belong to the reactor.

/// Size limits for one request. Each has its status: see [`crate::HttpError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Request line plus header fields plus the blank line; beyond → 431
    /// (but a request-target longer than `uri_bytes_max` → 414 first).
    pub head_bytes_max: usize,
    /// The request-target; beyond → 414.
    pub uri_bytes_max: usize,
    /// Header fields; beyond → 431.
    pub header_count_max: usize,
    /// The decoded body; beyond → 413.
    pub body_bytes_max: usize,
}

impl Limits {
    /// The largest `header_count_max` the parser supports (its header array
    /// lives on the stack). Configuration validation rejects more.
    pub const HEADER_COUNT_CEILING: usize = 256;
}

impl Default for Limits {
    fn default() -> Self {
        Limits { head_bytes_max: 8192, uri_bytes_max: 4096, header_count_max: 64, body_bytes_max: 16384 }
    }
}
