//! Every error the API answers with, its status and its `code`, in one
//! place (contract §2: `{"code":"snake_case_code","message":"human text"}`).
//! Errors of the HTTP layer itself live in `seckill_protocol::HttpError`.

use seckill_protocol::{ContentType, ResponseWriter, Status};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiError {
    NotFound,
    MethodNotAllowed {
        allow: &'static str,
    },
    /// /readyz before the backends are reachable.
    NotReady,
    /// /readyz once a shutdown has begun.
    Draining,
}

impl ApiError {
    pub const fn status(self) -> Status {
        match self {
            ApiError::NotFound => Status::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => Status::METHOD_NOT_ALLOWED,
            ApiError::NotReady | ApiError::Draining => Status::SERVICE_UNAVAILABLE,
        }
    }

    pub const fn code(self) -> &'static str {
        match self {
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::NotReady => "not_ready",
            ApiError::Draining => "draining",
        }
    }

    /// A human sentence. Our own text: it never needs JSON escaping.
    pub const fn message(self) -> &'static str {
        match self {
            ApiError::NotFound => "no such path",
            ApiError::MethodNotAllowed { .. } => "this path does not accept that method",
            ApiError::NotReady => "the server is starting or a backend is unreachable",
            ApiError::Draining => "the server is shutting down",
        }
    }

    /// Seconds a client should wait before retrying, for the errors that have one.
    pub const fn retry_after_s(self) -> Option<u64> {
        match self {
            ApiError::NotReady | ApiError::Draining => Some(1),
            _ => None,
        }
    }

    /// Finishes `w` (already started with `self.status()`) with this error.
    pub fn finish(self, mut w: ResponseWriter<'_>) {
        if let ApiError::MethodNotAllowed { allow } = self {
            w.header("Allow", allow.as_bytes());
        }
        if let Some(seconds) = self.retry_after_s() {
            w.header_u64("Retry-After", seconds);
        }
        w.body_with(ContentType::Json, |out| {
            out.extend_from_slice(b"{\"code\":\"");
            out.extend_from_slice(self.code().as_bytes());
            out.extend_from_slice(b"\",\"message\":\"");
            out.extend_from_slice(self.message().as_bytes());
            out.extend_from_slice(b"\"}");
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_need_no_escaping() {
        let all =
            [ApiError::NotFound, ApiError::MethodNotAllowed { allow: "GET" }, ApiError::NotReady, ApiError::Draining];
        for e in all {
            assert!(!e.message().contains(['"', '\\']), "{e:?}");
            assert!(e.code().bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{e:?}");
        }
    }
}
