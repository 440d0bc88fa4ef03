//! Incremental decoding of `Transfer-Encoding: chunked` bodies (RFC 9112 §7.1):
//! chunk sizes in hex without sign or overflow, extensions skipped but
//! validated, trailers parsed and discarded, every line ended by CRLF.
