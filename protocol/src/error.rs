//! Every way the protocol layer refuses a request, and the single place
//! where each maps to a status code. A refused request always closes the
//! connection after its response: once framing is in doubt, nothing that
//! follows on the same connection can be trusted.

use crate::response::Status;

/// Why the request could not be accepted. `Copy` and allocation-free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// Malformed syntax or framing (400). The reason is for logs and the body.
    BadRequest(BadRequest),
    /// The head did not arrive within `head_timeout_ms` (408). Raised by the reactor.
    HeadTimeout,
    /// The body exceeds `body_bytes_max` (413).
    BodyTooLarge,
    /// The request-target exceeds `uri_bytes_max` (414).
    UriTooLong,
    /// The head exceeds `head_bytes_max` or `header_count_max` (431).
    HeadTooLarge,
    /// A transfer coding other than `chunked` (501).
    UnsupportedTransferCoding,
    /// An HTTP major version other than 1 (505).
    VersionNotSupported,
}

/// The reasons behind a 400, so that logs and tests can tell them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadRequest {
    /// Missing parts, extra spaces, or an HTTP/0.9-style line.
    RequestLine,
    Method,
    Target,
    Version,
    HeaderName,
    HeaderValue,
    /// A line ended by a bare CR, or a NUL, or another forbidden control byte.
    LineEnding,
    /// obs-fold (a header line starting with whitespace), RFC 9112 §5.2.
    ObsFold,
    MissingHost,
    DuplicateHost,
    InvalidHost,
    /// Both `Content-Length` and `Transfer-Encoding` (RFC 9112 §6.1).
    ContentLengthAndTransferEncoding,
    /// Not `1*DIGIT` (sign, spaces inside, list form, overflow, empty).
    InvalidContentLength,
    /// More than one `Content-Length` field line, equal or not: no
    /// legitimate client sends two, and refusing is the smuggling-safe choice
    /// RFC 9110 §8.6 allows.
    ConflictingContentLength,
    /// `chunked` not last, or repeated, or a coding list that cannot be framed.
    InvalidTransferEncoding,
    ChunkSize,
    ChunkExtension,
    ChunkTerminator,
    Trailer,
}

impl HttpError {
    /// The status code for this error. The only mapping in the project.
    pub const fn status(self) -> Status {
        match self {
            HttpError::BadRequest(_) => Status::BAD_REQUEST,
            HttpError::HeadTimeout => Status::REQUEST_TIMEOUT,
            HttpError::BodyTooLarge => Status::PAYLOAD_TOO_LARGE,
            HttpError::UriTooLong => Status::URI_TOO_LONG,
            HttpError::HeadTooLarge => Status::HEADERS_TOO_LARGE,
            HttpError::UnsupportedTransferCoding => Status::NOT_IMPLEMENTED,
            HttpError::VersionNotSupported => Status::VERSION_NOT_SUPPORTED,
        }
    }

    /// The `code` of the JSON error body (contract §2).
    pub const fn code(self) -> &'static str {
        match self {
            HttpError::BadRequest(_) => "bad_request",
            HttpError::HeadTimeout => "request_timeout",
            HttpError::BodyTooLarge => "body_too_large",
            HttpError::UriTooLong => "uri_too_long",
            HttpError::HeadTooLarge => "headers_too_large",
            HttpError::UnsupportedTransferCoding => "unsupported_transfer_coding",
            HttpError::VersionNotSupported => "http_version_not_supported",
        }
    }

    /// A human sentence for the JSON error body. Plain ASCII without quotes
    /// or backslashes, so it can be copied into JSON as is (a test checks).
    pub const fn message(self) -> &'static str {
        match self {
            HttpError::BadRequest(reason) => reason.message(),
            HttpError::HeadTimeout => "the request head did not arrive in time",
            HttpError::BodyTooLarge => "the request body is larger than this server accepts",
            HttpError::UriTooLong => "the request target is longer than this server accepts",
            HttpError::HeadTooLarge => "the request head is too large or has too many header fields",
            HttpError::UnsupportedTransferCoding => "only the chunked transfer coding is supported",
            HttpError::VersionNotSupported => "only HTTP/1.0 and HTTP/1.1 are supported",
        }
    }
}

impl BadRequest {
    /// Why the request was malformed, as a sentence for the error body.
    pub const fn message(self) -> &'static str {
        match self {
            BadRequest::RequestLine => "malformed request line",
            BadRequest::Method => "malformed method",
            BadRequest::Target => "malformed request target",
            BadRequest::Version => "malformed HTTP version",
            BadRequest::HeaderName => "malformed header field name",
            BadRequest::HeaderValue => "malformed header field value",
            BadRequest::LineEnding => "bare CR or forbidden control character",
            BadRequest::ObsFold => "obsolete line folding is not accepted",
            BadRequest::MissingHost => "missing Host header",
            BadRequest::DuplicateHost => "more than one Host header",
            BadRequest::InvalidHost => "invalid Host header",
            BadRequest::ContentLengthAndTransferEncoding => "both Content-Length and Transfer-Encoding",
            BadRequest::InvalidContentLength => "invalid Content-Length",
            BadRequest::ConflictingContentLength => "more than one Content-Length",
            BadRequest::InvalidTransferEncoding => "invalid Transfer-Encoding",
            BadRequest::ChunkSize => "invalid chunk size",
            BadRequest::ChunkExtension => "invalid chunk extension",
            BadRequest::ChunkTerminator => "chunk data not followed by CRLF",
            BadRequest::Trailer => "invalid trailer section",
        }
    }
}
