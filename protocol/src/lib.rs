//! Sans-I/O HTTP/1.1 for seckill.
//!
//! This crate turns bytes into requests and responses into bytes. It never
//! touches a socket, a clock it was not handed, or a thread: the reactor owns
//! the buffers and the I/O, and calls in here.
//!
//! Map of the modules:
//! - [`limits`]: the `[http]` size limits the parser enforces.
//! - [`error`]: every way a request can be refused, and the one function that
//!   maps each to its status code.
//! - [`request`]: a parsed request borrowing the connection's buffer.
//! - [`parser`]: the per-connection incremental parser (head search resumed
//!   from a saved offset, body framing by `Content-Length` or `chunked`).
//! - [`chunked`]: the incremental chunked-body decoder used by the parser.
//! - [`response`]: response encoding into a caller-owned buffer with
//!   pre-built heads and a fast integer formatter.
//! - [`date`]: the `Date` header, rendered once a second.
//! - `conformance` (feature `conformance`): the RFC case table, replayed
//!   here against the parser and by the server's tests against the server.
//!
//! Architecture invariants:
//! - nothing in here allocates per request once a connection's buffers
//!   have reached their working size (`tests/alloc.rs` counts);
//! - the same bytes give the same requests and errors however they are
//!   split across reads (the conformance table, a proptest and the fuzz
//!   target in `fuzz/` check);
//! - no socket, no thread, no clock but the one handed to [`DateHeader`].

pub mod chunked;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod date;
pub mod error;
pub mod limits;
pub mod parser;
pub mod request;
pub mod response;

pub use date::DateHeader;
pub use error::HttpError;
pub use limits::Limits;
pub use parser::{Parse, RequestParser};
pub use request::{Headers, Method, OwnedRequest, Request, RequestInfo, Version};
pub use response::{CONTINUE_100, ContentType, ResponseWriter, Status};
