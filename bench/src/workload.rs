//! What the connections send: the [`RequestSource`] trait and the fixed request
//! of a plain load run.
//!
//! The driver asks its thread's source for each request's bytes and reports
//! each response back, in order. A flash-sale workload (issue 8) implements the
//! same trait with per-user requests and checks what comes back.

use crate::target::Target;

/// One load thread's supply of requests. Called only from that thread.
pub trait RequestSource: Send {
    /// Appends the next request for connection `conn` (thread-local index) to
    /// `out` and returns whether it is a `HEAD` request (its response has no body).
    fn write_request(&mut self, conn: usize, out: &mut Vec<u8>) -> Bodyless;

    /// A response to a request of connection `conn` arrived (in request order).
    fn on_response(&mut self, _conn: usize, _status: u16) {}
}

/// Whether a response carries no body whatever its headers say (`HEAD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bodyless {
    No,
    Yes,
}

/// The same request over and over, rendered once.
#[derive(Debug, Clone)]
pub struct FixedRequest {
    bytes: Box<[u8]>,
    bodyless: Bodyless,
}

impl FixedRequest {
    /// Renders `method path HTTP/1.1` with `Host`, the extra `headers`
    /// (`Name: value` each), and `Content-Length` when there is a body.
    pub fn new(target: &Target, method: &str, headers: &[String], body: &[u8]) -> FixedRequest {
        let mut bytes = Vec::with_capacity(128 + body.len());
        let has = |name: &str| {
            headers.iter().any(|h| h.split(':').next().is_some_and(|n| n.trim().eq_ignore_ascii_case(name)))
        };
        bytes.extend_from_slice(format!("{method} {} HTTP/1.1\r\n", target.path).as_bytes());
        if !has("host") {
            bytes.extend_from_slice(format!("Host: {}\r\n", target.authority).as_bytes());
        }
        for h in headers {
            bytes.extend_from_slice(h.trim().as_bytes());
            bytes.extend_from_slice(b"\r\n");
        }
        if (!body.is_empty() || method == "POST" || method == "PUT") && !has("content-length") {
            bytes.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        }
        bytes.extend_from_slice(b"\r\n");
        bytes.extend_from_slice(body);
        let bodyless = if method.eq_ignore_ascii_case("HEAD") { Bodyless::Yes } else { Bodyless::No };
        FixedRequest { bytes: bytes.into_boxed_slice(), bodyless }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl RequestSource for FixedRequest {
    fn write_request(&mut self, _conn: usize, out: &mut Vec<u8>) -> Bodyless {
        out.extend_from_slice(&self.bytes);
        self.bodyless
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(method: &str, headers: &[&str], body: &str) -> String {
        let target = Target::parse("http://127.0.0.1:8080/buy?x=1").unwrap();
        let headers: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
        String::from_utf8(FixedRequest::new(&target, method, &headers, body.as_bytes()).bytes().to_vec()).unwrap()
    }

    #[test]
    fn renders_a_get() {
        assert_eq!(render("GET", &[], ""), "GET /buy?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n");
    }

    #[test]
    fn renders_headers_and_a_body() {
        assert_eq!(
            render("POST", &["Content-Type: application/json", "X-A: b"], "{}"),
            "POST /buy?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: application/json\r\n\
             X-A: b\r\nContent-Length: 2\r\n\r\n{}"
        );
        assert_eq!(
            render("POST", &[], ""),
            "POST /buy?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn user_host_and_length_win() {
        assert_eq!(render("GET", &["host: other"], ""), "GET /buy?x=1 HTTP/1.1\r\nhost: other\r\n\r\n");
        assert_eq!(
            render("PUT", &["Content-Length: 1"], "x"),
            "PUT /buy?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Length: 1\r\n\r\nx"
        );
    }

    #[test]
    fn head_is_bodyless() {
        let target = Target::parse("http://h/").unwrap();
        let mut r = FixedRequest::new(&target, "HEAD", &[], b"");
        assert_eq!(r.write_request(0, &mut Vec::new()), Bodyless::Yes);
    }
}
