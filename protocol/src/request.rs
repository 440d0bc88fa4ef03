//! A parsed request. Everything borrows the connection's read buffer (or,
//! for a chunked body, the parser's decode buffer): nothing is copied.

/// The request method. Unknown tokens are kept as `Other` so that the
/// router can answer 405 (known path) or 404, rather than the parser 400.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Patch,
    Options,
    Connect,
    Trace,
    Other,
}

impl Method {
    /// The method for a token; methods are case-sensitive (RFC 9110 §9.1),
    /// so `get` is `Other`.
    pub(crate) fn from_token(token: &[u8]) -> Method {
        match token {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"PATCH" => Method::Patch,
            b"OPTIONS" => Method::Options,
            b"CONNECT" => Method::Connect,
            b"TRACE" => Method::Trace,
            _ => Method::Other,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// The header fields the server acts on, found while parsing. `None` when
/// absent. Values are raw bytes with surrounding whitespace trimmed.
/// Anything else can be found with [`Request::header`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Headers<'b> {
    /// The `Host` field; for an absolute-form target, the target's
    /// authority instead, as RFC 9112 §3.2.2 requires.
    pub host: Option<&'b [u8]>,
    pub content_type: Option<&'b [u8]>,
    pub cookie: Option<&'b [u8]>,
    pub authorization: Option<&'b [u8]>,
    pub x_forwarded_for: Option<&'b [u8]>,
    pub if_none_match: Option<&'b [u8]>,
}

/// What the response side needs to know about a request, small and `Copy`
/// so that a parked request can keep it until its answer is ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestInfo {
    pub version: Version,
    /// The connection stays open after this response.
    pub keep_alive: bool,
    /// `HEAD`: the response carries headers (with the GET `Content-Length`) but no body.
    pub head_only: bool,
}

/// One complete request: head and whole body.
#[derive(Clone, Copy, Debug)]
pub struct Request<'b> {
    pub method: Method,
    /// The method token as sent (useful for `Other`).
    pub method_token: &'b str,
    /// The request-target as sent.
    pub target: &'b str,
    /// The path of the target: origin-form up to `?`; for absolute-form the
    /// path part after the authority (`/` if empty); `*` for asterisk-form.
    pub path: &'b str,
    /// The query after `?`, without it; empty if none.
    pub query: &'b str,
    pub version: Version,
    pub headers: Headers<'b>,
    /// The decoded body (empty when there is none).
    pub body: &'b [u8],
    /// The client sent `Expect: 100-continue`.
    pub expects_continue: bool,
    pub(crate) keep_alive: bool,
    /// The head as received (request line, fields, blank line).
    pub(crate) raw_head: &'b [u8],
    /// Bytes of the read buffer this request occupied (head + framed body).
    pub(crate) wire_len: usize,
}

impl<'b> Request<'b> {
    /// Bytes of the read buffer this request used: the caller consumes them.
    pub fn wire_len(&self) -> usize {
        self.wire_len
    }

    /// Whether the connection may stay open after the response (RFC 9112 §9.3:
    /// HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with `keep-alive`).
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    pub fn info(&self) -> RequestInfo {
        RequestInfo { version: self.version, keep_alive: self.keep_alive, head_only: self.method == Method::Head }
    }

    /// The value of the first header field named `name` (ASCII
    /// case-insensitive), trimmed; scans the raw head, allocates nothing.
    pub fn header(&self, name: &str) -> Option<&'b [u8]> {
        // The head was validated by the parser: every line after the request
        // line is `name:value` ended by LF (CR optional), and the last is empty.
        let mut lines = self.raw_head.split(|&b| b == b'\n').skip(1);
        lines.find_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            let (field, value) = (&line[..colon], &line[colon + 1..]);
            field.eq_ignore_ascii_case(name.as_bytes()).then(|| trim_ows(value))
        })
    }
}

/// `value` without leading and trailing SP, HTAB and a line's CR.
pub(crate) fn trim_ows(value: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| matches!(b, b' ' | b'\t' | b'\r');
    let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
    let end = value.iter().rposition(|b| !is_ows(b)).map_or(start, |i| i + 1);
    &value[start..end]
}

/// A byte range of an [`OwnedRequest`]'s storage.
type Span = (usize, usize);

/// A request copied out of the read buffer, for a request that must be
/// handled again later (after another thread fetched what the handler
/// lacked). Rare by design: it allocates. [`OwnedRequest::request`] lends it
/// back as the same [`Request`] the handler first saw.
#[derive(Clone, Debug)]
pub struct OwnedRequest {
    bytes: Vec<u8>,
    method: Method,
    method_token: Span,
    target: Span,
    path: Span,
    query: Span,
    version: Version,
    headers: [Option<Span>; 6],
    body: Span,
    expects_continue: bool,
    keep_alive: bool,
    raw_head: Span,
}

impl OwnedRequest {
    /// Copies `request`: its raw head, then anything that lives outside it
    /// (a decoded chunked body), with every field kept as a range.
    pub fn copy_of(request: &Request<'_>) -> OwnedRequest {
        let mut bytes = Vec::with_capacity(request.raw_head.len() + request.body.len());
        bytes.extend_from_slice(request.raw_head);
        let head = request.raw_head;
        let mut span = |part: &[u8]| -> Span {
            let (start, end) = (part.as_ptr() as usize, part.as_ptr() as usize + part.len());
            let (head_start, head_end) = (head.as_ptr() as usize, head.as_ptr() as usize + head.len());
            if !part.is_empty() && start >= head_start && end <= head_end {
                (start - head_start, part.len())
            } else {
                let at = bytes.len();
                bytes.extend_from_slice(part);
                (at, part.len())
            }
        };
        let h = &request.headers;
        let headers = [h.host, h.content_type, h.cookie, h.authorization, h.x_forwarded_for, h.if_none_match]
            .map(|field| field.map(&mut span));
        OwnedRequest {
            method: request.method,
            method_token: span(request.method_token.as_bytes()),
            target: span(request.target.as_bytes()),
            path: span(request.path.as_bytes()),
            query: span(request.query.as_bytes()),
            version: request.version,
            headers,
            body: span(request.body),
            expects_continue: request.expects_continue,
            keep_alive: request.keep_alive,
            raw_head: (0, request.raw_head.len()),
            bytes,
        }
    }

    /// The request, borrowing this copy.
    pub fn request(&self) -> Request<'_> {
        let bytes = |(at, len): Span| &self.bytes[at..at + len];
        // Every text span was copied from a `&str`, so it is UTF-8.
        let text = |span: Span| std::str::from_utf8(bytes(span)).unwrap_or_default();
        let field = |i: usize| self.headers[i].map(bytes);
        Request {
            method: self.method,
            method_token: text(self.method_token),
            target: text(self.target),
            path: text(self.path),
            query: text(self.query),
            version: self.version,
            headers: Headers {
                host: field(0),
                content_type: field(1),
                cookie: field(2),
                authorization: field(3),
                x_forwarded_for: field(4),
                if_none_match: field(5),
            },
            body: bytes(self.body),
            expects_continue: self.expects_continue,
            keep_alive: self.keep_alive,
            raw_head: bytes(self.raw_head),
            wire_len: 0,
        }
    }
}
