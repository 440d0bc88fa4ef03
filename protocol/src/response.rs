//! Response encoding into a caller-owned buffer.
//!
//! Status lines and common header lines are static byte strings; the only
//! per-response formatting is `Content-Length`, written with `itoa`. The
//! writer appends to the connection's output buffer so that all responses
//! to a batch of pipelined requests leave in one `write`.

use crate::{DateHeader, HttpError, RequestInfo, Version};

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
    /// pre-built one (`HTTP/1.1 299 \r\n`: the reason phrase is optional,
    /// RFC 9112 §4). A code outside 100–999 is not HTTP; it is a bug in the
    /// caller and answered as 500 rather than sent malformed.
    pub fn status_line(self) -> &'static [u8] {
        match self.0 {
            100 => b"HTTP/1.1 100 Continue\r\n",
            200 => b"HTTP/1.1 200 OK\r\n",
            201 => b"HTTP/1.1 201 Created\r\n",
            202 => b"HTTP/1.1 202 Accepted\r\n",
            204 => b"HTTP/1.1 204 No Content\r\n",
            304 => b"HTTP/1.1 304 Not Modified\r\n",
            400 => b"HTTP/1.1 400 Bad Request\r\n",
            401 => b"HTTP/1.1 401 Unauthorized\r\n",
            403 => b"HTTP/1.1 403 Forbidden\r\n",
            404 => b"HTTP/1.1 404 Not Found\r\n",
            405 => b"HTTP/1.1 405 Method Not Allowed\r\n",
            408 => b"HTTP/1.1 408 Request Timeout\r\n",
            409 => b"HTTP/1.1 409 Conflict\r\n",
            410 => b"HTTP/1.1 410 Gone\r\n",
            413 => b"HTTP/1.1 413 Content Too Large\r\n",
            414 => b"HTTP/1.1 414 URI Too Long\r\n",
            415 => b"HTTP/1.1 415 Unsupported Media Type\r\n",
            429 => b"HTTP/1.1 429 Too Many Requests\r\n",
            431 => b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
            500 => b"HTTP/1.1 500 Internal Server Error\r\n",
            501 => b"HTTP/1.1 501 Not Implemented\r\n",
            503 => b"HTTP/1.1 503 Service Unavailable\r\n",
            505 => b"HTTP/1.1 505 HTTP Version Not Supported\r\n",
            code @ 100..=999 => &GENERIC_STATUS_LINES[(code - 100) as usize],
            _ => b"HTTP/1.1 500 Internal Server Error\r\n",
        }
    }

    /// Whether a response with this status carries no content and so no
    /// `Content-Length` (RFC 9110 §8.6: 1xx, 204; 304 repeats the 200's
    /// metadata but sends none).
    pub const fn is_bodiless(self) -> bool {
        matches!(self.0, 100..=199 | 204 | 304)
    }
}

/// `HTTP/1.1 NNN \r\n` for every three-digit code, built at compile time so
/// that the fallback of [`Status::status_line`] is still a static slice.
static GENERIC_STATUS_LINES: [[u8; 15]; 900] = generic_status_lines();

const fn generic_status_lines() -> [[u8; 15]; 900] {
    let mut lines = [*b"HTTP/1.1 000 \r\n"; 900];
    let mut i = 0;
    while i < 900 {
        let code = i + 100;
        lines[i][9] = b'0' + (code / 100) as u8;
        lines[i][10] = b'0' + (code / 10 % 10) as u8;
        lines[i][11] = b'0' + (code % 10) as u8;
        i += 1;
    }
    lines
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

impl ContentType {
    /// The whole `Content-Type` header line.
    pub const fn line(self) -> &'static [u8] {
        match self {
            ContentType::Json => b"Content-Type: application/json\r\n",
            ContentType::Text => b"Content-Type: text/plain; charset=utf-8\r\n",
            ContentType::Prometheus => b"Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n",
            ContentType::Html => b"Content-Type: text/html; charset=utf-8\r\n",
            ContentType::Png => b"Content-Type: image/png\r\n",
        }
    }
}

const CONTENT_LENGTH: &[u8] = b"Content-Length: ";
/// `Content-Length: ` + up to 20 digits + CRLF + the blank line's CRLF.
const CONTENT_LENGTH_LINE_MAX: usize = 16 + 20 + 4;

impl<'o> ResponseWriter<'o> {
    pub fn new(out: &'o mut Vec<u8>, date: &DateHeader, info: RequestInfo, status: Status) -> Self {
        out.extend_from_slice(status.status_line());
        out.extend_from_slice(date.line());
        if !info.keep_alive {
            out.extend_from_slice(b"Connection: close\r\n");
        } else if info.version == Version::Http10 {
            // HTTP/1.0 closes by default: say that we keep it open (RFC 9112 §9.3).
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        ResponseWriter { out, info, status }
    }

    /// Adds a header line. `name` and `value` must be valid field syntax
    /// (they come from our code, never from a client).
    pub fn header(&mut self, name: &str, value: &[u8]) -> &mut Self {
        debug_assert!(!value.contains(&b'\n') && !value.contains(&b'\r'), "header value with a line break");
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b": ");
        self.out.extend_from_slice(value);
        self.out.extend_from_slice(b"\r\n");
        self
    }

    /// Adds a header whose value is an integer (no allocation).
    pub fn header_u64(&mut self, name: &str, value: u64) -> &mut Self {
        let mut digits = itoa::Buffer::new();
        self.header(name, digits.format(value).as_bytes())
    }

    /// Finishes with a body of the given type. For 1xx/204/304 the body is
    /// dropped: those responses cannot carry one.
    pub fn body(self, content_type: ContentType, body: &[u8]) {
        if self.status.is_bodiless() {
            return self.empty();
        }
        self.out.extend_from_slice(content_type.line());
        write_content_length(self.out, body.len());
        if !self.info.head_only {
            self.out.extend_from_slice(body);
        }
    }

    /// Finishes with a body written by `write` straight into the output
    /// buffer (no intermediate buffer; the `Content-Length` is inserted
    /// afterwards by shifting the body). `write` must only append to the
    /// buffer it is given.
    pub fn body_with(self, content_type: ContentType, write: impl FnOnce(&mut Vec<u8>)) {
        if self.status.is_bodiless() {
            return self.empty();
        }
        self.out.extend_from_slice(content_type.line());
        let body_start = self.out.len();
        write(self.out);
        debug_assert!(self.out.len() >= body_start, "body_with's writer truncated the head");
        let body_len = self.out.len() - body_start;

        let mut line = [0u8; CONTENT_LENGTH_LINE_MAX];
        let line_len = content_length_line(&mut line, body_len);
        let line = &line[..line_len];
        if self.info.head_only {
            // HEAD: the length is announced, the bytes are not sent.
            self.out.truncate(body_start);
            self.out.extend_from_slice(line);
            return;
        }
        // Grow by the line's length, slide the body right, drop the line in front.
        self.out.extend_from_slice(line);
        self.out.copy_within(body_start..body_start + body_len, body_start + line_len);
        self.out[body_start..body_start + line_len].copy_from_slice(line);
    }

    /// Finishes without a body (`Content-Length: 0`, or none for 1xx/204/304).
    pub fn empty(self) {
        if self.status.is_bodiless() {
            self.out.extend_from_slice(b"\r\n");
        } else {
            self.out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
        }
    }
}

/// `Content-Length: N\r\n\r\n` (the header and the end of the head).
fn write_content_length(out: &mut Vec<u8>, len: usize) {
    let mut line = [0u8; CONTENT_LENGTH_LINE_MAX];
    let line_len = content_length_line(&mut line, len);
    out.extend_from_slice(&line[..line_len]);
}

fn content_length_line(line: &mut [u8; CONTENT_LENGTH_LINE_MAX], len: usize) -> usize {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(len).as_bytes();
    let mut at = 0;
    for part in [CONTENT_LENGTH, digits, b"\r\n\r\n"] {
        line[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    at
}

/// Writes the response to a protocol error: its status, a JSON body
/// `{"code","message"}`, and `Connection: close` (the connection is closed
/// after it, whatever the request asked).
pub fn write_error(out: &mut Vec<u8>, date: &DateHeader, error: HttpError) {
    // The request could not be understood, so nothing of it shapes the
    // answer: HTTP/1.1, a body even if it was a HEAD, and close.
    let info = RequestInfo { version: Version::Http11, keep_alive: false, head_only: false };
    ResponseWriter::new(out, date, info, error.status()).body_with(ContentType::Json, |body| {
        // `code` and `message` are static ASCII without quotes or
        // backslashes (a test checks), so they need no escaping.
        body.extend_from_slice(b"{\"code\":\"");
        body.extend_from_slice(error.code().as_bytes());
        body.extend_from_slice(b"\",\"message\":\"");
        body.extend_from_slice(error.message().as_bytes());
        body.extend_from_slice(b"\"}");
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    const DATE: &str = "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n";

    fn date() -> DateHeader {
        DateHeader::new(UNIX_EPOCH + Duration::from_secs(784_111_777))
    }

    fn info(version: Version, keep_alive: bool, head_only: bool) -> RequestInfo {
        RequestInfo { version, keep_alive, head_only }
    }

    /// Encodes with `write` and compares the bytes.
    fn check(write: impl FnOnce(&mut Vec<u8>, &DateHeader), expected: &str) {
        let mut out = b"previous".to_vec();
        write(&mut out, &date());
        assert_eq!(String::from_utf8_lossy(&out[8..]), expected);
        assert_eq!(&out[..8], b"previous", "appends, never overwrites");
    }

    #[test]
    fn ok_json() {
        let expected = format!(
            "HTTP/1.1 200 OK\r\n{DATE}Content-Type: application/json\r\nContent-Length: 15\r\n\r\n{{\"status\":\"ok\"}}"
        );
        check(
            |out, date| {
                ResponseWriter::new(out, date, info(Version::Http11, true, false), Status::OK)
                    .body(ContentType::Json, b"{\"status\":\"ok\"}")
            },
            &expected,
        );
        check(
            |out, date| {
                ResponseWriter::new(out, date, info(Version::Http11, true, false), Status::OK)
                    .body_with(ContentType::Json, |b| b.extend_from_slice(b"{\"status\":\"ok\"}"))
            },
            &expected,
        );
    }

    #[test]
    fn head_announces_the_length_without_the_body() {
        let expected = format!("HTTP/1.1 200 OK\r\n{DATE}Content-Type: application/json\r\nContent-Length: 15\r\n\r\n");
        check(
            |out, date| {
                ResponseWriter::new(out, date, info(Version::Http11, true, true), Status::OK)
                    .body(ContentType::Json, b"{\"status\":\"ok\"}")
            },
            &expected,
        );
        check(
            |out, date| {
                ResponseWriter::new(out, date, info(Version::Http11, true, true), Status::OK)
                    .body_with(ContentType::Json, |b| b.extend_from_slice(b"{\"status\":\"ok\"}"))
            },
            &expected,
        );
    }

    #[test]
    fn bodiless_statuses() {
        check(
            |out, date| ResponseWriter::new(out, date, info(Version::Http11, true, false), Status::NO_CONTENT).empty(),
            &format!("HTTP/1.1 204 No Content\r\n{DATE}\r\n"),
        );
        // A body handed to a 304 is dropped, with no Content-Length.
        check(
            |out, date| {
                let mut w = ResponseWriter::new(out, date, info(Version::Http11, true, false), Status::NOT_MODIFIED);
                w.header("ETag", b"\"v1\"");
                w.body(ContentType::Html, b"<p>page</p>");
            },
            &format!("HTTP/1.1 304 Not Modified\r\n{DATE}ETag: \"v1\"\r\n\r\n"),
        );
        check(
            |out, date| ResponseWriter::new(out, date, info(Version::Http11, true, false), Status::CREATED).empty(),
            &format!("HTTP/1.1 201 Created\r\n{DATE}Content-Length: 0\r\n\r\n"),
        );
    }

    #[test]
    fn connection_header() {
        check(
            |out, date| {
                ResponseWriter::new(out, date, info(Version::Http10, true, false), Status::OK)
                    .body(ContentType::Text, b"hi")
            },
            &format!(
                "HTTP/1.1 200 OK\r\n{DATE}Connection: keep-alive\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\n\r\nhi"
            ),
        );
        check(
            |out, date| {
                ResponseWriter::new(out, date, info(Version::Http10, false, false), Status::OK)
                    .body(ContentType::Text, b"hi")
            },
            &format!(
                "HTTP/1.1 200 OK\r\n{DATE}Connection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\n\r\nhi"
            ),
        );
        check(
            |out, date| {
                ResponseWriter::new(out, date, info(Version::Http11, false, false), Status::TOO_MANY_REQUESTS)
                    .header_u64("Retry-After", 1)
                    .header("X-A", b"b");
            },
            &format!("HTTP/1.1 429 Too Many Requests\r\n{DATE}Connection: close\r\nRetry-After: 1\r\nX-A: b\r\n"),
        );
    }

    #[test]
    fn errors() {
        let body = "{\"code\":\"body_too_large\",\"message\":\"the request body is larger than this server accepts\"}";
        check(
            |out, date| write_error(out, date, HttpError::BodyTooLarge),
            &format!(
                "HTTP/1.1 413 Content Too Large\r\n{DATE}Connection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        );
    }

    /// Codes and messages go into JSON unescaped: they must need no escaping.
    #[test]
    fn error_texts_are_json_safe() {
        use crate::error::BadRequest::*;
        let reasons = [
            RequestLine,
            Method,
            Target,
            Version,
            HeaderName,
            HeaderValue,
            LineEnding,
            ObsFold,
            MissingHost,
            DuplicateHost,
            InvalidHost,
            ContentLengthAndTransferEncoding,
            InvalidContentLength,
            ConflictingContentLength,
            InvalidTransferEncoding,
            ChunkSize,
            ChunkExtension,
            ChunkTerminator,
            Trailer,
        ];
        let errors = reasons.map(HttpError::BadRequest).into_iter().chain([
            HttpError::HeadTimeout,
            HttpError::BodyTooLarge,
            HttpError::UriTooLong,
            HttpError::HeadTooLarge,
            HttpError::UnsupportedTransferCoding,
            HttpError::VersionNotSupported,
        ]);
        for error in errors {
            for text in [error.code(), error.message()] {
                assert!(
                    !text.is_empty() && text.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\'),
                    "{text}"
                );
            }
            assert!(error.status().status_line().starts_with(format!("HTTP/1.1 {} ", error.status().0).as_bytes()));
        }
    }

    #[test]
    fn status_lines() {
        assert_eq!(Status::OK.status_line(), b"HTTP/1.1 200 OK\r\n");
        assert_eq!(Status(299).status_line(), b"HTTP/1.1 299 \r\n");
        assert_eq!(Status(100).status_line(), b"HTTP/1.1 100 Continue\r\n");
        assert_eq!(Status(999).status_line(), b"HTTP/1.1 999 \r\n");
        assert_eq!(Status(42).status_line(), b"HTTP/1.1 500 Internal Server Error\r\n");
        assert_eq!(CONTINUE_100, b"HTTP/1.1 100 Continue\r\n\r\n");
    }
}
