//! Sans-I/O framing of HTTP/1.1 responses, fed whatever bytes a read returned.
//!
//! The head is parsed with `httparse::Response` once it is complete in the
//! buffer; bodies (Content-Length, chunked, or until close) are skipped as they
//! stream past, so a large body never needs a large buffer. The caller keeps
//! unconsumed bytes and calls again after the next read.

/// A head longer than this is refused: no server under test should send one,
/// and the read buffer must hold a whole head.
pub const HEAD_BYTES_MAX: usize = 8 * 1024;
/// Header slots on the stack; a response with more is malformed for our purposes.
const HEADERS_MAX: usize = 32;
/// Longest chunk-size or trailer line accepted.
const LINE_BYTES_MAX: usize = 1024;

/// A complete response, body included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// The server announced `Connection: close` (or spoke HTTP/1.0 without keep-alive).
    pub close: bool,
    /// The head carried a `Retry-After` header (the contract requires one on
    /// every 429 and 503: the overload run counts those without).
    pub retry_after: bool,
}

/// What one call to [`ResponseParser::parse`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing more can be done with these bytes: read more.
    NeedMore,
    /// `n` bytes consumed; the response is not complete yet.
    Consumed(usize),
    /// `consumed` bytes consumed and a response completed.
    Complete { consumed: usize, response: Response },
}

/// Every way the bytes from the server can fail to frame a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    Head(httparse::Error),
    HeadTooLarge,
    BadContentLength,
    BadChunk,
    /// Bytes arrived before any request was sent for them.
    Unsolicited,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::Head(e) => write!(f, "malformed response head: {e}"),
            ParseError::HeadTooLarge => write!(f, "response head over {HEAD_BYTES_MAX} bytes"),
            ParseError::BadContentLength => f.write_str("invalid Content-Length"),
            ParseError::BadChunk => f.write_str("invalid chunked body"),
            ParseError::Unsolicited => f.write_str("response bytes with no request outstanding"),
        }
    }
}

impl std::error::Error for ParseError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Body {
        remaining: u64,
    },
    ChunkSize,
    ChunkData {
        remaining: u64,
    },
    ChunkDataEnd,
    Trailers,
    /// No framing: the body ends when the server closes the connection.
    UntilClose,
}

/// Per-connection response framing state.
#[derive(Debug)]
pub struct ResponseParser {
    state: State,
    pending: Response,
}

impl Default for ResponseParser {
    fn default() -> Self {
        ResponseParser { state: State::Head, pending: Response { status: 0, close: false, retry_after: false } }
    }
}

impl ResponseParser {
    /// Advances over `buf`. `bodyless` is true when the request was `HEAD`,
    /// whose response carries framing headers but no body.
    pub fn parse(&mut self, buf: &[u8], bodyless: bool) -> Result<Step, ParseError> {
        match self.state {
            State::Head => self.parse_head(buf, bodyless),
            State::Body { remaining } => {
                let n = remaining.min(buf.len() as u64);
                if n == remaining {
                    return Ok(self.complete(n as usize));
                }
                self.state = State::Body { remaining: remaining - n };
                Ok(consumed(n as usize))
            }
            State::ChunkSize => {
                let Some(line) = line(buf)? else { return Ok(Step::NeedMore) };
                let size = parse_chunk_size(&buf[..line])?;
                self.state = if size == 0 { State::Trailers } else { State::ChunkData { remaining: size } };
                Ok(Step::Consumed(line + 2))
            }
            State::ChunkData { remaining } => {
                let n = remaining.min(buf.len() as u64);
                self.state =
                    if n == remaining { State::ChunkDataEnd } else { State::ChunkData { remaining: remaining - n } };
                Ok(consumed(n as usize))
            }
            State::ChunkDataEnd => match buf {
                [b'\r', b'\n', ..] => {
                    self.state = State::ChunkSize;
                    Ok(Step::Consumed(2))
                }
                [] | [b'\r'] => Ok(Step::NeedMore),
                _ => Err(ParseError::BadChunk),
            },
            State::Trailers => {
                let Some(line) = line(buf)? else { return Ok(Step::NeedMore) };
                if line == 0 {
                    return Ok(self.complete(2));
                }
                Ok(Step::Consumed(line + 2))
            }
            State::UntilClose => Ok(consumed(buf.len())),
        }
    }

    /// The server closed the connection: completes a body framed by the close.
    pub fn finish_at_eof(&mut self) -> Option<Response> {
        if self.state != State::UntilClose {
            return None;
        }
        self.state = State::Head;
        Some(self.pending)
    }

    /// True between responses: no byte of a response has been consumed.
    pub fn is_idle(&self) -> bool {
        self.state == State::Head
    }

    fn parse_head(&mut self, buf: &[u8], bodyless: bool) -> Result<Step, ParseError> {
        let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
        let mut head = httparse::Response::new(&mut headers);
        // httparse starts again from the first byte on every call; heads are
        // capped at HEAD_BYTES_MAX, so the rescans stay cheap.
        let len = match head.parse(buf).map_err(ParseError::Head)? {
            httparse::Status::Complete(len) => len,
            httparse::Status::Partial if buf.len() >= HEAD_BYTES_MAX => {
                return Err(ParseError::HeadTooLarge);
            }
            httparse::Status::Partial => return Ok(Step::NeedMore),
        };
        // httparse guarantees a code and a version once the head is complete.
        let status = head.code.unwrap_or(0);
        let framing = Framing::of(head.headers, head.version == Some(0))?;
        if (100..200).contains(&status) {
            // An interim response (100 Continue): the real one follows.
            return Ok(Step::Consumed(len));
        }
        self.pending = Response { status, close: framing.close, retry_after: framing.retry_after };
        let no_body = bodyless || status == 204 || status == 304;
        self.state = match framing.body {
            _ if no_body => return Ok(self.complete(len)),
            Body::Chunked => State::ChunkSize,
            Body::Length(0) => return Ok(self.complete(len)),
            Body::Length(n) => State::Body { remaining: n },
            Body::UntilClose => {
                self.pending.close = true;
                State::UntilClose
            }
        };
        Ok(Step::Consumed(len))
    }

    fn complete(&mut self, consumed: usize) -> Step {
        self.state = State::Head;
        Step::Complete { consumed, response: self.pending }
    }
}

fn consumed(n: usize) -> Step {
    if n == 0 { Step::NeedMore } else { Step::Consumed(n) }
}

/// The length of the line at the start of `buf`, without its CRLF, once the CRLF is in.
fn line(buf: &[u8]) -> Result<Option<usize>, ParseError> {
    let window = &buf[..buf.len().min(LINE_BYTES_MAX + 2)];
    match window.windows(2).position(|w| w == b"\r\n") {
        Some(n) => Ok(Some(n)),
        None if window.len() == LINE_BYTES_MAX + 2 => Err(ParseError::BadChunk),
        None => Ok(None),
    }
}

fn parse_chunk_size(line: &[u8]) -> Result<u64, ParseError> {
    // Chunk extensions (`;name=value`) are allowed and ignored.
    let digits = line.split(|&b| b == b';').next().unwrap_or(line);
    let digits = digits.trim_ascii();
    if digits.is_empty() || digits.len() > 15 {
        return Err(ParseError::BadChunk);
    }
    digits.iter().try_fold(0u64, |acc, &b| {
        let digit = (b as char).to_digit(16).ok_or(ParseError::BadChunk)?;
        Ok(acc * 16 + u64::from(digit))
    })
}

enum Body {
    Length(u64),
    Chunked,
    UntilClose,
}

struct Framing {
    body: Body,
    close: bool,
    retry_after: bool,
}

impl Framing {
    fn of(headers: &[httparse::Header<'_>], http10: bool) -> Result<Framing, ParseError> {
        let mut length: Option<u64> = None;
        let mut chunked = false;
        let mut close = http10;
        let mut retry_after = false;
        for h in headers {
            if h.name.eq_ignore_ascii_case("content-length") {
                let n = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .ok_or(ParseError::BadContentLength)?;
                if length.is_some_and(|m| m != n) {
                    return Err(ParseError::BadContentLength);
                }
                length = Some(n);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                // Chunked must be the last coding; anything else is close-delimited.
                chunked = h.value.trim_ascii().to_ascii_lowercase().ends_with(b"chunked");
            } else if h.name.eq_ignore_ascii_case("connection") {
                let value = h.value.to_ascii_lowercase();
                if value.windows(5).any(|w| w == b"close") {
                    close = true;
                } else if value.windows(10).any(|w| w == b"keep-alive") {
                    close = false;
                }
            } else if h.name.eq_ignore_ascii_case("retry-after") {
                retry_after = !h.value.trim_ascii().is_empty();
            }
        }
        // Transfer-Encoding overrides Content-Length (RFC 9112 §6.3).
        let body = match (chunked, length) {
            (true, _) => Body::Chunked,
            (false, Some(n)) => Body::Length(n),
            (false, None) => Body::UntilClose,
        };
        Ok(Framing { body, close, retry_after })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `pieces` one after another, keeping unconsumed bytes as a real
    /// connection does, and returns the responses completed plus leftovers.
    fn feed(pieces: &[&[u8]], bodyless: bool) -> Result<(Vec<Response>, usize), ParseError> {
        let mut parser = ResponseParser::default();
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for piece in pieces {
            buf.extend_from_slice(piece);
            let mut pos = 0;
            loop {
                match parser.parse(&buf[pos..], bodyless)? {
                    Step::NeedMore => break,
                    Step::Consumed(n) => pos += n,
                    Step::Complete { consumed, response } => {
                        pos += consumed;
                        out.push(response);
                    }
                }
            }
            buf.drain(..pos);
        }
        out.extend(parser.finish_at_eof());
        Ok((out, buf.len()))
    }

    /// The bytes must give `expected` however they are split: whole, at every
    /// single split point, and one byte at a time.
    fn check(input: &str, bodyless: bool, expected: &[(u16, bool)]) {
        let input = input.as_bytes();
        let expected: Vec<Response> =
            expected.iter().map(|&(status, close)| Response { status, close, retry_after: false }).collect();
        let mut splits: Vec<Vec<&[u8]>> = vec![vec![input]];
        for i in 1..input.len() {
            splits.push(vec![&input[..i], &input[i..]]);
        }
        splits.push(input.chunks(1).collect());
        for pieces in splits {
            let (got, left) = feed(&pieces, bodyless).expect("parses");
            assert_eq!(got, expected, "split {:?}", pieces.iter().map(|p| p.len()).collect::<Vec<_>>());
            assert_eq!(left, 0, "all bytes consumed");
        }
    }

    #[test]
    fn content_length() {
        check("HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n{\"status\":\"ok\"}", false, &[(200, false)]);
        check("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n", false, &[(404, false)]);
    }

    #[test]
    fn retry_after_is_noticed() {
        let shed = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n";
        let bare = "HTTP/1.1 429 Too Many Requests\r\nretry-after:  \r\nContent-Length: 0\r\n\r\n";
        let (got, _) = feed(&[format!("{shed}{bare}").as_bytes()], false).expect("parses");
        assert_eq!(got.iter().map(|r| (r.status, r.retry_after)).collect::<Vec<_>>(), vec![(503, true), (429, false)]);
    }

    #[test]
    fn pipelined_responses_in_one_buffer() {
        let one = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let two = "HTTP/1.1 503 Busy\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy";
        check(&format!("{one}{one}{two}"), false, &[(200, false), (200, false), (503, true)]);
    }

    #[test]
    fn chunked_with_extensions_and_trailers() {
        let body = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                    5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: t\r\n\r\n";
        check(body, false, &[(200, false)]);
        let then = "HTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx";
        check(&format!("{body}{then}"), false, &[(200, false), (201, false)]);
        check("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false, &[(200, false)]);
    }

    #[test]
    fn transfer_encoding_wins_over_content_length() {
        let r = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
        check(r, false, &[(200, false)]);
    }

    #[test]
    fn bodyless_responses() {
        check("HTTP/1.1 204 No Content\r\n\r\n", false, &[(204, false)]);
        check("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", false, &[(304, false)]);
        check("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true, &[(200, false)]);
    }

    #[test]
    fn interim_responses_are_skipped() {
        check("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, &[(200, false)]);
    }

    #[test]
    fn close_delimited_and_http10() {
        check("HTTP/1.1 200 OK\r\n\r\nuntil the end", false, &[(200, true)]);
        check("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false, &[(200, true)]);
        check("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", false, &[(200, false)]);
    }

    #[test]
    fn malformed_responses_are_errors() {
        let bad = |s: &str| feed(&[s.as_bytes()], false).unwrap_err();
        assert!(matches!(bad("HTTX/1.1 200 OK\r\n\r\n"), ParseError::Head(_)));
        assert_eq!(bad("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"), ParseError::BadContentLength);
        assert_eq!(
            bad("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            ParseError::BadContentLength
        );
        assert_eq!(bad("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"), ParseError::BadChunk);
        assert_eq!(bad("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc"), ParseError::BadChunk);
        let huge = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(HEAD_BYTES_MAX));
        assert_eq!(bad(&huge), ParseError::HeadTooLarge);
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(parse_chunk_size(b"ff"), Ok(255));
        assert_eq!(parse_chunk_size(b"0 ; x=y"), Ok(0));
        assert_eq!(parse_chunk_size(b""), Err(ParseError::BadChunk));
        assert_eq!(parse_chunk_size(b"1g"), Err(ParseError::BadChunk));
        assert_eq!(parse_chunk_size(b"1234567890abcdef"), Err(ParseError::BadChunk));
    }
}
