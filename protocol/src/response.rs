//! Response encoding into a caller-owned buffer.
//!
//! Status lines and common header lines are static byte strings; the only
//! per-response formatting is `Content-Length`, written with `itoa`. The
//! writer appends to the connection's output buffer so that all responses
//! to a batch of pipelined requests leave in one `write`.

use crate::{DateHeader, HttpError, RequestInfo};

/// The interim response to `Expect: 100-continue`.
pub const CONTINUE_100: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// A status code. The associated constants are the ones the project uses;
/// each has a pre-built status line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Status(pub u16);

impl Status {
    pub const OK: Status = Status(200);
    pub const CREATED: Status = Status(201);
    pub const ACCEPTED: Status = Status(202);
    pub const NO_CONTENT: Status = Status(204);
    pub const NOT_MODIFIED: Status = Status(304);
    pub const BAD_REQUEST: Status = Status(400);
    pub const UNAUTHORIZED: Status = Status(401);
    pub const FORBIDDEN: Status = Status(403);
    pub const NOT_FOUND: Status = Status(404);
    pub const METHOD_NOT_ALLOWED: Status = Status(405);
    pub const REQUEST_TIMEOUT: Status = Status(408);
    pub const CONFLICT: Status = Status(409);
    pub const GONE: Status = Status(410);
    pub const PAYLOAD_TOO_LARGE: Status = Status(413);
    pub const URI_TOO_LONG: Status = Status(414);
    pub const UNSUPPORTED_MEDIA_TYPE: Status = Status(415);
    pub const TOO_MANY_REQUESTS: Status = Status(429);
    pub const HEADERS_TOO_LARGE: Status = Status(431);
    pub const INTERNAL_SERVER_ERROR: Status = Status(500);
    pub const NOT_IMPLEMENTED: Status = Status(501);
    pub const SERVICE_UNAVAILABLE: Status = Status(503);
    pub const VERSION_NOT_SUPPORTED: Status = Status(505);

    /// `HTTP/1.1 200 OK\r\n` and so on; a generic line for codes without a
    /// pre-built one.
    pub fn status_line(self) -> &'static [u8] {
        todo!()
    }
}

/// The body types the server sends, each a pre-built header line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentType {
    Json,
    Text,
    /// Prometheus text exposition format 0.0.4.
    Prometheus,
    Html,
    Png,
}

/// Writes one response at the end of `out`.
///
/// ```text
/// let mut w = ResponseWriter::new(out, &date, info, Status::OK);
/// w.header("Retry-After", b"1");
/// w.body(ContentType::Json, b"{\"status\":\"ok\"}");
/// ```
///
/// Status line, `Date`, and `Connection` (`close` when the request did not
/// keep the connection alive; `keep-alive` to an HTTP/1.0 client that asked
/// for it) are written by `new`. `body`/`body_with`/`empty` finish the
/// response: `Content-Length` is always written except for 1xx, 204 and
/// 304; for `HEAD` the body is left out but its length announced.
#[derive(Debug)]
pub struct ResponseWriter<'o> {
    out: &'o mut Vec<u8>,
    info: RequestInfo,
    status: Status,
}

impl<'o> ResponseWriter<'o> {
    pub fn new(out: &'o mut Vec<u8>, date: &DateHeader, info: RequestInfo, status: Status) -> Self {
        let _ = date;
        ResponseWriter { out, info, status }
    }

    /// Adds a header line. `name` and `value` must be valid field syntax
    /// (they come from our code, never from a client).
    pub fn header(&mut self, name: &str, value: &[u8]) -> &mut Self {
        let _ = (name, value);
        todo!()
    }

    /// Adds a header whose value is an integer (no allocation).
    pub fn header_u64(&mut self, name: &str, value: u64) -> &mut Self {
        let _ = (name, value);
        todo!()
    }

    /// Finishes with a body of the given type.
    pub fn body(self, content_type: ContentType, body: &[u8]) {
        let _ = (content_type, body);
        todo!()
    }

    /// Finishes with a body written by `write` straight into the output
    /// buffer (no intermediate buffer; the `Content-Length` is inserted
    /// afterwards by shifting the body).
    pub fn body_with(self, content_type: ContentType, write: impl FnOnce(&mut Vec<u8>)) {
        let _ = (content_type, write);
        todo!()
    }

    /// Finishes without a body (`Content-Length: 0`, or none for 204/304).
    pub fn empty(self) {
        todo!()
    }
}

/// Writes the response to a protocol error: its status, a JSON body
/// `{"code","message"}`, and `Connection: close` (the connection is closed
/// after it, whatever the request asked).
pub fn write_error(out: &mut Vec<u8>, date: &DateHeader, error: HttpError) {
    let _ = (out, date, error);
    todo!()
}
