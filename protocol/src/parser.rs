//! The per-connection request parser.
//!
//! The caller keeps the unconsumed bytes of the connection in one buffer and
//! calls [`RequestParser::parse`] whenever more arrive. The parser remembers
//! how far it has searched for the end of the head and how far it has decoded
//! a chunked body, so a client that sends one byte at a time costs linear, not
//! quadratic, work. On `Complete` the caller handles the request and then
//! drops `wire_len()` bytes from the front of its buffer before calling again.
//! Between two calls for the same request the caller may only append to the
//! buffer.
//!
//! How a request is read:
//! 1. `HeadScan` looks for the blank line that ends the head, resuming
//!    where it stopped. It accepts CRLF and bare LF line endings (RFC 9112
//!    §2.2), refuses a bare CR at once, skips empty lines before the request
//!    line (§2.2), and enforces `uri_bytes_max` (414) as soon as the target
//!    is too long and `head_bytes_max` (431) as soon as no end is in reach.
//! 2. Once the head is whole, the request line is checked by our own code
//!    (the version decides 400 / 505 / HTTP/1.1, which httparse cannot) and
//!    the fields by httparse with its strictest settings; then the framing
//!    fields are judged (RFC 9112 §6). The results are kept as offsets, so
//!    the head is never parsed twice however slowly its body comes.
//! 3. The body is framed by `Content-Length` or decoded incrementally from
//!    `chunked` into a buffer the parser owns and reuses.
//!
//! Decisions where the RFCs leave a choice, all smuggling-safe:
//! - Two `Content-Length` lines are refused even when equal, and so is the
//!   list form `5, 5` (RFC 9110 §8.6 allows either refusing or merging).
//! - `Transfer-Encoding` with any coding but `chunked` (gzip, deflate, and
//!   `identity`, which RFC 7230 removed from the registry) → 501; `chunked`
//!   not last or repeated → 400; on HTTP/1.0 → 400 (RFC 9112 §6.1).
//! - An `Expect` other than `100-continue` is ignored (RFC 9110 §10.1.1
//!   allows 417; ignoring keeps old clients working). `100-continue` from
//!   an HTTP/1.0 client is ignored as §10.1.1 requires.
//! - `HTTP/1.2`…`HTTP/1.9` are served as HTTP/1.1 (RFC 9110 §2.5); another
//!   major version → 505; anything that is not `HTTP/d.d` → 400.
//! - HTTP/1.0 may omit `Host` but may not repeat it.
//! - In absolute-form the target's authority replaces `Host` (RFC 9112
//!   §3.2.2), which must still be present and valid.

use std::mem::MaybeUninit;

use crate::chunked::{ChunkLimits, ChunkedDecoder, alphanumeric_and, is_tchar};
use crate::error::BadRequest;
use crate::request::trim_ows;
use crate::{Headers, HttpError, Limits, Method, Request, Version};

/// The outcome of one call to [`RequestParser::parse`].
// Large by design: boxing the request would allocate on every one.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Parse<'b> {
    /// A whole request, head and body, is at the front of the buffer.
    Complete(Request<'b>),
    /// More bytes are needed. `send_continue` is true exactly once per
    /// request, when its head is complete, it carries `Expect: 100-continue`
    /// and its body has not yet arrived: write [`crate::CONTINUE_100`].
    Partial { send_continue: bool },
    /// The request is refused; answer with `error.status()` and close.
    Error(HttpError),
}

/// Parser state for one connection. Reused for every request on it.
#[derive(Debug)]
pub struct RequestParser {
    limits: Limits,
    scan: HeadScan,
    /// The parsed head of the current request, once it is complete.
    head: Option<Head>,
    /// Where chunked decoding resumes, as an offset into the buffer.
    body_pos: usize,
    chunked: ChunkedDecoder,
    /// The decoded chunked body. Cleared per request, never shrunk.
    decoded: Vec<u8>,
    continue_sent: bool,
    /// The buffer length at the last call, to notice a caller that dropped
    /// bytes of a request still in progress.
    seen_len: usize,
    /// A refused connection stays refused.
    failed: Option<HttpError>,
}

impl RequestParser {
    pub fn new(limits: Limits) -> Self {
        RequestParser {
            limits,
            scan: HeadScan::default(),
            head: None,
            body_pos: 0,
            chunked: ChunkedDecoder::default(),
            decoded: Vec::new(),
            continue_sent: false,
            seen_len: 0,
            failed: None,
        }
    }

    /// Parses the request at the front of `buf`, which holds every
    /// unconsumed byte of the connection (a part of a request, or several
    /// pipelined ones). Between calls for one request the caller only
    /// appends to `buf`; after `Complete` it drops `wire_len()` bytes.
    pub fn parse<'b>(&'b mut self, buf: &'b [u8]) -> Parse<'b> {
        if let Some(error) = self.failed {
            return Parse::Error(error);
        }
        if buf.len() < self.seen_len {
            // Bytes of an unfinished request are gone: a parser reused
            // without `reset`, or a caller that dropped them. Start over
            // on what is there rather than index past the buffer.
            self.start_next_request();
        }
        self.seen_len = buf.len();
        match self.advance(buf) {
            Err(error) => {
                self.failed = Some(error);
                Parse::Error(error)
            }
            Ok(None) => {
                let send_continue = self.head.is_some_and(|h| h.expects_continue) && !self.continue_sent;
                self.continue_sent |= send_continue;
                Parse::Partial { send_continue }
            }
            Ok(Some(end)) => {
                // `advance` returns an end only once the head is parsed.
                let Some(head) = self.head else { return Parse::Error(HttpError::BadRequest(BadRequest::RequestLine)) };
                self.start_next_request();
                let this: &'b RequestParser = self;
                let body = match head.framing {
                    Framing::None => &[][..],
                    Framing::Length(_) => &buf[head.end..end],
                    Framing::Chunked => &this.decoded[..],
                };
                Parse::Complete(head.request(buf, body, end))
            }
        }
    }

    /// Whether a request has begun (some of its bytes are buffered) but is
    /// not complete. The reactor uses this for `head_timeout_ms`. Empty
    /// lines between requests (RFC 9112 §2.2) do not count as a beginning.
    pub fn in_progress(&self) -> bool {
        self.head.is_some() || self.scan.started()
    }

    /// Forgets any partial request (the connection is being reused for a
    /// fresh client, or was reset). Keeps the decode buffer's allocation.
    pub fn reset(&mut self) {
        self.start_next_request();
        self.failed = None;
        self.decoded.clear();
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn start_next_request(&mut self) {
        self.scan = HeadScan::default();
        self.head = None;
        self.body_pos = 0;
        self.chunked = ChunkedDecoder::default();
        self.continue_sent = false;
        self.seen_len = 0;
    }

    /// Moves the current request forward; `Some(end)` when it is complete
    /// and occupies `buf[..end]`.
    fn advance(&mut self, buf: &[u8]) -> Result<Option<usize>, HttpError> {
        let head = match self.head {
            Some(head) => head,
            None => {
                let Some(head_end) = self.scan.advance(buf, &self.limits)? else { return Ok(None) };
                let head = parse_head(buf, &self.scan, head_end, &self.limits)?;
                if head.framing == Framing::Chunked {
                    self.decoded.clear();
                    self.body_pos = head.end;
                }
                self.head = Some(head);
                head
            }
        };
        match head.framing {
            Framing::None => Ok(Some(head.end)),
            Framing::Length(len) => Ok((buf.len() - head.end >= len).then_some(head.end + len)),
            Framing::Chunked => {
                let limits = ChunkLimits {
                    body_bytes_max: self.limits.body_bytes_max,
                    trailer_bytes_max: self.limits.head_bytes_max,
                };
                let done = self.chunked.decode(buf, &mut self.body_pos, &mut self.decoded, limits)?;
                Ok(done.then_some(self.body_pos))
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Finding the end of the head.

/// The resumable search for the end of the head. Offsets are into the
/// caller's buffer, whose front does not move while a request is in progress.
#[derive(Clone, Copy, Debug, Default)]
struct HeadScan {
    /// The next byte to look at.
    pos: usize,
    /// Where the request line starts (after any empty lines).
    start: usize,
    /// Where the current line starts.
    line_start: usize,
    /// The first two spaces of the request line: the target lies between.
    sp1: Option<usize>,
    sp2: Option<usize>,
    /// The end of the request line (before its CR or LF), once seen.
    request_line_end: Option<usize>,
    /// Where the header fields start (just after the request line).
    fields_start: usize,
}

impl HeadScan {
    fn started(&self) -> bool {
        self.pos > self.start
    }

    /// `Some(end)` when `buf[..end]` holds the whole head (`end` just past
    /// the blank line). Looks at each byte once across calls, except a CR
    /// at the end of the data, which waits for the byte after it.
    fn advance(&mut self, buf: &[u8], limits: &Limits) -> Result<Option<usize>, HttpError> {
        // Nothing past `head_bytes_max` can belong to an acceptable head.
        let window_end = buf.len().min(limits.head_bytes_max);
        while self.pos < window_end {
            let in_request_line = self.request_line_end.is_none();
            let rest = &buf[self.pos..window_end];
            let found = if in_request_line {
                memchr::memchr3(b' ', b'\r', b'\n', rest)
            } else {
                memchr::memchr2(b'\r', b'\n', rest)
            };
            let at = found.map_or(window_end, |offset| self.pos + offset);
            if in_request_line {
                self.check_target_len(at, limits)?;
            }
            if found.is_none() {
                self.pos = window_end;
                break;
            }
            let next_line = match buf[at] {
                b' ' => {
                    if self.sp1.is_none() {
                        self.sp1 = Some(at);
                    } else if self.sp2.is_none() {
                        self.sp2 = Some(at);
                    }
                    self.pos = at + 1;
                    continue;
                }
                b'\r' if at + 1 == window_end => {
                    self.pos = at; // wait for the byte after the CR
                    break;
                }
                b'\r' if buf[at + 1] != b'\n' => return Err(HttpError::BadRequest(BadRequest::LineEnding)),
                b'\r' => at + 2,
                _ => at + 1,
            };
            if let Some(end) = self.end_line(at, next_line) {
                return Ok(Some(end));
            }
        }
        if buf.len() > limits.head_bytes_max {
            return Err(HttpError::HeadTooLarge);
        }
        Ok(None)
    }

    /// 414 as soon as the run of bytes after the first space of the request
    /// line, up to `at`, is longer than `uri_bytes_max`: the same moment
    /// whether the bytes came one by one or all at once.
    fn check_target_len(&self, at: usize, limits: &Limits) -> Result<(), HttpError> {
        match (self.sp1, self.sp2) {
            (Some(sp1), None) if at - sp1 - 1 > limits.uri_bytes_max => Err(HttpError::UriTooLong),
            _ => Ok(()),
        }
    }

    /// A line ended: its content ends at `content_end`, the next line starts
    /// at `next_line`. Returns the end of the head if this line was the
    /// blank line after the fields.
    fn end_line(&mut self, content_end: usize, next_line: usize) -> Option<usize> {
        let empty = content_end == self.line_start;
        self.line_start = next_line;
        self.pos = next_line;
        if self.request_line_end.is_some() {
            return empty.then_some(next_line);
        }
        if empty {
            self.start = next_line; // an empty line before the request line
        } else {
            self.request_line_end = Some(content_end);
            self.fields_start = next_line;
        }
        None
    }
}

// ---------------------------------------------------------------------------
// Parsing the head.

/// A range of the caller's buffer. Stored instead of a slice so that the
/// parsed head survives between calls without borrowing the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
}

impl Span {
    fn of(self, buf: &[u8]) -> &[u8] {
        &buf[self.start..self.end]
    }

    /// The span of `part`, a sub-slice of `buf` (httparse hands out
    /// sub-slices of the input it was given).
    fn within(buf: &[u8], part: &[u8]) -> Span {
        let start = part.as_ptr().addr() - buf.as_ptr().addr();
        debug_assert!(start + part.len() <= buf.len());
        Span { start, end: start + part.len() }
    }

    fn sub(self, from: usize, to: usize) -> Span {
        Span { start: self.start + from, end: self.start + to }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    None,
    Length(usize),
    Chunked,
}

/// A parsed head, as offsets into the buffer.
#[derive(Clone, Copy, Debug)]
struct Head {
    method: Method,
    method_token: Span,
    target: Span,
    /// `None`: absolute-form with an empty path, which means `/`.
    path: Option<Span>,
    query: Span,
    version: Version,
    host: Option<Span>,
    content_type: Option<Span>,
    cookie: Option<Span>,
    authorization: Option<Span>,
    x_forwarded_for: Option<Span>,
    if_none_match: Option<Span>,
    expects_continue: bool,
    keep_alive: bool,
    framing: Framing,
    /// The head is `buf[start..end]`; bytes before `start` are empty lines.
    start: usize,
    end: usize,
}

impl Head {
    fn request<'b>(&self, buf: &'b [u8], body: &'b [u8], wire_len: usize) -> Request<'b> {
        let field = |span: Option<Span>| span.map(|s| s.of(buf));
        // Path and query lie inside the target: one UTF-8 check for all three.
        let target = ascii(self.target.of(buf));
        let part = |span: Span| target.get(span.start - self.target.start..span.end - self.target.start).unwrap_or("");
        Request {
            method: self.method,
            method_token: ascii(self.method_token.of(buf)),
            target,
            path: self.path.map_or("/", part),
            query: part(self.query),
            version: self.version,
            headers: Headers {
                host: field(self.host),
                content_type: field(self.content_type),
                cookie: field(self.cookie),
                authorization: field(self.authorization),
                x_forwarded_for: field(self.x_forwarded_for),
                if_none_match: field(self.if_none_match),
            },
            body,
            expects_continue: self.expects_continue,
            keep_alive: self.keep_alive,
            raw_head: &buf[self.start..self.end],
            wire_len,
        }
    }
}

/// The request line's spans were checked to be visible ASCII when the head
/// was parsed, and the caller does not change the buffer's front between
/// calls, so this cannot fail (nor can slicing that ASCII, in `request`);
/// the empty fallbacks only keep a contract breach from becoming a panic.
fn ascii(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or("")
}

fn bad(reason: BadRequest) -> HttpError {
    HttpError::BadRequest(reason)
}

/// The request line's parts.
struct RequestLine {
    method_token: Span,
    target: Span,
    version: Version,
    /// `HTTP/1.0` or `HTTP/1.1` exactly: httparse can parse the whole head.
    httparse_version: bool,
}

fn parse_head(buf: &[u8], scan: &HeadScan, end: usize, limits: &Limits) -> Result<Head, HttpError> {
    // The scan only reports an end after the request line ended.
    let line_end = scan.request_line_end.unwrap_or(scan.start);
    let line = parse_request_line(buf, Span { start: scan.start, end: line_end }, scan.sp1, scan.sp2)?;

    let mut slots = [const { MaybeUninit::<httparse::Header>::uninit() }; Limits::HEADER_COUNT_CEILING];
    let slots = &mut slots[..limits.header_count_max.min(Limits::HEADER_COUNT_CEILING)];
    let fields = Span { start: scan.fields_start, end };
    let mut fields_seen = FieldsSeen::default();
    if line.httparse_version {
        // The strictest settings, spelled out: single spaces in the request
        // line, no whitespace before the first field or before a colon, no
        // obs-fold, and an invalid field is an error, not skipped.
        let mut config = httparse::ParserConfig::default();
        config
            .allow_multiple_spaces_in_request_line_delimiters(false)
            .allow_space_before_first_header_name(false)
            .ignore_invalid_headers_in_requests(false);
        let mut request = httparse::Request::new(&mut []);
        match config.parse_request_with_uninit_headers(&mut request, &buf[scan.start..end], slots) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => return Err(bad(BadRequest::RequestLine)),
            Err(error) => return Err(httparse_error(error, fields.of(buf))),
        }
        fields_seen.read(buf, request.headers)?;
    } else {
        // HTTP/1.2 and up, which httparse refuses: the fields alone, with
        // httparse's default (strict) settings. Rare, so the initialised
        // header array's cost does not matter.
        let mut headers = [httparse::EMPTY_HEADER; Limits::HEADER_COUNT_CEILING];
        let count = slots.len();
        match httparse::parse_headers(fields.of(buf), &mut headers[..count]) {
            Ok(httparse::Status::Complete((_, headers))) => fields_seen.read(buf, headers)?,
            Ok(httparse::Status::Partial) => return Err(bad(BadRequest::HeaderName)),
            Err(error) => return Err(httparse_error(error, fields.of(buf))),
        }
    }
    fields_seen.into_head(buf, line, scan.start, end, limits)
}

/// `method SP request-target SP HTTP-version` (RFC 9112 §3). `sp1` and
/// `sp2` are the first two spaces of the line, found by the head scan
/// (absolute offsets); a third space can only sit in the version, which
/// must then be invalid.
fn parse_request_line(
    buf: &[u8],
    line: Span,
    sp1: Option<usize>,
    sp2: Option<usize>,
) -> Result<RequestLine, HttpError> {
    let (Some(sp1), Some(sp2)) = (sp1, sp2) else { return Err(bad(BadRequest::RequestLine)) };
    let (sp1, sp2) = (sp1 - line.start, sp2 - line.start);
    let bytes = line.of(buf);
    let (method, target, version) = (&bytes[..sp1], &bytes[sp1 + 1..sp2], &bytes[sp2 + 1..]);
    if method.is_empty() || target.is_empty() {
        return Err(bad(BadRequest::RequestLine));
    }
    let (version, httparse_version) = parse_version(version)?;
    if !method.iter().all(|&b| is_tchar(b)) {
        return Err(bad(BadRequest::Method));
    }
    let target_valid = if httparse_version {
        // httparse will refuse control bytes, spaces and DEL (with SIMD);
        // what it lets through and we do not is non-ASCII and `#`.
        target.is_ascii() && memchr::memchr(b'#', target).is_none()
    } else {
        target.iter().all(|&b| TARGET_BYTE[usize::from(b)])
    };
    if !target_valid {
        return Err(bad(BadRequest::Target));
    }
    Ok(RequestLine { method_token: line.sub(0, sp1), target: line.sub(sp1 + 1, sp2), version, httparse_version })
}

/// `HTTP-version = "HTTP/" DIGIT "." DIGIT`, case-sensitive (RFC 9112 §2.3).
fn parse_version(token: &[u8]) -> Result<(Version, bool), HttpError> {
    match token {
        b"HTTP/1.1" => Ok((Version::Http11, true)),
        b"HTTP/1.0" => Ok((Version::Http10, true)),
        // A later HTTP/1.x is answered as the highest minor we speak (RFC 9110 §2.5).
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', minor] if minor.is_ascii_digit() => Ok((Version::Http11, false)),
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor] if major.is_ascii_digit() && minor.is_ascii_digit() => {
            Err(HttpError::VersionNotSupported)
        }
        // `HTTP/2`, `HTTP/3`: how those versions are named; not ours (505).
        [b'H', b'T', b'T', b'P', b'/', major] if major.is_ascii_digit() && *major != b'1' => {
            Err(HttpError::VersionNotSupported)
        }
        _ => Err(bad(BadRequest::Version)),
    }
}

fn httparse_error(error: httparse::Error, fields: &[u8]) -> HttpError {
    match error {
        httparse::Error::TooManyHeaders => HttpError::HeadTooLarge,
        // httparse reports obs-fold as a bad name (the line starts with a
        // space); tell it apart for the logs.
        httparse::Error::HeaderName if has_obs_fold(fields) => bad(BadRequest::ObsFold),
        httparse::Error::HeaderName => bad(BadRequest::HeaderName),
        httparse::Error::HeaderValue => bad(BadRequest::HeaderValue),
        httparse::Error::NewLine => bad(BadRequest::LineEnding),
        // Our own check of the request line already passed; keep a 400.
        httparse::Error::Token | httparse::Error::Version | httparse::Error::Status => bad(BadRequest::RequestLine),
    }
}

/// Whether a field line starts with whitespace (RFC 9112 §5.2), including
/// whitespace between the request line and the first field (§2.2).
fn has_obs_fold(fields: &[u8]) -> bool {
    matches!(fields.first(), Some(b' ' | b'\t'))
        || fields.windows(2).any(|w| w[0] == b'\n' && matches!(w[1], b' ' | b'\t'))
}

/// What the header fields say, gathered in one pass.
#[derive(Default)]
struct FieldsSeen {
    host: Option<Span>,
    host_count: u32,
    content_length: Option<usize>,
    transfer_encoding: Option<TransferCodings>,
    close: bool,
    keep_alive: bool,
    expect_continue: bool,
    content_type: Option<Span>,
    cookie: Option<Span>,
    authorization: Option<Span>,
    x_forwarded_for: Option<Span>,
    if_none_match: Option<Span>,
}

/// The transfer codings listed across all `Transfer-Encoding` lines.
#[derive(Clone, Copy, Default)]
struct TransferCodings {
    malformed: bool,
    chunked: u32,
    others: u32,
    last_is_chunked: bool,
}

impl FieldsSeen {
    fn read(&mut self, buf: &[u8], headers: &[httparse::Header]) -> Result<(), HttpError> {
        for header in headers {
            let value = trim_ows(header.value);
            let span = Span::within(buf, value);
            let name = header.name.as_bytes();
            let is = |known: &str| name.eq_ignore_ascii_case(known.as_bytes());
            // Dispatch on the length first: most comparisons end there.
            match name.len() {
                4 if is("host") => {
                    self.host_count += 1;
                    if self.host_count > 1 {
                        return Err(bad(BadRequest::DuplicateHost));
                    }
                    if !is_valid_host(value) {
                        return Err(bad(BadRequest::InvalidHost));
                    }
                    self.host = Some(span);
                }
                14 if is("content-length") => {
                    if self.content_length.is_some() {
                        return Err(bad(BadRequest::ConflictingContentLength));
                    }
                    self.content_length = Some(parse_content_length(value)?);
                }
                17 if is("transfer-encoding") => {
                    // An empty line names no coding. The RFC lets it combine
                    // into the other lines' list, but a proxy in front that
                    // reads only the first line would see no body at all:
                    // refuse it, as nginx and h11 do.
                    if list_elements(value).next().is_none() {
                        return Err(bad(BadRequest::InvalidTransferEncoding));
                    }
                    self.transfer_encoding.get_or_insert_default().read(value);
                }
                10 if is("connection") => {
                    for option in list_elements(value) {
                        self.close |= option.eq_ignore_ascii_case(b"close");
                        self.keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
                    }
                }
                6 if is("expect") => self.expect_continue |= value.eq_ignore_ascii_case(b"100-continue"),
                6 if is("cookie") => _ = self.cookie.get_or_insert(span),
                12 if is("content-type") => _ = self.content_type.get_or_insert(span),
                13 if is("authorization") => _ = self.authorization.get_or_insert(span),
                13 if is("if-none-match") => _ = self.if_none_match.get_or_insert(span),
                15 if is("x-forwarded-for") => _ = self.x_forwarded_for.get_or_insert(span),
                _ => {}
            }
        }
        Ok(())
    }

    fn into_head(
        self,
        buf: &[u8],
        line: RequestLine,
        start: usize,
        end: usize,
        limits: &Limits,
    ) -> Result<Head, HttpError> {
        let http11 = line.version == Version::Http11;
        if http11 && self.host_count == 0 {
            return Err(bad(BadRequest::MissingHost));
        }
        let framing = self.framing(line.version, limits)?;
        let method = Method::from_token(line.method_token.of(buf));
        let target = parse_target(buf, line.target, method)?;
        Ok(Head {
            method,
            method_token: line.method_token,
            target: line.target,
            path: target.path,
            query: target.query,
            version: line.version,
            host: target.authority.or(self.host),
            content_type: self.content_type,
            cookie: self.cookie,
            authorization: self.authorization,
            x_forwarded_for: self.x_forwarded_for,
            if_none_match: self.if_none_match,
            expects_continue: http11 && self.expect_continue,
            keep_alive: if http11 { !self.close } else { self.keep_alive && !self.close },
            framing,
            start,
            end,
        })
    }

    /// The body's framing, RFC 9112 §6.1 and §6.3.
    fn framing(&self, version: Version, limits: &Limits) -> Result<Framing, HttpError> {
        if let Some(codings) = self.transfer_encoding {
            if self.content_length.is_some() {
                return Err(bad(BadRequest::ContentLengthAndTransferEncoding));
            }
            if version == Version::Http10 {
                return Err(bad(BadRequest::InvalidTransferEncoding));
            }
            return codings.framing();
        }
        match self.content_length {
            None | Some(0) => Ok(Framing::None),
            Some(len) if len > limits.body_bytes_max => Err(HttpError::BodyTooLarge),
            Some(len) => Ok(Framing::Length(len)),
        }
    }
}

impl TransferCodings {
    /// `transfer-coding *( OWS "," OWS transfer-coding )`, empty elements
    /// ignored (RFC 9110 §5.6.1).
    fn read(&mut self, value: &[u8]) {
        for element in list_elements(value) {
            let name_len = element.iter().position(|&b| matches!(b, b';' | b' ' | b'\t')).unwrap_or(element.len());
            let (name, params) = element.split_at(name_len);
            let params = trim_ows(params);
            // A coding is a token, optionally followed by `;` parameters.
            if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) || params.first().is_some_and(|&b| b != b';') {
                self.malformed = true;
            }
            let chunked = name.eq_ignore_ascii_case(b"chunked");
            if chunked && !params.is_empty() {
                self.malformed = true; // chunked takes no parameters
            }
            self.chunked += u32::from(chunked);
            self.others += u32::from(!chunked);
            self.last_is_chunked = chunked;
        }
    }

    fn framing(self) -> Result<Framing, HttpError> {
        if self.malformed || self.chunked + self.others == 0 {
            return Err(bad(BadRequest::InvalidTransferEncoding));
        }
        // chunked anywhere but once and last: the length cannot be known (§6.3).
        if self.chunked > 1 || (self.chunked == 1 && !self.last_is_chunked) {
            return Err(bad(BadRequest::InvalidTransferEncoding));
        }
        if self.others > 0 {
            return Err(HttpError::UnsupportedTransferCoding);
        }
        Ok(Framing::Chunked)
    }
}

/// The non-empty elements of a comma-separated list, trimmed.
fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(trim_ows).filter(|element| !element.is_empty())
}

/// `Content-Length = 1*DIGIT` (RFC 9110 §8.6): no sign, no inner space, no
/// list, and a value that does not fit is malformed, not huge.
fn parse_content_length(value: &[u8]) -> Result<usize, HttpError> {
    let invalid = bad(BadRequest::InvalidContentLength);
    if value.is_empty() {
        return Err(invalid);
    }
    value.iter().try_fold(0usize, |len, &b| {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return Err(invalid);
        }
        len.checked_mul(10).and_then(|len| len.checked_add(usize::from(digit))).ok_or(invalid)
    })
}

/// Bytes allowed in a request-target: visible ASCII (RFC 3986 has no room
/// for anything else) but `#`, as a fragment is never sent (RFC 9112 §3.2).
static TARGET_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0x21;
    while b <= 0x7e {
        table[b] = b != b'#' as usize;
        b += 1;
    }
    table
};

/// reg-name bytes (RFC 3986 §3.2.2): unreserved, sub-delims and `%`.
static REG_NAME_BYTE: [bool; 256] = alphanumeric_and(b"-._~!$&'()*+,;=%");

/// `Host = uri-host [ ":" port ]` (RFC 9110 §7.2), checked for shape:
/// an IP literal in brackets or a reg-name of unreserved, sub-delims and
/// `%`; then digits. An empty value is allowed (RFC 9112 §3.2).
fn is_valid_host(value: &[u8]) -> bool {
    let port = if value.first() == Some(&b'[') {
        let Some(close) = value.iter().position(|&b| b == b']') else { return false };
        let literal = &value[1..close];
        if literal.is_empty() || !literal.iter().all(|&b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.')) {
            return false;
        }
        &value[close + 1..]
    } else {
        let colon = value.iter().position(|&b| b == b':').unwrap_or(value.len());
        let host = &value[..colon];
        if !host.iter().all(|&b| REG_NAME_BYTE[usize::from(b)]) {
            return false;
        }
        &value[colon..]
    };
    match port {
        [] => true,
        [b':', digits @ ..] => digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

/// The parts of a request-target (RFC 9112 §3.2).
struct Target {
    path: Option<Span>,
    query: Span,
    /// The authority of absolute-form, which replaces `Host` (§3.2.2).
    authority: Option<Span>,
}

fn parse_target(buf: &[u8], target: Span, method: Method) -> Result<Target, HttpError> {
    let bytes = target.of(buf);
    let invalid = bad(BadRequest::Target);
    let empty_query = Span { start: target.end, end: target.end };
    if method == Method::Connect {
        // authority-form, CONNECT only (§3.2.3): `host:port`.
        return if is_valid_host(bytes) && bytes.contains(&b':') {
            Ok(Target { path: Some(target), query: empty_query, authority: Some(target) })
        } else {
            Err(invalid)
        };
    }
    if bytes[0] == b'/' {
        return Ok(split_query(target, bytes, 0, None));
    }
    if bytes == b"*" {
        // asterisk-form is for a server-wide OPTIONS only (§3.2.4).
        return if method == Method::Options {
            Ok(Target { path: Some(target), query: empty_query, authority: None })
        } else {
            Err(invalid)
        };
    }
    let scheme_len = if starts_with_ignore_case(bytes, b"http://") {
        7
    } else if starts_with_ignore_case(bytes, b"https://") {
        8
    } else {
        return Err(invalid);
    };
    let after_scheme = &bytes[scheme_len..];
    let authority_len = after_scheme.iter().position(|&b| matches!(b, b'/' | b'?')).unwrap_or(after_scheme.len());
    let authority = &after_scheme[..authority_len];
    if authority.is_empty() || !is_valid_host(authority) {
        return Err(invalid);
    }
    let authority = target.sub(scheme_len, scheme_len + authority_len);
    Ok(split_query(target, bytes, scheme_len + authority_len, Some(authority)))
}

/// Splits `bytes[path_start..]` at the first `?`. An empty path (only
/// possible in absolute-form) means `/`.
fn split_query(target: Span, bytes: &[u8], path_start: usize, authority: Option<Span>) -> Target {
    let question = memchr::memchr(b'?', &bytes[path_start..]).map_or(bytes.len(), |i| path_start + i);
    let path = (question > path_start).then(|| target.sub(path_start, question));
    let query = if question < bytes.len() {
        target.sub(question + 1, bytes.len())
    } else {
        target.sub(bytes.len(), bytes.len())
    };
    Target { path, query, authority }
}

fn starts_with_ignore_case(bytes: &[u8], prefix: &[u8]) -> bool {
    bytes.len() >= prefix.len() && bytes[..prefix.len()].eq_ignore_ascii_case(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RequestInfo;

    /// Parses `input` whole and hands the complete request to `inspect`.
    fn check(input: &[u8], inspect: impl FnOnce(&Request)) {
        let mut parser = RequestParser::new(Limits::default());
        match parser.parse(input) {
            Parse::Complete(request) => inspect(&request),
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
        }
    }

    #[test]
    fn request_parts() {
        check(b"\r\nGET /a/b?x=1&y HTTP/1.1\r\nHost: h:1\r\nCookie: session=abc\r\nContent-Type: application/json\r\nAuthorization: Bearer t\r\nX-Forwarded-For: 10.0.0.1\r\nIf-None-Match: \"e\"\r\nX-Other:  v  \r\n\r\n", |r| {
            assert_eq!((r.method, r.method_token, r.target, r.path, r.query), (Method::Get, "GET", "/a/b?x=1&y", "/a/b", "x=1&y"));
            assert_eq!(r.version, Version::Http11);
            assert_eq!(r.headers.host, Some(&b"h:1"[..]));
            assert_eq!(r.headers.cookie, Some(&b"session=abc"[..]));
            assert_eq!(r.headers.content_type, Some(&b"application/json"[..]));
            assert_eq!(r.headers.authorization, Some(&b"Bearer t"[..]));
            assert_eq!(r.headers.x_forwarded_for, Some(&b"10.0.0.1"[..]));
            assert_eq!(r.headers.if_none_match, Some(&b"\"e\""[..]));
            assert_eq!(r.header("x-other"), Some(&b"v"[..]));
            assert_eq!(r.header("X-OTHER"), Some(&b"v"[..]));
            assert_eq!(r.header("missing"), None);
            assert_eq!(r.wire_len(), 2 + r.raw_head.len());
            assert!(r.keep_alive() && !r.expects_continue);
            assert_eq!(r.info(), RequestInfo { version: Version::Http11, keep_alive: true, head_only: false });
        });
    }

    #[test]
    fn an_owned_copy_lends_back_the_same_request() {
        let inputs: [&[u8]; 3] = [
            b"POST /api/x?q=1 HTTP/1.1\r\nHost: h\r\nCookie: session=abc\r\nAuthorization: Bearer t\r\nX-Forwarded-For: 1.2.3.4\r\nContent-Length: 2\r\n\r\n{}",
            // A chunked body lives in the parser's decode buffer, not the head.
            b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            b"GET http://example.com:80/p HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        ];
        for input in inputs {
            check(input, |r| {
                let copy = crate::OwnedRequest::copy_of(r);
                let back = copy.request();
                assert_eq!(
                    (back.method, back.method_token, back.target, back.path, back.query, back.version),
                    (r.method, r.method_token, r.target, r.path, r.query, r.version)
                );
                assert_eq!(back.headers, r.headers);
                assert_eq!((back.body, back.info()), (r.body, r.info()));
                assert_eq!(back.header("host"), r.header("host"));
            });
        }
    }

    #[test]
    fn target_forms() {
        check(b"GET http://example.com:80 HTTP/1.1\r\nHost: h\r\n\r\n", |r| {
            assert_eq!((r.path, r.query), ("/", ""));
            assert_eq!(r.headers.host, Some(&b"example.com:80"[..]));
            assert_eq!(r.header("host"), Some(&b"h"[..]));
        });
        check(b"GET https://h?q HTTP/1.1\r\nHost: h\r\n\r\n", |r| assert_eq!((r.path, r.query), ("/", "q")));
        check(b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", |r| {
            assert_eq!((r.method, r.path, r.query), (Method::Connect, "h:443", ""));
        });
        check(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", |r| assert_eq!((r.method, r.path), (Method::Options, "*")));
        check(b"HEAD / HTTP/1.2\r\nHost: h\r\n\r\n", |r| {
            assert_eq!(r.version, Version::Http11);
            assert!(r.info().head_only);
        });
    }

    #[test]
    fn continue_is_signalled_once() {
        let input = b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
        let mut parser = RequestParser::new(Limits::default());
        assert!(matches!(parser.parse(&input[..10]), Parse::Partial { send_continue: false }));
        assert!(matches!(parser.parse(input), Parse::Partial { send_continue: true }));
        assert!(matches!(parser.parse(input), Parse::Partial { send_continue: false }));
        let mut full = input.to_vec();
        full.extend_from_slice(b"h");
        assert!(matches!(parser.parse(&full), Parse::Partial { send_continue: false }));
        full.extend_from_slice(b"i");
        match parser.parse(&full) {
            Parse::Complete(r) => assert!(r.body == b"hi" && r.expects_continue),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn in_progress_and_reset() {
        let mut parser = RequestParser::new(Limits::default());
        assert!(!parser.in_progress());
        let _ = parser.parse(b"\r\n");
        assert!(!parser.in_progress(), "an empty line does not start a request");
        let _ = parser.parse(b"\r\nGE");
        assert!(parser.in_progress());
        parser.reset();
        assert!(!parser.in_progress());
        let _ = parser.parse(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(!parser.in_progress(), "complete");
        let _ = parser.parse(b"GET / HTTP/1.1\r\nHost: h\rX");
        assert!(matches!(parser.parse(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"), Parse::Error(_)), "errors stick");
        parser.reset();
        assert!(matches!(parser.parse(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"), Parse::Complete(_)));
    }

    #[test]
    fn limits_from_configuration() {
        let limits = Limits { head_bytes_max: 64, uri_bytes_max: 8, header_count_max: 1, body_bytes_max: 4 };
        let parse = |input: &[u8]| match RequestParser::new(limits).parse(input) {
            Parse::Complete(_) => Ok(()),
            Parse::Partial { .. } => Err(None),
            Parse::Error(error) => Err(Some(error)),
        };
        assert_eq!(parse(b"GET /1234567 HTTP/1.1\r\nHost: h\r\n\r\n"), Ok(()));
        assert_eq!(parse(b"GET /12345678"), Err(Some(HttpError::UriTooLong)));
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: h\r\nX: y\r\n\r\n"), Err(Some(HttpError::HeadTooLarge)));
        assert_eq!(parse(b"POST / HTTP/1.1\r\nHost: h\r\n\r\n"), Ok(()));
        let long = [b'a'; 65];
        assert_eq!(parse(&long), Err(Some(HttpError::HeadTooLarge)));
        assert_eq!(parse(&long[..64]), Err(None));
    }

    #[test]
    fn error_reasons() {
        let reason = |input: &[u8]| match RequestParser::new(Limits::default()).parse(input) {
            Parse::Error(HttpError::BadRequest(reason)) => Some(reason),
            _ => None,
        };
        assert_eq!(reason(b"GET / HTTP/1.1\r\nHost: h\r\nX: 1\r\n 2\r\n\r\n"), Some(BadRequest::ObsFold));
        assert_eq!(reason(b"GET / HTTP/1.1\r\nHost : h\r\n\r\n"), Some(BadRequest::HeaderName));
        assert_eq!(reason(b"GET / HTTP/1.1\r\nHost: h\rX"), Some(BadRequest::LineEnding));
        assert_eq!(reason(b"GET / HTTP/1.1\r\n\r\n"), Some(BadRequest::MissingHost));
        assert_eq!(reason(b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"), Some(BadRequest::DuplicateHost));
        assert_eq!(reason(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), Some(BadRequest::InvalidHost));
        assert_eq!(reason(b"G(T / HTTP/1.1\r\nHost: h\r\n\r\n"), Some(BadRequest::Method));
        assert_eq!(reason(b"GET x HTTP/1.1\r\nHost: h\r\n\r\n"), Some(BadRequest::Target));
        assert_eq!(reason(b"GET / HTTP/x\r\nHost: h\r\n\r\n"), Some(BadRequest::Version));
        assert_eq!(
            reason(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Some(BadRequest::ContentLengthAndTransferEncoding)
        );
    }
}
