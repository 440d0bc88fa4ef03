//! The RFC conformance table: raw request bytes and what the parser (and so
//! the live server) must make of them.
//!
//! Each [`Case`] names the RFC 9112 / 9110 section it exercises. The crate's
//! tests replay every case through [`crate::RequestParser`] whole, byte by
//! byte, split in two at every boundary and in random splits; the server's
//! integration tests replay the same table against the live server over real
//! sockets. Compiled only with the `conformance` feature (and in this
//! crate's own tests).
//!
//! The table assumes the default [`crate::Limits`] (head 8192, URI 4096, 64
//! fields, body 16384), which is also what the live server runs with in
//! those tests. Requests only use paths the live server has: `GET /healthz`,
//! `HEAD /healthz`, `GET /readyz`, and `POST /healthz` (answered 405 after
//! its body has been read), plus other methods and `OPTIONS *`, which the
//! router answers itself; the live runner maps [`Outcome::Request`] to a
//! status on its own.

/// One raw input and its expected outcomes, in order.
#[derive(Clone, Copy, Debug)]
pub struct Case {
    /// Unique, snake_case.
    pub name: &'static str,
    /// The section the case exercises, e.g. `"RFC 9112 §6.3"`.
    pub rfc: &'static str,
    /// The bytes a client sends on one fresh connection.
    pub input: &'static [u8],
    /// What the server makes of them, in order.
    pub expect: &'static [Outcome],
    /// After the listed outcomes the server closes the connection
    /// (`Connection: close`, HTTP/1.0 without keep-alive, or any `Reject`).
    /// When false the connection stays open, waiting for more.
    pub closes: bool,
    /// Why this outcome.
    pub note: &'static str,
}

impl Case {
    /// Where a live runner should pause, waiting for the `100 Continue`,
    /// before sending the rest: just past the first head's blank line, for
    /// the cases that list [`Outcome::Continue`] (all of which use CRLF).
    pub fn continue_split(&self) -> Option<usize> {
        if !self.expect.contains(&Outcome::Continue) {
            return None;
        }
        self.input.windows(4).position(|w| w == b"\r\n\r\n").map(|at| at + 4)
    }
}

/// What one request of a case comes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A request reaches the router with this method token, path and decoded body.
    Request { method: &'static str, path: &'static str, body: &'static [u8] },
    /// A `100 Continue` interim response. It is sent when the server has the
    /// whole head and not the whole body (RFC 9110 §10.1.1 lets it omit the
    /// 100 once the body is there), so a runner sees it only if it sends the
    /// input up to the end of the head and waits before sending the rest.
    Continue,
    /// A protocol error with this status; the connection is then closed.
    Reject(u16),
}

const GET_HEALTHZ: Outcome = req("GET", "/healthz");
const HEAD_HEALTHZ: Outcome = req("HEAD", "/healthz");
const GET_READYZ: Outcome = req("GET", "/readyz");

const fn req(method: &'static str, path: &'static str) -> Outcome {
    Outcome::Request { method, path, body: b"" }
}

const fn post(body: &'static [u8]) -> Outcome {
    Outcome::Request { method: "POST", path: "/healthz", body }
}

use Outcome::Reject;

// ---------------------------------------------------------------------------
// Inputs too long to write out, built at compile time from (bytes, repeat)
// parts.

const fn parts_len(parts: &[(&[u8], usize)]) -> usize {
    let (mut len, mut i) = (0, 0);
    while i < parts.len() {
        len += parts[i].0.len() * parts[i].1;
        i += 1;
    }
    len
}

const fn build<const N: usize>(parts: &[(&[u8], usize)]) -> [u8; N] {
    let mut out = [0u8; N];
    let (mut at, mut i) = (0, 0);
    while i < parts.len() {
        let (bytes, times) = parts[i];
        let mut t = 0;
        while t < times {
            let mut j = 0;
            while j < bytes.len() {
                out[at] = bytes[j];
                at += 1;
                j += 1;
            }
            t += 1;
        }
        i += 1;
    }
    assert!(at == N, "parts_len and the array length disagree");
    out
}

macro_rules! built {
    ($name:ident = $parts:expr) => {
        static $name: [u8; parts_len($parts)] = build($parts);
    };
}

const GET_LINE: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: h\r\n";
const PAD_PREFIX: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: h\r\nX-Pad: ";
/// Padding that makes a head of exactly 8192 bytes with `PAD_PREFIX` and a `\r\n\r\n` end.
const PAD_TO_HEAD_MAX: usize = 8192 - PAD_PREFIX.len() - 4;
const URI_PREFIX: &[u8] = b"GET /healthz?";
/// Query bytes that make a target of exactly 4096 bytes.
const PAD_TO_URI_MAX: usize = 4096 - (URI_PREFIX.len() - 4);

built!(LONG_VALUE = &[(b"GET /healthz HTTP/1.1\r\nHost: h\r\nX-Long: ", 1), (b"v", 4000), (b"\r\n\r\n", 1)]);
built!(HEADERS_64 = &[(GET_LINE, 1), (b"X: 1\r\n", 63), (b"\r\n", 1)]);
built!(HEADERS_65 = &[(GET_LINE, 1), (b"X: 1\r\n", 64), (b"\r\n", 1)]);
built!(HEAD_AT_MAX = &[(PAD_PREFIX, 1), (b"p", PAD_TO_HEAD_MAX), (b"\r\n\r\n", 1)]);
built!(HEAD_OVER_MAX = &[(PAD_PREFIX, 1), (b"p", PAD_TO_HEAD_MAX + 1), (b"\r\n\r\n", 1)]);
built!(HEAD_NEVER_ENDS = &[(PAD_PREFIX, 1), (b"p", 9000)]);
built!(LONG_METHOD = &[(b"M", 9000)]);
built!(URI_AT_MAX = &[(URI_PREFIX, 1), (b"q", PAD_TO_URI_MAX), (b" HTTP/1.1\r\nHost: h\r\n\r\n", 1)]);
built!(URI_OVER_MAX = &[(URI_PREFIX, 1), (b"q", PAD_TO_URI_MAX + 1), (b" HTTP/1.1\r\nHost: h\r\n\r\n", 1)]);
built!(URI_OVER_MAX_UNFINISHED = &[(URI_PREFIX, 1), (b"q", 5000)]);
built!(
    URI_AND_HEAD_OVER_MAX =
        &[(URI_PREFIX, 1), (b"q", 5000), (b" HTTP/1.1\r\nHost: h\r\nX: ", 1), (b"x", 5000), (b"\r\n\r\n", 1)]
);
static BODY_AT_MAX: [u8; 16384] = [b'b'; 16384];
built!(
    BODY_AT_MAX_REQUEST =
        &[(b"POST /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 16384\r\n\r\n", 1), (&BODY_AT_MAX, 1)]
);
const CHUNKED_POST: &[u8] = b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
built!(CHUNK_EXTENSION_TOO_LONG = &[(CHUNKED_POST, 1), (b"5;x=", 1), (b"e", 2000), (b"\r\nhello\r\n0\r\n\r\n", 1)]);
// 0x2001 + 0x2000 = 16385 bytes: one more than body_bytes_max.
built!(CHUNKED_TOTAL_OVER_MAX = &[(CHUNKED_POST, 1), (b"2001\r\n", 1), (b"c", 0x2001), (b"\r\n2000\r\n", 1)]);
built!(CHUNKED_TOTAL_AT_MAX = &[(CHUNKED_POST, 1), (b"4000\r\n", 1), (&BODY_AT_MAX, 1), (b"\r\n0\r\n\r\n", 1)]);
built!(
    PIPELINE_16 = &[(
        b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n\
          POST /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello\
          GET /readyz HTTP/1.1\r\nHost: h\r\n\r\n\
          POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
        4
    )]
);

/// Every case. Names are unique (a test checks). One line per case.
#[rustfmt::skip]
pub static CASES: &[Case] = &[
    Case { name: "get_minimal", rfc: "RFC 9112 §3", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "origin-form GET with Host" },
    Case { name: "head_minimal", rfc: "RFC 9110 §9.3.2", input: b"HEAD /healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[HEAD_HEALTHZ], closes: false, note: "HEAD is parsed like GET" },
    Case { name: "get_readyz", rfc: "RFC 9112 §3", input: b"GET /readyz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[GET_READYZ], closes: false, note: "another path" },
    Case { name: "get_query", rfc: "RFC 9112 §3.2.1", input: b"GET /healthz?a=1&b=2 HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "the query is split off the path" },
    Case { name: "get_empty_query", rfc: "RFC 9112 §3.2.1", input: b"GET /healthz? HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "an empty query" },
    Case { name: "get_percent_encoded_query", rfc: "RFC 9112 §3.2.1", input: b"GET /healthz?x=%20%41 HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "percent-encoding is left to the router" },
    Case { name: "post_content_length", rfc: "RFC 9112 §6.2", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello", expect: &[post(b"hello")], closes: false, note: "body framed by Content-Length" },
    Case { name: "post_content_length_zero", rfc: "RFC 9112 §6.2", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", expect: &[post(b"")], closes: false, note: "an empty body" },
    Case { name: "post_without_framing", rfc: "RFC 9112 §6.3", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[post(b"")], closes: false, note: "no Content-Length nor Transfer-Encoding: a request body is empty (rule 7)" },
    Case { name: "put_method", rfc: "RFC 9110 §9.3.4", input: b"PUT /healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[req("PUT", "/healthz")], closes: false, note: "the router answers 405" },
    Case { name: "delete_method", rfc: "RFC 9110 §9.3.5", input: b"DELETE /healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[req("DELETE", "/healthz")], closes: false, note: "the router answers 405" },
    Case { name: "options_method", rfc: "RFC 9110 §9.3.7", input: b"OPTIONS /healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[req("OPTIONS", "/healthz")], closes: false, note: "the router answers 405" },
    Case { name: "patch_method", rfc: "RFC 9110 §9.1", input: b"PATCH /healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[req("PATCH", "/healthz")], closes: false, note: "the router answers 405" },
    Case { name: "trace_method", rfc: "RFC 9110 §9.3.8", input: b"TRACE /healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[req("TRACE", "/healthz")], closes: false, note: "the router answers 405" },
    Case { name: "unknown_method", rfc: "RFC 9110 §9.1", input: b"FOO /healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[req("FOO", "/healthz")], closes: false, note: "an unknown method is the router's 405, not a parse error" },
    Case { name: "lowercase_method", rfc: "RFC 9110 §9.1", input: b"get /healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[req("get", "/healthz")], closes: false, note: "methods are case-sensitive: `get` is not GET" },
    Case { name: "method_with_tchar_punctuation", rfc: "RFC 9110 §5.6.2", input: b"M-SEARCH /healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[req("M-SEARCH", "/healthz")], closes: false, note: "tchar includes `-`" },
    Case { name: "options_asterisk", rfc: "RFC 9112 §3.2.4", input: b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[req("OPTIONS", "*")], closes: false, note: "asterisk-form with OPTIONS" },
    Case { name: "asterisk_with_get", rfc: "RFC 9112 §3.2.4", input: b"GET * HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "asterisk-form is for OPTIONS only" },
    Case { name: "absolute_form", rfc: "RFC 9112 §3.2.2", input: b"GET http://h/healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "absolute-form is accepted; path is the path part" },
    Case { name: "absolute_form_https", rfc: "RFC 9112 §3.2.2", input: b"GET https://h/healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "https scheme" },
    Case { name: "absolute_form_uppercase_scheme", rfc: "RFC 9110 §4.2.3", input: b"GET HTTP://h/healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "schemes are case-insensitive" },
    Case { name: "absolute_form_with_port", rfc: "RFC 9112 §3.2.2", input: b"GET http://h:8080/healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "authority with port" },
    Case { name: "absolute_form_with_query", rfc: "RFC 9112 §3.2.2", input: b"GET http://h/healthz?x=1 HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "query after the path" },
    Case { name: "absolute_form_host_differs", rfc: "RFC 9112 §3.2.2", input: b"GET http://other/healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "the target's authority replaces Host" },
    Case { name: "absolute_form_without_host", rfc: "RFC 9112 §3.2", input: b"GET http://h/healthz HTTP/1.1\r\n\r\n", expect: &[Reject(400)], closes: true, note: "Host is still required" },
    Case { name: "absolute_form_other_scheme", rfc: "RFC 9112 §3.2.2", input: b"GET ftp://h/healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "only http and https" },
    Case { name: "absolute_form_empty_authority", rfc: "RFC 9112 §3.2.2", input: b"GET http:///healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "an absolute URI needs a host" },
    Case { name: "absolute_form_userinfo", rfc: "RFC 9110 §4.2.4", input: b"GET http://u@h/healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "userinfo is deprecated and refused" },
    Case { name: "authority_form_with_get", rfc: "RFC 9112 §3.2.3", input: b"GET h:80 HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "authority-form is for CONNECT only" },
    Case { name: "connect_with_origin_form", rfc: "RFC 9112 §3.2.3", input: b"CONNECT /healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "CONNECT needs authority-form" },
    Case { name: "relative_target", rfc: "RFC 9112 §3.2", input: b"GET healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "no form matches" },
    Case { name: "http10_without_host", rfc: "RFC 9112 §9.3", input: b"GET /healthz HTTP/1.0\r\n\r\n", expect: &[GET_HEALTHZ], closes: true, note: "HTTP/1.0 may omit Host; closes by default" },
    Case { name: "http10_with_host", rfc: "RFC 9112 §9.3", input: b"GET /healthz HTTP/1.0\r\nHost: h\r\n\r\n", expect: &[GET_HEALTHZ], closes: true, note: "closes by default" },
    Case { name: "http10_keep_alive", rfc: "RFC 9112 §C.2.2", input: b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /readyz HTTP/1.0\r\n\r\n", expect: &[GET_HEALTHZ, GET_READYZ], closes: true, note: "keep-alive honoured, then the default close" },
    Case { name: "http10_keep_alive_mixed_case", rfc: "RFC 9110 §7.6.1", input: b"GET /healthz HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "connection options are case-insensitive" },
    Case { name: "http10_keep_alive_and_close", rfc: "RFC 9110 §7.6.1", input: b"GET /healthz HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", expect: &[GET_HEALTHZ], closes: true, note: "close wins" },
    Case { name: "http10_duplicate_host", rfc: "RFC 9112 §3.2", input: b"GET /healthz HTTP/1.0\r\nHost: h\r\nHost: h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "our extension: HTTP/1.0 may omit Host but not repeat it" },
    Case { name: "http10_transfer_encoding", rfc: "RFC 9112 §6.1", input: b"POST /healthz HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", expect: &[Reject(400)], closes: true, note: "chunked in HTTP/1.0 is faulty framing" },
    Case { name: "http10_content_length", rfc: "RFC 9112 §6.2", input: b"POST /healthz HTTP/1.0\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello", expect: &[post(b"hello")], closes: true, note: "body, then the default close" },
    Case { name: "http10_expect_ignored", rfc: "RFC 9110 §10.1.1", input: b"POST /healthz HTTP/1.0\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello", expect: &[post(b"hello")], closes: true, note: "100-continue from HTTP/1.0 is ignored: no interim response" },
    Case { name: "connection_close", rfc: "RFC 9112 §9.6", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", expect: &[GET_HEALTHZ], closes: true, note: "close after the response" },
    Case { name: "connection_close_ignores_pipelined", rfc: "RFC 9112 §9.6", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /readyz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[GET_HEALTHZ], closes: true, note: "nothing after a close is answered" },
    Case { name: "connection_close_uppercase", rfc: "RFC 9110 §7.6.1", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nConnection: CLOSE\r\n\r\n", expect: &[GET_HEALTHZ], closes: true, note: "case-insensitive" },
    Case { name: "connection_token_list", rfc: "RFC 9110 §7.6.1", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, close\r\n\r\n", expect: &[GET_HEALTHZ], closes: true, note: "close anywhere in the list" },
    Case { name: "connection_empty_list_elements", rfc: "RFC 9110 §5.6.1", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nConnection: , ,close ,\r\n\r\n", expect: &[GET_HEALTHZ], closes: true, note: "empty list elements are ignored" },
    Case { name: "connection_two_lines", rfc: "RFC 9110 §5.3", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nConnection: foo\r\nConnection: close\r\n\r\n", expect: &[GET_HEALTHZ], closes: true, note: "field lines combine into one list" },
    Case { name: "connection_keep_alive_http11", rfc: "RFC 9112 §9.3", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "the 1.1 default anyway" },
    Case { name: "connection_other_option", rfc: "RFC 9110 §7.6.1", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "other options do not close" },
    Case { name: "connection_closed_is_not_close", rfc: "RFC 9110 §7.6.1", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "whole tokens only" },
    Case { name: "version_lowercase", rfc: "RFC 9112 §2.3", input: b"GET /healthz http/1.1\r\nHost: h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "HTTP-name is case-sensitive" },
    Case { name: "version_http2", rfc: "RFC 9110 §15.6.6", input: b"GET /healthz HTTP/2.0\r\nHost: h\r\n\r\n", expect: &[Reject(505)], closes: true, note: "another major version" },
    Case { name: "version_http3", rfc: "RFC 9110 §15.6.6", input: b"GET /healthz HTTP/3.0\r\nHost: h\r\n\r\n", expect: &[Reject(505)], closes: true, note: "another major version" },
    Case { name: "version_http2_short", rfc: "RFC 9110 §15.6.6", input: b"GET /healthz HTTP/2\r\nHost: h\r\n\r\n", expect: &[Reject(505)], closes: true, note: "HTTP/2 as it is usually named" },
    Case { name: "version_http09", rfc: "RFC 9110 §15.6.6", input: b"GET /healthz HTTP/0.9\r\nHost: h\r\n\r\n", expect: &[Reject(505)], closes: true, note: "major version 0" },
    Case { name: "version_http12_as_http11", rfc: "RFC 9110 §2.5", input: b"GET /healthz HTTP/1.2\r\nHost: h\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "a higher 1.x minor is served as HTTP/1.1" },
    Case { name: "version_http19_needs_host", rfc: "RFC 9110 §2.5", input: b"GET /healthz HTTP/1.9\r\n\r\n", expect: &[Reject(400)], closes: true, note: "served as 1.1, so Host is required" },
    Case { name: "version_without_minor", rfc: "RFC 9112 §2.3", input: b"GET /healthz HTTP/1\r\nHost: h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "DIGIT \".\" DIGIT" },
    Case { name: "version_two_digit_minor", rfc: "RFC 9112 §2.3", input: b"GET /healthz HTTP/1.10\r\nHost: h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "single digits only" },
    Case { name: "version_two_digit_major", rfc: "RFC 9112 §2.3", input: b"GET /healthz HTTP/11\r\nHost: h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "garbage version" },
    Case { name: "version_bad_name", rfc: "RFC 9112 §2.3", input: b"GET /healthz HTTX/1.1\r\nHost: h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "garbage version" },
    Case { name: "version_missing", rfc: "RFC 9112 §3", input: b"GET /healthz\r\nHost: h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "HTTP/0.9 simple requests are not served" },
    Case { name: "version_empty", rfc: "RFC 9112 §3", input: b"GET /healthz \r\nHost: h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "an empty version" },
    Case { name: "version_trailing_space", rfc: "RFC 9112 §3", input: b"GET /healthz HTTP/1.1 \r\nHost: h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "no whitespace after the version" },
    Case { name: "http2_preface", rfc: "RFC 9110 §2.5", input: b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", expect: &[Reject(505)], closes: true, note: "the HTTP/2 connection preface" },
    Case { name: "request_line_leading_space", rfc: "RFC 9112 §3", input: b" GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "an empty method" },
    Case { name: "request_line_double_space", rfc: "RFC 9112 §3", input: b"GET  /healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "exactly one SP between parts" },
    Case { name: "request_line_double_space_before_version", rfc: "RFC 9112 §3", input: b"GET /healthz  HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "exactly one SP between parts" },
    Case { name: "request_line_tab_separator", rfc: "RFC 9112 §3", input: b"GET\t/healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "SP, not HTAB" },
    Case { name: "request_line_extra_part", rfc: "RFC 9112 §3", input: b"GET / /healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "three spaces" },
    Case { name: "request_line_only_method", rfc: "RFC 9112 §3", input: b"GET\r\n\r\n", expect: &[Reject(400)], closes: true, note: "missing target and version" },
    Case { name: "method_with_parenthesis", rfc: "RFC 9110 §5.6.2", input: b"GE(T /healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "not a tchar" },
    Case { name: "method_with_colon", rfc: "RFC 9110 §5.6.2", input: b"GE:T /healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "not a tchar" },
    Case { name: "method_with_nul", rfc: "RFC 9110 §5.6.2", input: b"GE\x00T /healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "NUL in the method" },
    Case { name: "target_with_control", rfc: "RFC 9112 §3.2", input: b"GET /health\x01z HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "control byte in the target" },
    Case { name: "target_with_del", rfc: "RFC 9112 §3.2", input: b"GET /health\x7fz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "DEL in the target" },
    Case { name: "target_with_obs_text", rfc: "RFC 9112 §3.2", input: b"GET /health\xffz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "raw non-ASCII must be percent-encoded" },
    Case { name: "target_with_fragment", rfc: "RFC 9112 §3.2", input: b"GET /healthz#top HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "fragments are not sent" },
    Case { name: "target_with_bare_cr", rfc: "RFC 9112 §2.2", input: b"GET /healthz\rHTTP/1.1\r\nHost: h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "a bare CR is refused" },
    Case { name: "leading_empty_line", rfc: "RFC 9112 §2.2", input: b"\r\nGET /healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "an empty line before the request line is ignored; h11 refuses it, but §2.2 says a server SHOULD ignore at least one" },
    Case { name: "leading_empty_lines", rfc: "RFC 9112 §2.2", input: b"\r\n\r\n\nGET /healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "several, CRLF or LF; h11 refuses them (see §2.2)" },
    Case { name: "leading_whitespace_line", rfc: "RFC 9112 §2.2", input: b" \r\nGET /healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "a line of spaces is not empty" },
    Case { name: "header_without_colon", rfc: "RFC 9112 §5", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nX-A 1\r\n\r\n", expect: &[Reject(400)], closes: true, note: "field-name \":\" field-value" },
    Case { name: "header_space_before_colon", rfc: "RFC 9112 §5.1", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nX-A : 1\r\n\r\n", expect: &[Reject(400)], closes: true, note: "MUST reject whitespace between name and colon" },
    Case { name: "host_space_before_colon", rfc: "RFC 9112 §5.1", input: b"GET /healthz HTTP/1.1\r\nHost : h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "the classic smuggling vector" },
    Case { name: "header_tab_before_colon", rfc: "RFC 9112 §5.1", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nX-A\t: 1\r\n\r\n", expect: &[Reject(400)], closes: true, note: "HTAB too" },
    Case { name: "header_empty_name", rfc: "RFC 9110 §5.1", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\n: 1\r\n\r\n", expect: &[Reject(400)], closes: true, note: "field-name is 1*tchar" },
    Case { name: "header_name_not_token", rfc: "RFC 9110 §5.1", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nX(A): 1\r\n\r\n", expect: &[Reject(400)], closes: true, note: "field-name is 1*tchar" },
    Case { name: "header_name_non_ascii", rfc: "RFC 9110 §5.1", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nX-\xc3\xa9: 1\r\n\r\n", expect: &[Reject(400)], closes: true, note: "field-name is ASCII" },
    Case { name: "header_obs_fold", rfc: "RFC 9112 §5.2", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n  2\r\n\r\n", expect: &[Reject(400)], closes: true, note: "obs-fold is refused" },
    Case { name: "header_obs_fold_tab", rfc: "RFC 9112 §5.2", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\t2\r\n\r\n", expect: &[Reject(400)], closes: true, note: "obs-fold with HTAB" },
    Case { name: "whitespace_before_first_header", rfc: "RFC 9112 §2.2", input: b"GET /healthz HTTP/1.1\r\n Host: h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "whitespace between the request line and the first field" },
    Case { name: "header_value_nul", rfc: "RFC 9110 §5.5", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n", expect: &[Reject(400)], closes: true, note: "NUL in a value" },
    Case { name: "header_value_bare_cr", rfc: "RFC 9110 §5.5", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n", expect: &[Reject(400)], closes: true, note: "a bare CR in a value" },
    Case { name: "header_line_ends_bare_cr", rfc: "RFC 9112 §2.2", input: b"GET /healthz HTTP/1.1\r\nHost: h\rX-A: 1\r\n\r\n", expect: &[Reject(400)], closes: true, note: "a bare CR as a line ending" },
    Case { name: "header_value_control", rfc: "RFC 9110 §5.5", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nX-A: a\x01b\r\n\r\n", expect: &[Reject(400)], closes: true, note: "control byte in a value" },
    Case { name: "header_value_del", rfc: "RFC 9110 §5.5", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nX-A: a\x7fb\r\n\r\n", expect: &[Reject(400)], closes: true, note: "DEL in a value" },
    Case { name: "header_value_obs_text", rfc: "RFC 9110 §5.5", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nX-A: caf\xe9\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "obs-text is allowed in values" },
    Case { name: "header_value_tab", rfc: "RFC 9110 §5.5", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nX-A: a\tb\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "HTAB is allowed in values" },
    Case { name: "header_value_empty", rfc: "RFC 9110 §5.5", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nX-A:\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "an empty value" },
    Case { name: "header_value_surrounding_whitespace", rfc: "RFC 9112 §5.1", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nX-A: \t a \t\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "OWS around the value is trimmed" },
    Case { name: "bare_lf_line_endings", rfc: "RFC 9112 §2.2", input: b"GET /healthz HTTP/1.1\nHost: h\n\n", expect: &[GET_HEALTHZ], closes: false, note: "a recipient MAY accept bare LF; we do" },
    Case { name: "mixed_line_endings", rfc: "RFC 9112 §2.2", input: b"GET /healthz HTTP/1.1\r\nHost: h\nX-A: 1\r\n\n", expect: &[GET_HEALTHZ], closes: false, note: "CRLF and LF mixed" },
    Case { name: "bare_lf_then_crlf_end", rfc: "RFC 9112 §2.2", input: b"GET /healthz HTTP/1.1\nHost: h\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "the blank line as CRLF after LF lines" },
    Case { name: "bare_lf_post_body", rfc: "RFC 9112 §2.2", input: b"POST /healthz HTTP/1.1\nHost: h\nContent-Length: 2\n\nhi", expect: &[post(b"hi")], closes: false, note: "LF head, framed body" },
    Case { name: "long_header_value", rfc: "RFC 9110 §5.4", input: &LONG_VALUE, expect: &[GET_HEALTHZ], closes: false, note: "a 4000-byte value within head_bytes_max" },
    Case { name: "headers_at_count_max", rfc: "RFC 9110 §5.4", input: &HEADERS_64, expect: &[GET_HEALTHZ], closes: false, note: "exactly header_count_max (64) fields" },
    Case { name: "headers_over_count_max", rfc: "RFC 9110 §5.4", input: &HEADERS_65, expect: &[Reject(431)], closes: true, note: "header_count_max + 1 fields" },
    Case { name: "head_at_max", rfc: "RFC 9110 §5.4", input: &HEAD_AT_MAX, expect: &[GET_HEALTHZ], closes: false, note: "a head of exactly head_bytes_max (8192) bytes" },
    Case { name: "head_over_max", rfc: "RFC 9110 §5.4", input: &HEAD_OVER_MAX, expect: &[Reject(431)], closes: true, note: "head_bytes_max + 1 bytes" },
    Case { name: "head_never_ends", rfc: "RFC 9110 §5.4", input: &HEAD_NEVER_ENDS, expect: &[Reject(431)], closes: true, note: "431 as soon as head_bytes_max bytes hold no end" },
    Case { name: "method_too_long", rfc: "RFC 9110 §5.4", input: &LONG_METHOD, expect: &[Reject(431)], closes: true, note: "a request line without a space runs into the head limit" },
    Case { name: "target_at_max", rfc: "RFC 9112 §3", input: &URI_AT_MAX, expect: &[GET_HEALTHZ], closes: false, note: "a target of exactly uri_bytes_max (4096) bytes" },
    Case { name: "target_over_max", rfc: "RFC 9110 §15.5.15", input: &URI_OVER_MAX, expect: &[Reject(414)], closes: true, note: "uri_bytes_max + 1" },
    Case { name: "target_over_max_unfinished", rfc: "RFC 9110 §15.5.15", input: &URI_OVER_MAX_UNFINISHED, expect: &[Reject(414)], closes: true, note: "414 before the head is complete" },
    Case { name: "target_and_head_over_max", rfc: "RFC 9110 §15.5.15", input: &URI_AND_HEAD_OVER_MAX, expect: &[Reject(414)], closes: true, note: "the target is judged first" },
    Case { name: "host_missing", rfc: "RFC 9112 §3.2", input: b"GET /healthz HTTP/1.1\r\n\r\n", expect: &[Reject(400)], closes: true, note: "HTTP/1.1 requires Host" },
    Case { name: "host_duplicate_same", rfc: "RFC 9112 §3.2", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "more than one Host line" },
    Case { name: "host_duplicate_different", rfc: "RFC 9112 §3.2", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nHost: x\r\n\r\n", expect: &[Reject(400)], closes: true, note: "more than one Host line" },
    Case { name: "host_empty", rfc: "RFC 9112 §3.2", input: b"GET /healthz HTTP/1.1\r\nHost:\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "an empty Host is valid syntax" },
    Case { name: "host_with_port", rfc: "RFC 9110 §7.2", input: b"GET /healthz HTTP/1.1\r\nHost: h:8080\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "uri-host \":\" port" },
    Case { name: "host_ipv4", rfc: "RFC 9110 §7.2", input: b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "IPv4address" },
    Case { name: "host_ipv6", rfc: "RFC 9110 §7.2", input: b"GET /healthz HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "IP-literal" },
    Case { name: "host_name_case", rfc: "RFC 9110 §5.1", input: b"GET /healthz HTTP/1.1\r\nHOST: h\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "field names are case-insensitive" },
    Case { name: "host_with_space", rfc: "RFC 9110 §7.2", input: b"GET /healthz HTTP/1.1\r\nHost: h h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "invalid host" },
    Case { name: "host_with_slash", rfc: "RFC 9110 §7.2", input: b"GET /healthz HTTP/1.1\r\nHost: h/x\r\n\r\n", expect: &[Reject(400)], closes: true, note: "invalid host" },
    Case { name: "host_with_userinfo", rfc: "RFC 9110 §7.2", input: b"GET /healthz HTTP/1.1\r\nHost: u@h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "invalid host" },
    Case { name: "host_bad_port", rfc: "RFC 9110 §7.2", input: b"GET /healthz HTTP/1.1\r\nHost: h:80a\r\n\r\n", expect: &[Reject(400)], closes: true, note: "port is digits" },
    Case { name: "host_long_port", rfc: "RFC 9110 §7.2", input: b"GET /healthz HTTP/1.1\r\nHost: h:123456\r\n\r\n", expect: &[Reject(400)], closes: true, note: "more than five port digits" },
    Case { name: "host_unclosed_ipv6", rfc: "RFC 9110 §7.2", input: b"GET /healthz HTTP/1.1\r\nHost: [::1\r\n\r\n", expect: &[Reject(400)], closes: true, note: "invalid IP-literal" },
    Case { name: "content_length_plus", rfc: "RFC 9110 §8.6", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\nhello", expect: &[Reject(400)], closes: true, note: "1*DIGIT: no sign" },
    Case { name: "content_length_negative", rfc: "RFC 9110 §8.6", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", expect: &[Reject(400)], closes: true, note: "1*DIGIT: no sign" },
    Case { name: "content_length_leading_zeros", rfc: "RFC 9110 §8.6", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 007\r\n\r\nabcdefg", expect: &[post(b"abcdefg")], closes: false, note: "1*DIGIT allows leading zeros" },
    Case { name: "content_length_overflow", rfc: "RFC 9112 §6.3", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n", expect: &[Reject(400)], closes: true, note: "does not fit 64 bits: invalid, not huge" },
    Case { name: "content_length_huge", rfc: "RFC 9110 §15.5.14", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999\r\n\r\n", expect: &[Reject(413)], closes: true, note: "valid but over body_bytes_max" },
    Case { name: "content_length_over_max", rfc: "RFC 9110 §15.5.14", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 16385\r\n\r\n", expect: &[Reject(413)], closes: true, note: "body_bytes_max + 1, refused before the body" },
    Case { name: "content_length_at_max", rfc: "RFC 9110 §8.6", input: &BODY_AT_MAX_REQUEST, expect: &[post(&BODY_AT_MAX)], closes: false, note: "exactly body_bytes_max (16384)" },
    Case { name: "content_length_letters", rfc: "RFC 9110 §8.6", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: abc\r\n\r\n", expect: &[Reject(400)], closes: true, note: "not digits" },
    Case { name: "content_length_trailing_letter", rfc: "RFC 9110 §8.6", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 5a\r\n\r\nhello", expect: &[Reject(400)], closes: true, note: "not digits" },
    Case { name: "content_length_hex", rfc: "RFC 9110 §8.6", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 0x5\r\n\r\nhello", expect: &[Reject(400)], closes: true, note: "decimal only" },
    Case { name: "content_length_inner_space", rfc: "RFC 9110 §8.6", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 1 0\r\n\r\n0123456789", expect: &[Reject(400)], closes: true, note: "no inner whitespace" },
    Case { name: "content_length_list", rfc: "RFC 9110 §8.6", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\nhello", expect: &[Reject(400)], closes: true, note: "the list form is refused" },
    Case { name: "content_length_duplicate_same", rfc: "RFC 9110 §8.6", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", expect: &[Reject(400)], closes: true, note: "we refuse even equal duplicates (smuggling-safe)" },
    Case { name: "content_length_duplicate_different", rfc: "RFC 9112 §6.3", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", expect: &[Reject(400)], closes: true, note: "conflicting lengths" },
    Case { name: "content_length_empty", rfc: "RFC 9110 §8.6", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", expect: &[Reject(400)], closes: true, note: "an empty value" },
    Case { name: "content_length_whitespace_around", rfc: "RFC 9112 §5.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nContent-Length:  5 \r\n\r\nhello", expect: &[post(b"hello")], closes: false, note: "OWS around the value" },
    Case { name: "content_length_body_then_request", rfc: "RFC 9112 §6.2", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET /readyz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[post(b"hello"), GET_READYZ], closes: false, note: "the body ends exactly at the length" },
    Case { name: "content_length_name_case", rfc: "RFC 9110 §5.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\ncontent-LENGTH: 2\r\n\r\nhi", expect: &[post(b"hi")], closes: false, note: "field names are case-insensitive" },
    Case { name: "chunked", rfc: "RFC 9112 §7.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", expect: &[post(b"hello")], closes: false, note: "one chunk" },
    Case { name: "chunked_several_chunks", rfc: "RFC 9112 §7.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n", expect: &[post(b"hello")], closes: false, note: "chunks are concatenated" },
    Case { name: "chunked_empty_body", rfc: "RFC 9112 §7.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", expect: &[post(b"")], closes: false, note: "only the last chunk" },
    Case { name: "chunked_coding_uppercase", rfc: "RFC 9112 §7", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: CHUNKED\r\n\r\n5\r\nhello\r\n0\r\n\r\n", expect: &[post(b"hello")], closes: false, note: "coding names are case-insensitive" },
    Case { name: "chunked_hex_uppercase", rfc: "RFC 9112 §7.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n", expect: &[post(b"0123456789")], closes: false, note: "HEXDIG upper case" },
    Case { name: "chunked_hex_lowercase", rfc: "RFC 9112 §7.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n0\r\n\r\n", expect: &[post(b"0123456789")], closes: false, note: "hex digits in lower case too" },
    Case { name: "chunked_size_leading_zeros", rfc: "RFC 9112 §7.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0005\r\nhello\r\n0\r\n\r\n", expect: &[post(b"hello")], closes: false, note: "1*HEXDIG allows leading zeros" },
    Case { name: "chunked_last_chunk_zeros", rfc: "RFC 9112 §7.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n000\r\n\r\n", expect: &[post(b"hello")], closes: false, note: "last-chunk = 1*(\"0\")" },
    Case { name: "chunked_extension", rfc: "RFC 9112 §7.1.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n0\r\n\r\n", expect: &[post(b"hello")], closes: false, note: "extensions are ignored" },
    Case { name: "chunked_extension_quoted", rfc: "RFC 9112 §7.1.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;n=\"a; b\\\"c\"\r\nhello\r\n0\r\n\r\n", expect: &[post(b"hello")], closes: false, note: "quoted-string with ; and a quoted-pair" },
    Case { name: "chunked_extension_without_value", rfc: "RFC 9112 §7.1.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;flag\r\nhello\r\n0;a;b=c\r\n\r\n", expect: &[post(b"hello")], closes: false, note: "name only, and on the last chunk" },
    Case { name: "chunked_extension_bws", rfc: "RFC 9112 §7.1.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5 ; n = v\r\nhello\r\n0\r\n\r\n", expect: &[post(b"hello")], closes: false, note: "BWS around ; and =; h11 refuses it, but §7.1.1 allows BWS around `;` and `=`" },
    Case { name: "chunked_extension_no_name", rfc: "RFC 9112 §7.1.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;=v\r\nhello\r\n0\r\n\r\n", expect: &[Reject(400)], closes: true, note: "chunk-ext-name is a token" },
    Case { name: "chunked_extension_unclosed_quote", rfc: "RFC 9112 §7.1.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;n=\"v\r\nhello\r\n0\r\n\r\n", expect: &[Reject(400)], closes: true, note: "a quoted string cannot span the line end" },
    Case { name: "chunked_extension_control", rfc: "RFC 9112 §7.1.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;n=\x01\r\nhello\r\n0\r\n\r\n", expect: &[Reject(400)], closes: true, note: "control byte in an extension" },
    Case { name: "chunked_extension_too_long", rfc: "RFC 9112 §7.1.1", input: &CHUNK_EXTENSION_TOO_LONG, expect: &[Reject(400)], closes: true, note: "size lines are bounded (1024 bytes)" },
    Case { name: "chunked_trailer", rfc: "RFC 9112 §7.1.2", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\nX-U: 2\r\n\r\n", expect: &[post(b"hello")], closes: false, note: "trailers are parsed and discarded" },
    Case { name: "chunked_trailer_malformed", rfc: "RFC 9112 §7.1.2", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nbad trailer\r\n\r\n", expect: &[Reject(400)], closes: true, note: "a trailer must be a field line" },
    Case { name: "chunked_trailer_obs_fold", rfc: "RFC 9112 §7.1.2", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n 2\r\n\r\n", expect: &[Reject(400)], closes: true, note: "no obs-fold in trailers" },
    Case { name: "chunked_size_not_hex", rfc: "RFC 9112 §7.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\ng\r\nhello\r\n0\r\n\r\n", expect: &[Reject(400)], closes: true, note: "HEXDIG only" },
    Case { name: "chunked_size_negative", rfc: "RFC 9112 §7.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nhello\r\n0\r\n\r\n", expect: &[Reject(400)], closes: true, note: "no sign" },
    Case { name: "chunked_size_plus", rfc: "RFC 9112 §7.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n", expect: &[Reject(400)], closes: true, note: "no sign" },
    Case { name: "chunked_size_0x_prefix", rfc: "RFC 9112 §7.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", expect: &[Reject(400)], closes: true, note: "no 0x prefix" },
    Case { name: "chunked_size_overflow", rfc: "RFC 9112 §7.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\nhello\r\n0\r\n\r\n", expect: &[Reject(400)], closes: true, note: "does not fit 64 bits" },
    Case { name: "chunked_size_empty", rfc: "RFC 9112 §7.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\r\nhello\r\n0\r\n\r\n", expect: &[Reject(400)], closes: true, note: "chunk-size is 1*HEXDIG" },
    Case { name: "chunked_size_trailing_space", rfc: "RFC 9112 §7.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n", expect: &[Reject(400)], closes: true, note: "BWS only before a `;`" },
    Case { name: "chunked_size_bare_lf", rfc: "RFC 9112 §7.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", expect: &[Reject(400)], closes: true, note: "chunk lines end in CRLF (no LF leniency in the body)" },
    Case { name: "chunked_data_bare_lf", rfc: "RFC 9112 §7.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n", expect: &[Reject(400)], closes: true, note: "CRLF after data, strictly" },
    Case { name: "chunked_data_missing_crlf", rfc: "RFC 9112 §7.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello0\r\n\r\n", expect: &[Reject(400)], closes: true, note: "CRLF after data, strictly" },
    Case { name: "chunked_data_longer_than_size", rfc: "RFC 9112 §7.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n", expect: &[Reject(400)], closes: true, note: "the byte after the data must be CR" },
    Case { name: "chunked_data_shorter_than_size", rfc: "RFC 9112 §7.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel\r\n0\r\n\r\n", expect: &[Reject(400)], closes: true, note: "the size counts the CRLF as data, then no CRLF follows" },
    Case { name: "chunked_last_chunk_without_blank_line", rfc: "RFC 9112 §7.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nGET /readyz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "the next request cannot be taken for a trailer" },
    Case { name: "chunked_final_cr_without_lf", rfc: "RFC 9112 §7.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\rX", expect: &[Reject(400)], closes: true, note: "the final CRLF, strictly" },
    Case { name: "chunked_over_body_max", rfc: "RFC 9110 §15.5.14", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n4001\r\n", expect: &[Reject(413)], closes: true, note: "a chunk over body_bytes_max, refused before its data" },
    Case { name: "chunked_total_over_body_max", rfc: "RFC 9110 §15.5.14", input: &CHUNKED_TOTAL_OVER_MAX, expect: &[Reject(413)], closes: true, note: "the decoded total is bounded, not just each chunk" },
    Case { name: "chunked_then_request", rfc: "RFC 9112 §7.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /readyz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[post(b"hello"), GET_READYZ], closes: false, note: "the next request starts after the final CRLF" },
    Case { name: "te_gzip", rfc: "RFC 9112 §6.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", expect: &[Reject(501)], closes: true, note: "an unknown transfer coding" },
    Case { name: "te_gzip_chunked", rfc: "RFC 9112 §6.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", expect: &[Reject(501)], closes: true, note: "chunked last, but gzip is unsupported" },
    Case { name: "te_chunked_gzip", rfc: "RFC 9112 §6.3", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", expect: &[Reject(400)], closes: true, note: "chunked not last: length unknowable" },
    Case { name: "te_chunked_twice", rfc: "RFC 9112 §6.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", expect: &[Reject(400)], closes: true, note: "chunked MUST NOT be applied twice" },
    Case { name: "te_chunked_two_lines", rfc: "RFC 9112 §6.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", expect: &[Reject(400)], closes: true, note: "lines combine: chunked twice" },
    Case { name: "te_gzip_then_chunked_lines", rfc: "RFC 9112 §6.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", expect: &[Reject(501)], closes: true, note: "lines combine: gzip, chunked" },
    Case { name: "te_identity", rfc: "RFC 9112 §7", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n", expect: &[Reject(501)], closes: true, note: "identity left the registry (RFC 7230): an unknown coding" },
    Case { name: "te_unknown_token", rfc: "RFC 9112 §6.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n", expect: &[Reject(501)], closes: true, note: "only the exact token chunked" },
    Case { name: "te_empty", rfc: "RFC 9112 §6.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n", expect: &[Reject(400)], closes: true, note: "no coding at all" },
    Case { name: "te_chunked_with_parameter", rfc: "RFC 9112 §7", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n", expect: &[Reject(400)], closes: true, note: "chunked has no parameters" },
    Case { name: "te_two_words", rfc: "RFC 9112 §7", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chu nked\r\n\r\n", expect: &[Reject(400)], closes: true, note: "not a coding list" },
    Case { name: "te_whitespace_around", rfc: "RFC 9112 §5.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:  chunked \r\n\r\n0\r\n\r\n", expect: &[post(b"")], closes: false, note: "OWS around the value" },
    Case { name: "te_empty_list_elements", rfc: "RFC 9110 §5.6.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: , chunked\r\n\r\n0\r\n\r\n", expect: &[post(b"")], closes: false, note: "empty list elements are ignored; h11 answers 501, but §5.6.1 says a recipient MUST accept empty elements" },
    Case { name: "te_and_content_length", rfc: "RFC 9112 §6.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n", expect: &[Reject(400)], closes: true, note: "both framings: refuse and close" },
    Case { name: "content_length_and_te", rfc: "RFC 9112 §6.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", expect: &[Reject(400)], closes: true, note: "both framings, other order" },
    Case { name: "te_gzip_and_content_length", rfc: "RFC 9112 §6.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\nhello", expect: &[Reject(400)], closes: true, note: "both framings: 400 before 501" },
    Case { name: "te_and_invalid_content_length", rfc: "RFC 9112 §6.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: x\r\n\r\n0\r\n\r\n", expect: &[Reject(400)], closes: true, note: "both framings, one of them broken" },
    Case { name: "expect_continue", rfc: "RFC 9110 §10.1.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello", expect: &[Outcome::Continue, post(b"hello")], closes: false, note: "100 Continue once the head is in and the body is not" },
    Case { name: "expect_continue_chunked", rfc: "RFC 9110 §10.1.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", expect: &[Outcome::Continue, post(b"hello")], closes: false, note: "with a chunked body" },
    Case { name: "expect_continue_case", rfc: "RFC 9110 §10.1.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 5\r\n\r\nhello", expect: &[Outcome::Continue, post(b"hello")], closes: false, note: "case-insensitive" },
    Case { name: "expect_continue_without_body", rfc: "RFC 9110 §10.1.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n", expect: &[post(b"")], closes: false, note: "no body to wait for: no 100" },
    Case { name: "expect_continue_get", rfc: "RFC 9110 §10.1.1", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "no body to wait for: no 100" },
    Case { name: "expect_continue_body_too_large", rfc: "RFC 9110 §10.1.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 16385\r\n\r\n", expect: &[Reject(413)], closes: true, note: "a final status instead of 100" },
    Case { name: "expect_unknown_ignored", rfc: "RFC 9110 §10.1.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nExpect: something\r\nContent-Length: 2\r\n\r\nhi", expect: &[post(b"hi")], closes: false, note: "other expectations are ignored (417 not used)" },
    Case { name: "pipelined_two", rfc: "RFC 9112 §9.3.2", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\nGET /readyz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[GET_HEALTHZ, GET_READYZ], closes: false, note: "answered in order" },
    Case { name: "pipelined_three_mixed", rfc: "RFC 9112 §9.3.2", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\nHEAD /healthz HTTP/1.1\r\nHost: h\r\n\r\nPOST /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi", expect: &[GET_HEALTHZ, HEAD_HEALTHZ, post(b"hi")], closes: false, note: "GET, HEAD, POST" },
    Case { name: "pipelined_sixteen_mixed", rfc: "RFC 9112 §9.3.2", input: &PIPELINE_16, expect: &[GET_HEALTHZ, post(b"hello"), GET_READYZ, post(b"hi"), GET_HEALTHZ, post(b"hello"), GET_READYZ, post(b"hi"), GET_HEALTHZ, post(b"hello"), GET_READYZ, post(b"hi"), GET_HEALTHZ, post(b"hello"), GET_READYZ, post(b"hi")], closes: false, note: "16 requests: GET, Content-Length, GET, chunked, four times" },
    Case { name: "pipelined_error_second", rfc: "RFC 9112 §9.3.2", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\nGET /readyz HTTP/9.9\r\nHost: h\r\n\r\nGET /healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[GET_HEALTHZ, Reject(505)], closes: true, note: "the first is answered, then the error closes" },
    Case { name: "pipelined_chunked_then_length", rfc: "RFC 9112 §9.3.2", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\nPOST /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello", expect: &[post(b"hi"), post(b"hello")], closes: false, note: "the decode buffer is reused" },
    Case { name: "pipelined_empty_line_between", rfc: "RFC 9112 §2.2", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n\r\nGET /readyz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[GET_HEALTHZ, GET_READYZ], closes: false, note: "a stray CRLF between requests is ignored" },
    Case { name: "pipelined_http10_then_close", rfc: "RFC 9112 §9.3", input: b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /readyz HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[GET_HEALTHZ, GET_READYZ], closes: true, note: "keep-alive 1.0, then a 1.1 close" },
    Case { name: "pipelined_after_bad_length", rfc: "RFC 9112 §6.3", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 0\r\n\r\nhelloGET /readyz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "after a framing error nothing more is read" },
    Case { name: "target_percent_encoded_path", rfc: "RFC 9112 §3.2.1", input: b"GET /health%7A HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[req("GET", "/health%7A")], closes: false, note: "the path is passed on undecoded; the router does not match it (404)" },
    Case { name: "target_percent_encoded_slash", rfc: "RFC 9112 §3.2.1", input: b"GET /%2Fhealthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[req("GET", "/%2Fhealthz")], closes: false, note: "%2F stays data, not a separator" },
    Case { name: "target_bad_percent_escape_in_query", rfc: "RFC 9112 §3.2.1", input: b"GET /healthz?x=%zz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "percent-encoding is the router's business, not the parser's" },
    Case { name: "target_dot_segments", rfc: "RFC 9112 §3.2.1", input: b"GET /a/../healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[req("GET", "/a/../healthz")], closes: false, note: "dot segments are data: no normalisation, so no path escapes (router 404)" },
    Case { name: "target_leading_dot_dot", rfc: "RFC 9112 §3.2.1", input: b"GET /../healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[req("GET", "/../healthz")], closes: false, note: "dot segments are data (router 404)" },
    Case { name: "target_fragment_after_query", rfc: "RFC 9112 §3.2", input: b"GET /healthz?a=1#b HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "a fragment is never sent in a request-target" },
    Case { name: "target_root", rfc: "RFC 9112 §3.2.1", input: b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[req("GET", "/")], closes: false, note: "the shortest origin-form (routed: the list page)" },
    Case { name: "target_double_slash", rfc: "RFC 9112 §3.2.1", input: b"GET //healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[req("GET", "//healthz")], closes: false, note: "an empty first segment, not an authority (router 404)" },
    Case { name: "target_question_in_query", rfc: "RFC 9112 §3.2.1", input: b"GET /healthz?a?b=/c HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "`?` and `/` are allowed in a query" },
    Case { name: "target_sub_delims_in_path", rfc: "RFC 9112 §3.2.1", input: b"GET /healthz;p=1,2!$&'()*+=:@ HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[req("GET", "/healthz;p=1,2!$&'()*+=:@")], closes: false, note: "pchar includes sub-delims, `:` and `@` (router 404)" },
    Case { name: "target_with_double_quote", rfc: "RFC 9112 §3.2", input: b"GET /healthz?\"x\" HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "DQUOTE is not a URI character, but the parser only refuses CTLs, SP, `#` and non-ASCII in a target (as nginx does); the router never matches such a target" },
    Case { name: "target_with_braces", rfc: "RFC 9112 §3.2", input: b"GET /healthz?{x} HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "`{` `}` are not URI characters; accepted like DQUOTE (a lenient but harmless choice: no framing depends on the target)" },
    Case { name: "absolute_form_ipv6", rfc: "RFC 9112 §3.2.2", input: b"GET http://[::1]:80/healthz HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "an IPv6 literal authority" },
    Case { name: "absolute_form_without_path", rfc: "RFC 9112 §3.2.2", input: b"GET http://h HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[req("GET", "/")], closes: false, note: "an empty path in absolute-form means `/` (RFC 9112 §3.2.1 for origin servers); routed: the list page" },
    Case { name: "absolute_form_port_out_of_range", rfc: "RFC 9112 §3.2.2", input: b"GET http://h:99999/healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "port is *DIGIT (RFC 3986 §3.2.3): the range is not checked, only the five-digit bound; the authority is not used for routing" },
    Case { name: "method_all_tchar_punctuation", rfc: "RFC 9110 §5.6.2", input: b"!#$%&'*+-.^_`|~09AZaz /healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[req("!#$%&'*+-.^_`|~09AZaz", "/healthz")], closes: false, note: "every tchar is allowed in a method token (router 405)" },
    Case { name: "method_mixed_case", rfc: "RFC 9110 §9.1", input: b"Get /healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[req("Get", "/healthz")], closes: false, note: "case-sensitive: `Get` is an unknown method (router 405)" },
    Case { name: "method_lowercase_head", rfc: "RFC 9110 §9.1", input: b"head /healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[req("head", "/healthz")], closes: false, note: "`head` is not HEAD: a full response, not head-only (router 405)" },
    Case { name: "method_lowercase_post_with_body", rfc: "RFC 9112 §6.3", input: b"post /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi", expect: &[Outcome::Request { method: "post", path: "/healthz", body: b"hi" }], closes: false, note: "framing does not depend on the method: the body is read" },
    Case { name: "method_with_slash", rfc: "RFC 9110 §5.6.2", input: b"GE/T /healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "`/` is a delimiter, not a tchar" },
    Case { name: "method_with_double_quote", rfc: "RFC 9110 §5.6.2", input: b"GE\"T /healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "DQUOTE is not a tchar" },
    Case { name: "method_with_obs_text", rfc: "RFC 9110 §5.6.2", input: b"G\xc9T /healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "high-bit bytes are not tchars" },
    Case { name: "method_with_del", rfc: "RFC 9110 §5.6.2", input: b"GE\x7fT /healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "DEL is not a tchar" },
    Case { name: "header_value_obs_text_range", rfc: "RFC 9110 §5.5", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nX-A: \x80\x9f\xa0\xff\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "obs-text is 0x80-0xFF, all allowed in field values" },
    Case { name: "header_value_utf8", rfc: "RFC 9110 §5.5", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nX-A: \xc3\xa9t\xc3\xa9\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "UTF-8 is obs-text to HTTP: accepted as opaque bytes" },
    Case { name: "header_value_del_at_end", rfc: "RFC 9110 §5.5", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nX-A: a\x7f\r\n\r\n", expect: &[Reject(400)], closes: true, note: "DEL is neither VCHAR nor obs-text" },
    Case { name: "header_value_escape", rfc: "RFC 9110 §5.5", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nX-A: a\x1b[0m\r\n\r\n", expect: &[Reject(400)], closes: true, note: "ESC is a CTL" },
    Case { name: "header_value_vertical_tab", rfc: "RFC 9110 §5.5", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nX-A: a\x0bb\r\n\r\n", expect: &[Reject(400)], closes: true, note: "VT is a CTL, not whitespace" },
    Case { name: "header_value_form_feed", rfc: "RFC 9110 §5.5", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nX-A: a\x0cb\r\n\r\n", expect: &[Reject(400)], closes: true, note: "FF is a CTL, not whitespace" },
    Case { name: "header_value_colons", rfc: "RFC 9110 §5.5", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nX-A: a:b::c\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "only the first colon ends the name" },
    Case { name: "header_value_starts_with_colon", rfc: "RFC 9112 §5.1", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nX-A::1\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "the value is `:1`" },
    Case { name: "header_value_inner_whitespace", rfc: "RFC 9110 §5.5", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nX-A: a  \t b\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "SP and HTAB inside a value are allowed" },
    Case { name: "header_value_trailing_tab", rfc: "RFC 9112 §5.1", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nX-A: a\t\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "trailing OWS is not part of the value" },
    Case { name: "header_no_space_after_colon", rfc: "RFC 9112 §5.1", input: b"GET /healthz HTTP/1.1\r\nHost:h\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "OWS after the colon is optional" },
    Case { name: "header_name_tchar_punctuation", rfc: "RFC 9110 §5.1", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nX!#$%&'*+-.^_`|~9: 1\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "a field name is a token: every tchar is allowed" },
    Case { name: "header_name_with_slash", rfc: "RFC 9110 §5.1", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nX/A: 1\r\n\r\n", expect: &[Reject(400)], closes: true, note: "`/` is not a tchar" },
    Case { name: "header_name_with_at", rfc: "RFC 9110 §5.1", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nX@A: 1\r\n\r\n", expect: &[Reject(400)], closes: true, note: "`@` is not a tchar" },
    Case { name: "header_name_with_del", rfc: "RFC 9110 §5.1", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nX\x7fA: 1\r\n\r\n", expect: &[Reject(400)], closes: true, note: "DEL is not a tchar" },
    Case { name: "header_name_with_nul", rfc: "RFC 9110 §5.1", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nX\x00A: 1\r\n\r\n", expect: &[Reject(400)], closes: true, note: "NUL is not a tchar" },
    Case { name: "connection_close_odd_case", rfc: "RFC 9110 §7.6.1", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nConnection: cLoSe\r\n\r\n", expect: &[GET_HEALTHZ], closes: true, note: "connection options are case-insensitive" },
    Case { name: "connection_close_among_many", rfc: "RFC 9110 §7.6.1", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, foo,Close ,bar\r\n\r\n", expect: &[GET_HEALTHZ], closes: true, note: "close anywhere in a longer list" },
    Case { name: "connection_close_with_tabs", rfc: "RFC 9110 §5.6.1", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nConnection:\tkeep-alive\t,\tclose\t\r\n\r\n", expect: &[GET_HEALTHZ], closes: true, note: "OWS around list elements may be HTAB" },
    Case { name: "connection_name_case", rfc: "RFC 9110 §5.1", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nCONNECTION: close\r\n\r\n", expect: &[GET_HEALTHZ], closes: true, note: "field names are case-insensitive" },
    Case { name: "connection_close_prefix_is_not_close", rfc: "RFC 9110 §7.6.1", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nConnection: close-ish, xclose\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "whole tokens only" },
    Case { name: "http10_keep_alive_in_list", rfc: "RFC 9112 §C.2.2", input: b"GET /healthz HTTP/1.0\r\nConnection: foo, Keep-Alive\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "keep-alive anywhere in the list" },
    Case { name: "http10_keep_alive_second_line", rfc: "RFC 9110 §5.3", input: b"GET /healthz HTTP/1.0\r\nConnection: foo\r\nConnection: keep-alive\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "field lines combine into one list" },
    Case { name: "http10_keep_alive_prefix_is_not_keep_alive", rfc: "RFC 9112 §C.2.2", input: b"GET /healthz HTTP/1.0\r\nConnection: keep-alives\r\n\r\n", expect: &[GET_HEALTHZ], closes: true, note: "whole tokens only: the 1.0 default close stays" },
    Case { name: "http10_keep_alive_content_length_pipelined", rfc: "RFC 9112 §C.2.2", input: b"POST /healthz HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhiGET /readyz HTTP/1.0\r\n\r\n", expect: &[post(b"hi"), GET_READYZ], closes: true, note: "a 1.0 body framed by Content-Length, kept alive, then the default close" },
    Case { name: "http10_content_length_zero", rfc: "RFC 9112 §6.2", input: b"POST /healthz HTTP/1.0\r\nContent-Length: 0\r\n\r\n", expect: &[post(b"")], closes: true, note: "empty 1.0 body, then close" },
    Case { name: "http10_te_and_content_length", rfc: "RFC 9112 §6.1", input: b"POST /healthz HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello", expect: &[Reject(400)], closes: true, note: "both framings in 1.0: refuse and close" },
    Case { name: "http10_te_identity", rfc: "RFC 9112 §6.1", input: b"POST /healthz HTTP/1.0\r\nTransfer-Encoding: identity\r\nContent-Length: 2\r\n\r\nhi", expect: &[Reject(400)], closes: true, note: "any Transfer-Encoding in 1.0 is faulty framing" },
    Case { name: "http11_then_http10", rfc: "RFC 9112 §9.3", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\nGET /readyz HTTP/1.0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[GET_HEALTHZ, GET_READYZ], closes: true, note: "the version is per request: the 1.0 one closes" },
    Case { name: "te_chunked_capitalised", rfc: "RFC 9112 §7", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n", expect: &[post(b"hi")], closes: false, note: "coding names are case-insensitive" },
    Case { name: "te_tabs_around", rfc: "RFC 9112 §5.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\tchunked\t\r\n\r\n2\r\nhi\r\n0\r\n\r\n", expect: &[post(b"hi")], closes: false, note: "OWS may be HTAB" },
    Case { name: "te_name_lowercase", rfc: "RFC 9110 §5.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n", expect: &[post(b"hi")], closes: false, note: "field names are case-insensitive" },
    Case { name: "te_trailing_comma", rfc: "RFC 9110 §5.6.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked ,\r\n\r\n2\r\nhi\r\n0\r\n\r\n", expect: &[post(b"hi")], closes: false, note: "empty list elements are ignored; h11 answers 501, but §5.6.1 says a recipient MUST accept empty elements" },
    Case { name: "te_chunked_then_identity_line", rfc: "RFC 9112 §6.3", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n", expect: &[Reject(400)], closes: true, note: "the combined list `chunked, identity` does not end in chunked: the length cannot be determined (§6.3 rule 4)" },
    Case { name: "te_empty_line_then_chunked", rfc: "RFC 9110 §5.3", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", expect: &[Reject(400)], closes: true, note: "an empty field line adds no list elements by the letter of §5.6.1, but a proxy that reads only the first line would see no body: refused as nginx and h11 do (smuggling-safe)" },
    Case { name: "te_chunked_twice_two_lines", rfc: "RFC 9112 §6.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n", expect: &[Reject(400)], closes: true, note: "lines combine case-insensitively into `chunked, Chunked`: chunked applied twice (§7)" },
    Case { name: "content_length_zero_then_request", rfc: "RFC 9112 §6.2", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\nGET /readyz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[post(b""), GET_READYZ], closes: false, note: "an empty body takes no bytes from the next request" },
    Case { name: "content_length_tabs_around", rfc: "RFC 9112 §5.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nContent-Length:\t2\t\r\n\r\nhi", expect: &[post(b"hi")], closes: false, note: "OWS may be HTAB" },
    Case { name: "content_length_on_get", rfc: "RFC 9112 §6.2", input: b"GET /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi", expect: &[Outcome::Request { method: "GET", path: "/healthz", body: b"hi" }], closes: false, note: "framing does not depend on the method: the body is read, not taken for the next request" },
    Case { name: "content_length_at_max_leading_zeros", rfc: "RFC 9110 §8.6", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 0016385\r\n\r\n", expect: &[Reject(413)], closes: true, note: "leading zeros do not hide a length over body_bytes_max" },
    Case { name: "content_length_list_and_line", rfc: "RFC 9110 §8.6", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nContent-Length: 2, 2\r\n\r\nhi", expect: &[Reject(400)], closes: true, note: "our choice: Content-Length must be one decimal on one line; a list form is refused even when all members agree (the §8.6 MAY)" },
    Case { name: "chunked_size_sixteen_hex_digits", rfc: "RFC 9112 §7.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0000000000000005\r\nhello\r\n0\r\n\r\n", expect: &[post(b"hello")], closes: false, note: "sixteen hex digits (the most a u64 holds) with leading zeros" },
    Case { name: "chunked_size_many_leading_zeros", rfc: "RFC 9112 §7.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n000000000000000000000005\r\nhello\r\n0\r\n\r\n", expect: &[post(b"hello")], closes: false, note: "leading zeros are not significant: 24 digits that still fit in a u64 value; h11 caps chunk-size at 20 digits, the RFC sets no cap (our size line is bounded at 1024 bytes)" },
    Case { name: "chunked_size_max_u64", rfc: "RFC 9112 §7.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nhello\r\n0\r\n\r\n", expect: &[Reject(413)], closes: true, note: "the largest size that parses is over body_bytes_max: 413 before any data" },
    Case { name: "chunked_size_mixed_case_hex", rfc: "RFC 9112 §7.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\naB\r\n012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890\r\n0\r\n\r\n", expect: &[post(b"012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890")], closes: false, note: "HEXDIG in either case, mixed: 0xaB = 171 bytes" },
    Case { name: "chunked_last_chunk_extension_and_trailers", rfc: "RFC 9112 §7.1.2", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0;last=\"yes\"\r\nX-T: 1\r\nX-U: 2\r\n\r\n", expect: &[post(b"hi")], closes: false, note: "the last chunk may carry extensions and trailers" },
    Case { name: "chunked_extensions_several", rfc: "RFC 9112 §7.1.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2;a=1;b;c=\"x;y\"\r\nhi\r\n0\r\n\r\n", expect: &[post(b"hi")], closes: false, note: "several extensions, one quoted with a `;` inside" },
    Case { name: "chunked_trailer_content_length", rfc: "RFC 9110 §6.5.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nContent-Length: 5\r\n\r\n", expect: &[post(b"hi")], closes: false, note: "framing fields in a trailer are not allowed to change framing (§6.5.1): it is discarded, the body stays as chunked" },
    Case { name: "chunked_trailer_transfer_encoding", rfc: "RFC 9110 §6.5.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n", expect: &[post(b"hi")], closes: false, note: "a framing field in a trailer is discarded (§6.5.1)" },
    Case { name: "chunked_trailer_connection_close", rfc: "RFC 9110 §6.5.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nConnection: close\r\n\r\n", expect: &[post(b"hi")], closes: false, note: "trailer fields are discarded, Connection included: only the head's Connection counts (§6.5.1: do not merge trailers into the header section)" },
    Case { name: "chunked_trailer_bare_lf", rfc: "RFC 9112 §7.1.2", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nX-T: 1\n\r\n", expect: &[Reject(400)], closes: true, note: "no LF leniency anywhere in a chunked body, trailers included: §2.2's MAY is taken for the head only, where no framing hangs on it" },
    Case { name: "chunked_last_chunk_bare_lf", rfc: "RFC 9112 §7.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\n\r\n", expect: &[Reject(400)], closes: true, note: "the last-chunk line ends in CRLF (no LF leniency in the body, as for chunked_size_bare_lf)" },
    Case { name: "chunked_final_bare_lf", rfc: "RFC 9112 §7.1", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\n", expect: &[Reject(400)], closes: true, note: "the final empty line ends in CRLF: a bare LF there is a body framing error (no LF leniency in the body)" },
    Case { name: "chunked_trailer_value_obs_text", rfc: "RFC 9110 §5.5", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nX-T: \xe9\xff\r\n\r\n", expect: &[post(b"hi")], closes: false, note: "trailer values allow obs-text like header values" },
    Case { name: "chunked_trailer_value_nul", rfc: "RFC 9110 §5.5", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nX-T: a\x00b\r\n\r\n", expect: &[Reject(400)], closes: true, note: "trailer values follow §5.5 like header values: NUL is refused" },
    Case { name: "chunked_total_at_max", rfc: "RFC 9110 §15.5.14", input: &CHUNKED_TOTAL_AT_MAX, expect: &[post(&BODY_AT_MAX)], closes: false, note: "one chunk of exactly body_bytes_max (0x4000) bytes" },
    Case { name: "expect_continue_then_pipelined", rfc: "RFC 9112 §9.3.2", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhelloGET /readyz HTTP/1.1\r\nHost: h\r\n\r\n", expect: &[Outcome::Continue, post(b"hello"), GET_READYZ], closes: false, note: "after the 100 and the body, the next request is read as usual" },
    Case { name: "expect_continue_then_bad_request", rfc: "RFC 9112 §9.3.2", input: b"POST /healthz HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhiGET /readyz HTTP/1.1\r\n\r\n", expect: &[Outcome::Continue, post(b"hi"), Reject(400)], closes: true, note: "the pipelined request after the body lacks Host" },
    Case { name: "host_ipv6_port_80", rfc: "RFC 9110 §7.2", input: b"GET /healthz HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "IP-literal with a port" },
    Case { name: "host_ipv6_without_port", rfc: "RFC 9110 §7.2", input: b"GET /healthz HTTP/1.1\r\nHost: [2001:db8::1]\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "IP-literal without a port" },
    Case { name: "host_port_out_of_range", rfc: "RFC 9110 §7.2", input: b"GET /healthz HTTP/1.1\r\nHost: h:65536\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "port is *DIGIT (RFC 3986 §3.2.3): 65536 is syntactically valid; only more than five digits are refused (host_long_port)" },
    Case { name: "host_empty_port", rfc: "RFC 9110 §7.2", input: b"GET /healthz HTTP/1.1\r\nHost: h:\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "port is *DIGIT, so an empty port is valid (RFC 3986 §3.2.3)" },
    Case { name: "host_userinfo_with_password", rfc: "RFC 9110 §7.2", input: b"GET /healthz HTTP/1.1\r\nHost: user:pw@h\r\n\r\n", expect: &[Reject(400)], closes: true, note: "Host is uri-host [ \":\" port ]: no userinfo" },
    Case { name: "host_trailing_dot", rfc: "RFC 9110 §7.2", input: b"GET /healthz HTTP/1.1\r\nHost: h.example.\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "a fully qualified name" },
    Case { name: "host_tabs_around", rfc: "RFC 9112 §5.1", input: b"GET /healthz HTTP/1.1\r\nHost:\th\t\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "OWS around the value is not part of it" },
    Case { name: "host_comma", rfc: "RFC 9110 §7.2", input: b"GET /healthz HTTP/1.1\r\nHost: h, x\r\n\r\n", expect: &[Reject(400)], closes: true, note: "a Host list (as two Hosts joined by a proxy) is not a valid uri-host" },
    Case { name: "host_port_zero", rfc: "RFC 9110 §7.2", input: b"GET /healthz HTTP/1.1\r\nHost: h:0\r\n\r\n", expect: &[GET_HEALTHZ], closes: false, note: "port 0 is syntactically valid; Host is not used for routing" },
];

#[cfg(test)]
pub(crate) mod harness {
    //! Feeds bytes to a parser the way a connection does, and records what
    //! comes out.

    use super::Outcome;
    use crate::{Limits, Parse, RequestParser};

    /// An [`Outcome`] with owned data, for comparing runs.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum Seen {
        Request { method: String, path: String, body: Vec<u8> },
        Continue,
        Reject(u16),
    }

    impl From<&Outcome> for Seen {
        fn from(outcome: &Outcome) -> Seen {
            match *outcome {
                Outcome::Request { method, path, body } => {
                    Seen::Request { method: method.to_owned(), path: path.to_owned(), body: body.to_vec() }
                }
                Outcome::Continue => Seen::Continue,
                Outcome::Reject(status) => Seen::Reject(status),
            }
        }
    }

    /// What a connection fed `input` in pieces ending at `cuts` (then the
    /// rest) saw, and whether it was closed.
    pub fn run(input: &[u8], cuts: impl IntoIterator<Item = usize>) -> (Vec<Seen>, bool) {
        let mut parser = RequestParser::new(Limits::default());
        let mut buf = Vec::new();
        let mut seen = Vec::new();
        let mut fed = 0;
        for cut in cuts.into_iter().chain([input.len()]) {
            let cut = cut.clamp(fed, input.len());
            buf.extend_from_slice(&input[fed..cut]);
            fed = cut;
            loop {
                match parser.parse(&buf) {
                    Parse::Complete(request) => {
                        seen.push(Seen::Request {
                            method: request.method_token.to_owned(),
                            path: request.path.to_owned(),
                            body: request.body.to_vec(),
                        });
                        let (used, keep_alive) = (request.wire_len(), request.keep_alive());
                        assert!(used <= buf.len(), "wire_len past the buffer");
                        buf.drain(..used);
                        if !keep_alive {
                            return (seen, true);
                        }
                    }
                    Parse::Partial { send_continue } => {
                        if send_continue {
                            seen.push(Seen::Continue);
                        }
                        break;
                    }
                    Parse::Error(error) => {
                        seen.push(Seen::Reject(error.status().0));
                        return (seen, true);
                    }
                }
            }
        }
        (seen, false)
    }

    pub fn without_continue(seen: &[Seen]) -> Vec<Seen> {
        seen.iter().filter(|s| **s != Seen::Continue).cloned().collect()
    }

    /// A small deterministic generator (xorshift64*), so failures replay.
    pub struct Rng(pub u64);

    impl Rng {
        pub fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n.max(1)
        }
    }

    /// Random cut points, sorted.
    pub fn random_cuts(rng: &mut Rng, len: usize) -> Vec<usize> {
        let count = rng.below(8) + 1;
        let mut cuts: Vec<usize> = (0..count).map(|_| rng.below(len + 1)).collect();
        cuts.sort_unstable();
        cuts
    }
}

#[cfg(test)]
mod tests {
    use super::harness::{Rng, Seen, random_cuts, run, without_continue};
    use super::*;

    /// Runs one case whole, byte by byte, cut in two at every boundary
    /// (for inputs up to 2 KiB) and in random splits. Byte by byte the
    /// head always arrives before the body, so the `Continue`s must be
    /// exactly as listed; in other splits they depend on where the cut
    /// falls, so the comparison leaves them out.
    fn check(case: &Case) {
        let expected: Vec<Seen> = case.expect.iter().map(Seen::from).collect();
        let expected = (expected.clone(), case.closes);
        let name = case.name;

        let bytewise = run(case.input, 1..case.input.len());
        assert_eq!(bytewise, expected, "{name}: byte by byte");

        let loose = (without_continue(&expected.0), expected.1);
        let whole = run(case.input, []);
        assert_eq!((without_continue(&whole.0), whole.1), loose, "{name}: whole");
        if case.input.len() <= 2048 {
            for cut in 0..=case.input.len() {
                let split = run(case.input, [cut]);
                assert_eq!((without_continue(&split.0), split.1), loose, "{name}: cut at {cut}");
            }
        }
        let mut rng = Rng(0x5ec_0411 ^ case.input.len() as u64);
        for _ in 0..20 {
            let cuts = random_cuts(&mut rng, case.input.len());
            let split = run(case.input, cuts.iter().copied());
            assert_eq!((without_continue(&split.0), split.1), loose, "{name}: cuts {cuts:?}");
        }
    }

    #[test]
    fn every_case() {
        let failed: Vec<&str> = CASES
            .iter()
            .filter(|case| std::panic::catch_unwind(|| check(case)).is_err())
            .map(|case| case.name)
            .collect();
        assert!(failed.is_empty(), "{} failing cases: {failed:?}", failed.len());
    }

    #[test]
    fn the_table_is_well_formed() {
        assert!(CASES.len() >= 250, "{} cases", CASES.len());
        let mut names: Vec<&str> = CASES.iter().map(|c| c.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "duplicate case names");
        for case in CASES {
            assert!(case.rfc.starts_with("RFC 9112 §") || case.rfc.starts_with("RFC 9110 §"), "{}", case.name);
            assert!(!case.expect.is_empty() && !case.note.is_empty(), "{}", case.name);
            if case.expect.iter().any(|o| matches!(o, Outcome::Reject(_))) {
                assert!(case.closes && matches!(case.expect.last(), Some(Outcome::Reject(_))), "{}", case.name);
            }
        }
    }

    /// Whole, the body of an `Expect: 100-continue` request is already
    /// there: no 100 is sent (RFC 9110 §10.1.1 lets the server omit it).
    /// Cut where a live runner pauses, the 100 comes.
    #[test]
    fn continue_depends_on_the_body_being_there() {
        let with_continue: Vec<&Case> = CASES.iter().filter(|c| c.continue_split().is_some()).collect();
        assert_eq!(with_continue.len(), 5);
        for case in with_continue {
            assert!(!run(case.input, []).0.contains(&Seen::Continue), "{}", case.name);
            let expected: Vec<Seen> = case.expect.iter().map(Seen::from).collect();
            assert_eq!(run(case.input, case.continue_split()).0, expected, "{}", case.name);
        }
    }
}

#[cfg(test)]
mod proptests {
    use super::harness::{run, without_continue};
    use proptest::prelude::*;

    /// Pieces that make request-like bytes, so that random inputs reach
    /// deep into the parser rather than failing on the first byte.
    const FRAGMENTS: &[&[u8]] = &[
        b"GET /healthz HTTP/1.1\r\n",
        b"POST /healthz HTTP/1.1\r\n",
        b"GET http://h/x?y HTTP/1.0\r\n",
        b"Host: h\r\n",
        b"Content-Length: 5\r\n",
        b"Content-Length: 0\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: gzip\r\n",
        b"Expect: 100-continue\r\n",
        b"Connection: close\r\n",
        b"Connection: keep-alive\r\n",
        b"\r\n",
        b"\n",
        b"\r",
        b" ",
        b"hello",
        b"5\r\n",
        b"0\r\n\r\n",
        b"3;x=\"y\"\r\n",
        b"X-T: 1\r\n",
        b":",
        b"\0",
    ];

    fn request_like() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            4 => proptest::sample::select(FRAGMENTS).prop_map(<[u8]>::to_vec),
            1 => proptest::collection::vec(any::<u8>(), 0..4),
        ];
        proptest::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// The same bytes in any split give the same requests and errors.
        #[test]
        fn splits_agree(input in request_like(), cuts in proptest::collection::vec(any::<usize>(), 0..10)) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (input.len() + 1)).collect();
            cuts.sort_unstable();
            let whole = run(&input, []);
            let split = run(&input, cuts);
            prop_assert_eq!(without_continue(&whole.0), without_continue(&split.0));
            prop_assert_eq!(whole.1, split.1);
        }
    }
}
