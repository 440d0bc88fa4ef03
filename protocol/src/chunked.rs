//! Incremental decoding of `Transfer-Encoding: chunked` bodies (RFC 9112 §7.1):
//! chunk sizes in hex without sign or overflow, extensions skipped but
//! validated, trailers parsed and discarded, every line ended by CRLF.
//!
//! The decoder is a byte-at-a-time state machine for the framing lines and a
//! bulk copy for chunk data, so it can stop at any byte and resume when more
//! arrives without looking at a byte twice. Unlike the head, whose lines may
//! end in a bare LF (RFC 9112 §2.2 allows that for the start line and fields
//! only), every line here must end in CRLF: lenient chunk parsing is where
//! request smuggling between a proxy and a server lives.

use crate::HttpError;
use crate::error::BadRequest;

/// The longest chunk-size line accepted, extensions included. Extensions
/// carry nothing we use; the bound stops a client from streaming them forever.
pub const CHUNK_LINE_BYTES_MAX: usize = 1024;

/// Where the decoder is in the chunked grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// `chunk-size`: hex digits.
    Size,
    /// Whitespace after the size: only `BWS ";"` may follow.
    SizeSpace,
    /// After `;`: whitespace, then an extension name.
    ExtBeforeName,
    ExtName,
    /// Whitespace after a name: `=`, `;` or the end of the line may follow.
    ExtAfterName,
    /// After `=`: whitespace, then a token or a quoted string.
    ExtBeforeValue,
    ExtToken,
    ExtQuoted,
    /// After a backslash inside a quoted string.
    ExtQuotedPair,
    /// After a value: whitespace, `;` or the end of the line.
    ExtAfterValue,
    /// The CR of the size line was seen: LF must follow.
    SizeLf,
    /// Inside chunk data.
    Data,
    /// Chunk data done: CR must follow.
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final blank line).
    TrailerLineStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    /// The CR of the final blank line was seen: LF must follow.
    EndLf,
    Done,
}

/// The decoding state of one chunked body. Reset per request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChunkedDecoder {
    state: State,
    /// The chunk size being read, then the data bytes still expected.
    size: u64,
    /// Bytes of the current size line (extensions included).
    line_bytes: usize,
    /// Bytes of the trailer section so far.
    trailer_bytes: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder { state: State::Size, size: 0, line_bytes: 0, trailer_bytes: 0 }
    }
}

/// What the decoder needs besides its state: the `[http]` limits it enforces.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChunkLimits {
    pub body_bytes_max: usize,
    /// The trailer section is a second head: it gets the head's limit (→ 431).
    pub trailer_bytes_max: usize,
}

impl ChunkedDecoder {
    /// Decodes from `input[*pos..]`, appending chunk data to `out`, and
    /// advances `*pos` over what it consumed. `Ok(true)` when the body is
    /// complete (`*pos` is then just past the final CRLF), `Ok(false)` when
    /// more input is needed.
    pub(crate) fn decode(
        &mut self,
        input: &[u8],
        pos: &mut usize,
        out: &mut Vec<u8>,
        limits: ChunkLimits,
    ) -> Result<bool, HttpError> {
        while *pos < input.len() {
            if self.state == State::Data {
                // `size` was checked against body_bytes_max, so it fits a usize.
                let n = (input.len() - *pos).min(self.size as usize);
                out.extend_from_slice(&input[*pos..*pos + n]);
                *pos += n;
                self.size -= n as u64;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let byte = input[*pos];
            *pos += 1;
            self.step(byte, out.len(), limits)?;
            if self.state == State::Done {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// One byte of a framing line.
    fn step(&mut self, byte: u8, decoded_len: usize, limits: ChunkLimits) -> Result<(), HttpError> {
        use State::*;
        let bad = |reason| Err(HttpError::BadRequest(reason));
        if matches!(self.state, Size | SizeSpace | ExtBeforeName | ExtName | ExtAfterName)
            || matches!(self.state, ExtBeforeValue | ExtToken | ExtQuoted | ExtQuotedPair | ExtAfterValue)
        {
            self.line_bytes += 1;
            if self.line_bytes > CHUNK_LINE_BYTES_MAX {
                return bad(BadRequest::ChunkExtension);
            }
        }
        if matches!(self.state, TrailerLineStart | TrailerName | TrailerValue | TrailerLf | EndLf) {
            self.trailer_bytes += 1;
            if self.trailer_bytes > limits.trailer_bytes_max {
                return Err(HttpError::HeadTooLarge);
            }
        }
        self.state = match (self.state, byte) {
            (Size, _) if byte.is_ascii_hexdigit() => {
                // Overflow-safe: a size that does not fit 64 bits is malformed
                // (RFC 9112 §7.1 asks recipients to guard against exactly this).
                // `to_digit` cannot fail on an ASCII hex digit; 0 is never used.
                let digit = u64::from((byte as char).to_digit(16).unwrap_or(0));
                self.size = match self.size.checked_mul(16).and_then(|s| s.checked_add(digit)) {
                    Some(size) => size,
                    None => return bad(BadRequest::ChunkSize),
                };
                Size
            }
            // `line_bytes == 1`: the first byte of the line is not a digit.
            (Size, _) if self.line_bytes == 1 => return bad(BadRequest::ChunkSize),
            (Size, _) => {
                self.check_size(decoded_len, limits)?;
                match byte {
                    b' ' | b'\t' => SizeSpace,
                    b';' => ExtBeforeName,
                    b'\r' => SizeLf,
                    _ => return bad(BadRequest::ChunkSize),
                }
            }
            (SizeSpace, b' ' | b'\t') => SizeSpace,
            (SizeSpace, b';') => ExtBeforeName,
            (SizeSpace, _) => return bad(BadRequest::ChunkSize),
            (ExtBeforeName, b' ' | b'\t') => ExtBeforeName,
            (ExtBeforeName | ExtName, _) if is_tchar(byte) => ExtName,
            (ExtName | ExtAfterName, b' ' | b'\t') => ExtAfterName,
            (ExtName | ExtAfterName, b'=') => ExtBeforeValue,
            (ExtName | ExtAfterName | ExtToken | ExtAfterValue, b';') => ExtBeforeName,
            (ExtName | ExtAfterName | ExtToken | ExtAfterValue, b'\r') => SizeLf,
            (ExtBeforeValue, b' ' | b'\t') => ExtBeforeValue,
            (ExtBeforeValue, b'"') => ExtQuoted,
            (ExtBeforeValue | ExtToken, _) if is_tchar(byte) => ExtToken,
            (ExtToken | ExtAfterValue, b' ' | b'\t') => ExtAfterValue,
            (ExtQuoted, b'"') => ExtAfterValue,
            (ExtQuoted, b'\\') => ExtQuotedPair,
            (ExtQuoted | ExtQuotedPair, _) if is_quoted_text(byte) => ExtQuoted,
            (ExtBeforeName | ExtName | ExtAfterName | ExtBeforeValue, _) => return bad(BadRequest::ChunkExtension),
            (ExtToken | ExtQuoted | ExtQuotedPair | ExtAfterValue, _) => return bad(BadRequest::ChunkExtension),
            (SizeLf, b'\n') => {
                self.line_bytes = 0;
                if self.size == 0 { TrailerLineStart } else { Data }
            }
            (SizeLf, _) => return bad(BadRequest::ChunkSize),
            (DataCr, b'\r') => DataLf,
            (DataLf, b'\n') => Size,
            (DataCr | DataLf, _) => return bad(BadRequest::ChunkTerminator),
            (TrailerLineStart, b'\r') => EndLf,
            (TrailerLineStart | TrailerName, _) if is_tchar(byte) => TrailerName,
            (TrailerName, b':') => TrailerValue,
            (TrailerValue, b'\r') => TrailerLf,
            (TrailerValue, _) if is_field_text(byte) => TrailerValue,
            (TrailerLf, b'\n') => TrailerLineStart,
            (EndLf, b'\n') => Done,
            (TrailerLineStart | TrailerName | TrailerValue | TrailerLf | EndLf, _) => return bad(BadRequest::Trailer),
            // `decode` handles Data in bulk and stops at Done.
            (Data | Done, _) => self.state,
        };
        Ok(())
    }

    /// A chunk announcing more than the body may still hold is refused
    /// before its data arrives.
    fn check_size(&self, decoded_len: usize, limits: ChunkLimits) -> Result<(), HttpError> {
        let room = limits.body_bytes_max.saturating_sub(decoded_len) as u64;
        if self.size > room { Err(HttpError::BodyTooLarge) } else { Ok(()) }
    }
}

/// `tchar` of RFC 9110 §5.6.2.
pub(crate) fn is_tchar(byte: u8) -> bool {
    TCHAR[usize::from(byte)]
}

/// A byte table: `ALPHA / DIGIT` plus `extra`, built at compile time so
/// that checking a byte is one load.
pub(crate) const fn alphanumeric_and(extra: &[u8]) -> [bool; 256] {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        table[extra[i] as usize] = true;
        i += 1;
    }
    table
}

static TCHAR: [bool; 256] = alphanumeric_and(b"!#$%&'*+-.^_`|~");

/// `qdtext` and the escaped byte of a `quoted-pair` (RFC 9110 §5.6.4):
/// HTAB, SP, visible ASCII, obs-text — never a control byte.
fn is_quoted_text(byte: u8) -> bool {
    byte == b'\t' || byte == b' ' || (0x21..=0x7e).contains(&byte) || byte >= 0x80
}

/// A byte of a field value (RFC 9110 §5.5): the same set as quoted text.
fn is_field_text(byte: u8) -> bool {
    is_quoted_text(byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ChunkLimits = ChunkLimits { body_bytes_max: 64, trailer_bytes_max: 64 };

    /// Decodes `input` whole and byte by byte; both must agree.
    fn check(input: &[u8], expected: Result<(&[u8], usize), HttpError>) {
        let whole = decode_in_steps(input, input.len().max(1));
        let bytewise = decode_in_steps(input, 1);
        assert_eq!(whole, bytewise, "split disagreement for {:?}", String::from_utf8_lossy(input));
        let expected = expected.map(|(body, end)| (body.to_vec(), end));
        assert_eq!(whole, expected, "for {:?}", String::from_utf8_lossy(input));
    }

    fn decode_in_steps(input: &[u8], step: usize) -> Result<(Vec<u8>, usize), HttpError> {
        let mut decoder = ChunkedDecoder::default();
        let (mut pos, mut out) = (0, Vec::new());
        let mut available = 0;
        while available < input.len() {
            available = (available + step).min(input.len());
            if decoder.decode(&input[..available], &mut pos, &mut out, LIMITS)? {
                return Ok((out, pos));
            }
        }
        Err(HttpError::HeadTimeout) // stands for "incomplete" in these tests
    }

    #[test]
    fn framing() {
        let incomplete = Err(HttpError::HeadTimeout);
        check(b"0\r\n\r\n", Ok((b"", 5)));
        check(b"5\r\nhello\r\n0\r\n\r\nNEXT", Ok((b"hello", 15)));
        check(b"A\r\n0123456789\r\n0\r\n\r\n", Ok((b"0123456789", 20)));
        check(b"005;a=b;c=\"q\\\"x\" \r\nhello\r\n000\r\nX-T: 1\r\n\r\n", Ok((b"hello", 41)));
        check(b"5\r\nhel", incomplete);
        check(b"5\r\nhelloX\r\n", Err(HttpError::BadRequest(BadRequest::ChunkTerminator)));
        check(b"5\nhello\r\n", Err(HttpError::BadRequest(BadRequest::ChunkSize)));
        check(b"\r\n", Err(HttpError::BadRequest(BadRequest::ChunkSize)));
        check(b"x\r\n", Err(HttpError::BadRequest(BadRequest::ChunkSize)));
        check(b"5 \r\nhello\r\n", Err(HttpError::BadRequest(BadRequest::ChunkSize)));
        check(b"5;\r\nhello\r\n", Err(HttpError::BadRequest(BadRequest::ChunkExtension)));
        check(b"5;a=\"x\r\n", Err(HttpError::BadRequest(BadRequest::ChunkExtension)));
        check(b"41\r\n", Err(HttpError::BodyTooLarge));
        check(b"10000000000000000\r\n", Err(HttpError::BadRequest(BadRequest::ChunkSize)));
        check(b"0\r\nbad trailer\r\n\r\n", Err(HttpError::BadRequest(BadRequest::Trailer)));
        check(b"0\r\n\rX", Err(HttpError::BadRequest(BadRequest::Trailer)));
    }

    #[test]
    fn limits() {
        let mut line = b"1;".to_vec();
        line.extend(std::iter::repeat_n(b'a', CHUNK_LINE_BYTES_MAX));
        check(&line, Err(HttpError::BadRequest(BadRequest::ChunkExtension)));
        let mut trailer = b"0\r\nX:".to_vec();
        trailer.extend(std::iter::repeat_n(b'a', 64));
        check(&trailer, Err(HttpError::HeadTooLarge));
        // 64 bytes in two chunks fit; one more byte does not.
        check(
            b"20\r\n01234567890123456789012345678901\r\n20\r\n01234567890123456789012345678901\r\n0\r\n\r\n",
            Ok((b"0123456789012345678901234567890101234567890123456789012345678901", 81)),
        );
        check(b"20\r\n01234567890123456789012345678901\r\n21\r\n", Err(HttpError::BodyTooLarge));
    }
}
