//! A blocking keep-alive HTTP/1.1 client for the few requests around a load
//! run (setting a sale up, reading `/metrics`), whose bodies the bench needs.
//!
//! The load driver frames responses without keeping their bodies, and that is
//! the point of it; setup needs the JSON of each answer, one request at a time,
//! so it gets this small client instead: one request, then its whole response
//! (`Content-Length` framed, as seckill always answers), on one connection that
//! is re-opened if the server closes it.

use crate::target::Target;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Longest a setup answer may take (bulk user creation is the slow one).
const READ_TIMEOUT: Duration = Duration::from_secs(120);
/// Largest response body accepted (100,000 session tokens fit).
const BODY_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Header slots on the stack.
const HEADERS_MAX: usize = 32;

/// A complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Why a request got no response.
#[derive(Debug)]
pub enum ClientError {
    Io(io::Error),
    /// The bytes were not a response we can frame.
    Malformed(&'static str),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "{e}"),
            ClientError::Malformed(what) => write!(f, "malformed response: {what}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        ClientError::Io(e)
    }
}

/// One keep-alive connection to the target's host.
#[derive(Debug)]
pub struct Client {
    addr: SocketAddr,
    authority: String,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    read_timeout: Duration,
}

impl Client {
    /// Resolves the target's host; the connection opens on the first request.
    pub fn new(target: &Target) -> Result<Client, ClientError> {
        Client::with_read_timeout(target, READ_TIMEOUT)
    }

    /// [`Client::new`] giving up on an answer after `read_timeout` (the
    /// request's outcome is then unknown, and the connection is closed).
    pub fn with_read_timeout(target: &Target, read_timeout: Duration) -> Result<Client, ClientError> {
        let addr = target.resolve().map_err(|e| ClientError::Io(io::Error::other(e.to_string())))?;
        let authority = target.authority.clone();
        Ok(Client { addr, authority, stream: None, buf: Vec::with_capacity(4096), read_timeout })
    }

    /// Sends `method path` with an optional bearer token and JSON body, and
    /// reads the whole response. A request on a connection the server had
    /// closed is sent again once on a fresh connection.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        json: Option<&[u8]>,
    ) -> Result<Reply, ClientError> {
        let request = self.render(method, path, bearer, json);
        let reused = self.stream.is_some();
        match self.exchange(&request) {
            Err(ClientError::Io(_)) if reused => {
                self.stream = None;
                self.exchange(&request)
            }
            other => other,
        }
    }

    fn render(&self, method: &str, path: &str, bearer: Option<&str>, json: Option<&[u8]>) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + json.map_or(0, <[u8]>::len));
        out.extend_from_slice(format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.authority).as_bytes());
        if let Some(token) = bearer {
            out.extend_from_slice(format!("Authorization: Bearer {token}\r\n").as_bytes());
        }
        if let Some(body) = json {
            out.extend_from_slice(
                format!("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(),
            );
            out.extend_from_slice(body);
        } else {
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    fn exchange(&mut self, request: &[u8]) -> Result<Reply, ClientError> {
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None => {
                let stream = TcpStream::connect(self.addr)?;
                stream.set_nodelay(true)?;
                stream.set_read_timeout(Some(self.read_timeout))?;
                self.buf.clear();
                self.stream.insert(stream)
            }
        };
        match exchange_on(stream, &mut self.buf, request) {
            Ok((reply, close)) => {
                if close {
                    self.stream = None;
                }
                Ok(reply)
            }
            Err(e) => {
                self.stream = None;
                Err(e)
            }
        }
    }
}

/// Writes `request` and reads its response; `buf` keeps what follows it.
fn exchange_on(stream: &mut TcpStream, buf: &mut Vec<u8>, request: &[u8]) -> Result<(Reply, bool), ClientError> {
    stream.write_all(request)?;
    let (head_len, status, body_len, close) = loop {
        if let Some(head) = parse_head(buf)? {
            break head;
        }
        read_more(stream, buf)?;
    };
    while buf.len() < head_len + body_len {
        read_more(stream, buf)?;
    }
    let body = buf[head_len..head_len + body_len].to_vec();
    buf.drain(..head_len + body_len);
    Ok((Reply { status, body }, close))
}

fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(), ClientError> {
    let mut chunk = [0u8; 16 * 1024];
    let n = stream.read(&mut chunk)?;
    if n == 0 {
        return Err(ClientError::Io(io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection")));
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

/// `(head length, status, body length, close)` once the head is complete.
fn parse_head(buf: &[u8]) -> Result<Option<(usize, u16, usize, bool)>, ClientError> {
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut head = httparse::Response::new(&mut headers);
    let len = match head.parse(buf).map_err(|_| ClientError::Malformed("bad head"))? {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => return Ok(None),
    };
    let status = head.code.unwrap_or(0);
    let mut body_len = None;
    let mut close = head.version == Some(0);
    for h in head.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse::<usize>().ok());
            body_len = Some(n.ok_or(ClientError::Malformed("bad Content-Length"))?);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(ClientError::Malformed("chunked bodies are not supported by the setup client"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            close |= h.value.eq_ignore_ascii_case(b"close");
        }
    }
    let body_len = match (status, body_len) {
        (204 | 304, _) => 0,
        (_, Some(n)) if n <= BODY_BYTES_MAX => n,
        (_, Some(_)) => return Err(ClientError::Malformed("body too large")),
        (_, None) => return Err(ClientError::Malformed("no Content-Length")),
    };
    Ok(Some((len, status, body_len, close)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_and_bodies() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1";
        assert_eq!(parse_head(r).unwrap(), Some((38, 200, 2, false)));
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Le").unwrap(), None);
        let closing = b"HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(parse_head(closing).unwrap().map(|h| (h.1, h.3)), Some((503, true)));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n\r\n").is_err(), "no length");
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
        assert_eq!(parse_head(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap(), Some((27, 204, 0, false)));
    }
}
