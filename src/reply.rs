//! An answer prepared off the event loop (by a worker) and written by the
//! loop when the parked request is completed. Allocation is fine here: these
//! are the slow endpoints (login, admin), never the refusal path.

use seckill_protocol::{ContentType, DateHeader, RequestInfo, ResponseWriter, Status};

use crate::api_error::ApiError;

#[derive(Debug)]
pub struct Reply {
    pub status: Status,
    pub content_type: ContentType,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// Errors keep their headers (Retry-After, Allow) through `finish`.
    error: Option<ApiError>,
}

impl Reply {
    pub fn json(status: Status, body: Vec<u8>) -> Reply {
        Reply { status, content_type: ContentType::Json, headers: Vec::new(), body, error: None }
    }

    /// Serialises `value` as the JSON body.
    pub fn json_value(status: Status, value: &serde_json::Value) -> Reply {
        // Serialising a `Value` into a Vec cannot fail.
        Reply::json(status, serde_json::to_vec(value).expect("Value serialises"))
    }

    pub fn png(body: Vec<u8>) -> Reply {
        Reply { status: Status::OK, content_type: ContentType::Png, headers: Vec::new(), body, error: None }
            .header("Cache-Control", "no-store")
    }

    pub fn empty(status: Status) -> Reply {
        Reply { status, content_type: ContentType::Json, headers: Vec::new(), body: Vec::new(), error: None }
    }

    pub fn error(error: ApiError) -> Reply {
        Reply {
            status: error.status(),
            content_type: ContentType::Json,
            headers: Vec::new(),
            body: Vec::new(),
            error: Some(error),
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    /// Writes the response for a request described by `info`.
    pub fn write(self, info: RequestInfo, date: &DateHeader, out: &mut Vec<u8>) {
        let mut w = ResponseWriter::new(out, date, info, self.status);
        for (name, value) in &self.headers {
            w.header(name, value.as_bytes());
        }
        if let Some(error) = self.error {
            return error.finish(w);
        }
        if self.body.is_empty() && self.status == Status::NO_CONTENT {
            w.empty();
        } else {
            w.body(self.content_type, &self.body);
        }
    }
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Self {
        Reply::error(e)
    }
}
