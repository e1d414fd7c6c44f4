use ascii::AsciiString;

use std::io::Error as IoError;
use std::io::Result as IoResult;
use std::io::{BufReader, BufWriter, ErrorKind, Read};

use std::net::SocketAddr;
use std::str::FromStr;

use crate::common::{HTTPVersion, Method};
use crate::util::RefinedTcpStream;
use crate::util::{SequentialReader, SequentialReaderBuilder, SequentialWriterBuilder};
use crate::Request;

/// A ClientConnection is an object that will store a socket to a client
/// and return Request objects.
pub struct ClientConnection {
    // address of the client
    remote_addr: IoResult<Option<SocketAddr>>,

    // sequence of Readers to the stream, so that the data is not read in
    //  the wrong order
    source: SequentialReaderBuilder<BufReader<RefinedTcpStream>>,

    // sequence of Writers to the stream, to avoid writing response #2 before
    //  response #1
    sink: SequentialWriterBuilder<BufWriter<RefinedTcpStream>>,

    // Reader to read the next header from
    next_header_source: SequentialReader<BufReader<RefinedTcpStream>>,

    // set to true if we know that the previous request is the last one
    no_more_requests: bool,

    // true if the connection goes through SSL
    secure: bool,
}

/// Error that can happen when reading a request.
#[derive(Debug)]
enum ReadError {
    WrongRequestLine,
    WrongHeader(HTTPVersion),
    /// the client sent an unrecognized `Expect` header
    ExpectationFailed(HTTPVersion),
    /// the request line and headers are longer than `MAX_HEAD_BYTES`
    HeadTooLarge,
    /// HitMe: the request line or a header has bytes that are not ASCII
    NotAscii,
    /// HitMe: the headers leave the request's length or its host unclear (RFC 9112): the
    /// status to answer and why
    BadFraming(HTTPVersion, u16, &'static str),
    ReadIoError(IoError),
}

/// The most bytes the request line and headers may take together; more is answered 431 and
/// the connection closed, instead of buffering whatever a client sends.
const MAX_HEAD_BYTES: usize = 16 * 1024;

impl ClientConnection {
    /// Creates a new `ClientConnection` that takes ownership of the `TcpStream`.
    pub fn new(
        write_socket: RefinedTcpStream,
        read_socket: RefinedTcpStream,
        peer: Option<SocketAddr>,
    ) -> ClientConnection {
        let remote_addr = Ok(peer);
        let secure = read_socket.secure();

        let mut source = SequentialReaderBuilder::new(BufReader::with_capacity(1024, read_socket));
        let first_header = source.next().unwrap();

        ClientConnection {
            source,
            sink: SequentialWriterBuilder::new(BufWriter::with_capacity(1024, write_socket)),
            remote_addr,
            next_header_source: first_header,
            no_more_requests: false,
            secure,
        }
    }

    /// true if the connection is HTTPS
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Reads the next line from self.next_header_source.
    ///
    /// Reads until `CRLF` is reached. The next read will start
    ///  at the first byte of the new line.
    ///
    /// HitMe: a bare `LF` ends a line too, a `CR` before it dropped (RFC 9112 section 2.2
    /// allows it; upstream waited for a `CRLF` that never came, then closed without a word).
    /// The line starts with room for 64 bytes, where upstream grew it from nothing, one
    /// reallocation at 8, 16, 32 and 64 bytes of every header line.
    fn read_next_line(&mut self, budget: &mut usize) -> Result<AsciiString, ReadError> {
        let mut buf = Vec::with_capacity(64);
        let mut prev_byte_was_cr = false;

        loop {
            let byte = self.next_header_source.by_ref().bytes().next();

            let byte = match byte {
                Some(b) => b.map_err(ReadError::ReadIoError)?,
                None => {
                    return Err(ReadError::ReadIoError(IoError::new(
                        ErrorKind::ConnectionAborted,
                        "Unexpected EOF",
                    )))
                }
            };

            if byte == b'\n' {
                if prev_byte_was_cr {
                    buf.pop(); // removing the '\r'
                }
                return AsciiString::from_ascii(buf).map_err(|_| ReadError::NotAscii);
            }

            *budget = budget.checked_sub(1).ok_or(ReadError::HeadTooLarge)?;
            prev_byte_was_cr = byte == b'\r';

            buf.push(byte);
        }
    }

    /// Reads a request from the stream.
    /// Blocks until the header has been read.
    fn read(&mut self) -> Result<Request, ReadError> {
        let (method, path, version, headers) = {
            // reading the request line
            let mut budget = MAX_HEAD_BYTES;
            let (method, path, version) = {
                let line = self.read_next_line(&mut budget)?;

                parse_request_line(
                    line.as_str().trim(), // TODO: remove this conversion
                )?
            };

            // getting all headers
            let headers = {
                let mut headers = Vec::new();
                loop {
                    let line = self.read_next_line(&mut budget)?;

                    if line.is_empty() {
                        break;
                    };
                    headers.push(match FromStr::from_str(line.as_str().trim()) {
                        // TODO: remove this conversion
                        Ok(h) => h,
                        _ => return Err(ReadError::WrongHeader(version)),
                    });
                }

                headers
            };

            if let Some((status, why)) = framing_error(&version, &headers) {
                return Err(ReadError::BadFraming(version, status, why));
            }

            (method, path, version, headers)
        };

        // building the writer for the request
        let writer = self.sink.next().unwrap();

        // follow-up for next potential request
        let mut data_source = self.source.next().unwrap();
        std::mem::swap(&mut self.next_header_source, &mut data_source);

        // building the next reader
        let request = crate::request::new_request(
            self.secure,
            method,
            path,
            version.clone(),
            headers,
            *self.remote_addr.as_ref().unwrap(),
            data_source,
            writer,
        )
        .map(|request| request.with_socket(self.sink.shared()))
        .map_err(|e| {
            use crate::request;
            match e {
                request::RequestCreationError::CreationIoError(e) => ReadError::ReadIoError(e),
                request::RequestCreationError::ExpectationFailed => {
                    ReadError::ExpectationFailed(version)
                }
            }
        })?;

        // return the request
        Ok(request)
    }
}

impl Iterator for ClientConnection {
    type Item = Request;

    /// Blocks until the next Request is available.
    /// Returns None when no new Requests will come from the client.
    fn next(&mut self) -> Option<Request> {
        use crate::{Response, StatusCode};

        // the client sent a "connection: close" header in this previous request
        //  or is using HTTP 1.0, meaning that no new request will come
        if self.no_more_requests {
            return None;
        }

        loop {
            let rq = match self.read() {
                // HitMe: a request that does not parse is answered 400 with a JSON error that
                // says what was wrong (RFC 9112 section 3), then the connection is closed:
                // where the next request would start is unknown.
                Err(ReadError::WrongRequestLine) => {
                    self.refuse(
                        HTTPVersion(1, 1),
                        400,
                        "the request line is not METHOD /path HTTP/1.1",
                    );
                    return None;
                }

                Err(ReadError::WrongHeader(ver)) => {
                    self.refuse(ver, 400, "a header line is not Name: value");
                    return None;
                }

                Err(ReadError::NotAscii) => {
                    self.refuse(
                        HTTPVersion(1, 1),
                        400,
                        "the request line or a header has bytes that are not ASCII; percent-encode them",
                    );
                    return None;
                }

                // HitMe: the body's end, and so the next request's start, is unknown.
                Err(ReadError::BadFraming(ver, status, why)) => {
                    self.refuse(ver, status, why);
                    return None;
                }

                Err(ReadError::ReadIoError(ref err)) if err.kind() == ErrorKind::TimedOut => {
                    // request timeout
                    let writer = self.sink.next().unwrap();
                    let response = Response::new_empty(StatusCode(408));
                    response
                        .raw_print(writer, HTTPVersion(1, 1), &[], false, None)
                        .ok();
                    return None; // closing the connection
                }

                Err(ReadError::ExpectationFailed(ver)) => {
                    let writer = self.sink.next().unwrap();
                    let response = Response::new_empty(StatusCode(417));
                    response.raw_print(writer, ver, &[], true, None).ok();
                    return None; // TODO: should be recoverable, but needs handling in case of body
                }

                // HitMe: in its JSON error; the rest of the head is unread: close.
                Err(ReadError::HeadTooLarge) => {
                    self.refuse(
                        HTTPVersion(1, 1),
                        431,
                        "the request line and headers are over 16 KiB; send a long URL in a POST body",
                    );
                    return None;
                }

                Err(ReadError::ReadIoError(_)) => return None,

                Ok(rq) => rq,
            };

            // checking HTTP version
            if *rq.http_version() > (1, 1) {
                let writer = self.sink.next().unwrap();
                let response = Response::from_string(
                    "This server only supports HTTP versions 1.0 and 1.1".to_owned(),
                )
                .with_status_code(StatusCode(505));
                response
                    .raw_print(writer, HTTPVersion(1, 1), &[], false, None)
                    .ok();
                continue;
            }

            // updating the status of the connection
            let connection_header = rq
                .headers()
                .iter()
                .find(|h| h.field.equiv("Connection"))
                .map(|h| h.value.as_str());

            let lowercase = connection_header.map(|h| h.to_ascii_lowercase());
            let mut rq = rq;

            match lowercase {
                Some(ref val) if val.contains("close") => {
                    self.no_more_requests = true;
                    // HitMe: an HTTP/1.1 client is told in the response (an HTTP/1.0 one
                    // expects the close: its answers stay as they were).
                    if *rq.http_version() == HTTPVersion(1, 1) {
                        rq.set_closing();
                    }
                }
                Some(ref val) if val.contains("upgrade") => self.no_more_requests = true,
                Some(ref val)
                    if !val.contains("keep-alive") && *rq.http_version() == HTTPVersion(1, 0) =>
                {
                    self.no_more_requests = true
                }
                None if *rq.http_version() == HTTPVersion(1, 0) => self.no_more_requests = true,
                _ => (),
            };

            // returning the request
            return Some(rq);
        }
    }
}

impl ClientConnection {
    /// HitMe: answers a request that cannot be read with `status` (400, or 501 for a
    /// transfer coding HitMe does not decode) and HitMe's JSON error.
    fn refuse(&mut self, version: HTTPVersion, status: u16, why: &str) {
        use crate::{Header, Response, StatusCode};
        let body = format!(
            "{{\"status\":\"error\",\"error\":\"the request could not be read: {why}\"}}"
        );
        let header = |name: &[u8], value: &[u8]| Header::from_bytes(name, value).expect("a valid header");
        // The headers of HitMe's own errors.
        let response = Response::from_string(body)
            .with_status_code(StatusCode(status))
            .with_header(header(b"Content-Type", b"application/json"))
            .with_header(header(b"Server", b"hitme"))
            .with_header(header(b"Cache-Control", b"no-store"));
        if let Some(writer) = self.sink.next() {
            response.raw_print(writer, version, &[], false, None).ok();
        }
    }
}

/// HitMe: why a request's headers must be refused, with the status to answer, or `None`.
/// RFC 9112 asks a server to refuse, with 400 and a closed connection, what a proxy in front
/// could read differently (request smuggling): both `Content-Length` and
/// `Transfer-Encoding` (section 6.1), a `Transfer-Encoding` whose final coding is not
/// `chunked` (6.3), a `Content-Length` that is not one `1*DIGIT` value (6.3; upstream read
/// `+29` as 29 and an overflowing one as no body), and an HTTP/1.1 request without exactly
/// one `Host` (3.2). A coding before `chunked` (`gzip, chunked`) is 501: HitMe decodes none.
fn framing_error(version: &HTTPVersion, headers: &[crate::Header]) -> Option<(u16, &'static str)> {
    let mut hosts = 0;
    let mut length: Option<&str> = None;
    let mut codings: Vec<&str> = Vec::new();
    let mut has_transfer_encoding = false;
    for header in headers {
        if header.field.equiv("Host") {
            hosts += 1;
        } else if header.field.equiv("Content-Length") {
            let value = header.value.as_str().trim();
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Some((400, "Content-Length must be a number of bytes, digits only"));
            }
            if value.parse::<usize>().is_err() {
                return Some((400, "Content-Length is too large"));
            }
            match length {
                Some(seen) if seen.trim_start_matches('0') != value.trim_start_matches('0') => {
                    return Some((400, "the request has two different Content-Length headers"));
                }
                _ => length = Some(value),
            }
        } else if header.field.equiv("Transfer-Encoding") {
            has_transfer_encoding = true;
            codings.extend(
                header
                    .value
                    .as_str()
                    .split(',')
                    .map(str::trim)
                    .filter(|c| !c.is_empty()),
            );
        }
    }
    if *version == HTTPVersion(1, 1) && hosts != 1 {
        return Some((
            400,
            if hosts == 0 {
                "an HTTP/1.1 request needs a Host header"
            } else {
                "the request has more than one Host header"
            },
        ));
    }
    if has_transfer_encoding {
        if length.is_some() {
            return Some((
                400,
                "the request has both Content-Length and Transfer-Encoding; send one",
            ));
        }
        if *version == HTTPVersion(1, 0) {
            return Some((400, "Transfer-Encoding is not HTTP/1.0; send Content-Length"));
        }
        let chunked = |c: &str| c.eq_ignore_ascii_case("chunked");
        let last_is_chunked = codings.last().is_some_and(|c| chunked(c));
        if !last_is_chunked || codings.iter().filter(|c| chunked(c)).count() > 1 {
            return Some((
                400,
                "Transfer-Encoding must end in chunked, once; or send Content-Length",
            ));
        }
        if codings.len() > 1 {
            return Some((
                501,
                "the only Transfer-Encoding HitMe reads is chunked; send the body uncompressed",
            ));
        }
    }
    None
}

/// Parses a "HTTP/1.1" string.
fn parse_http_version(version: &str) -> Result<HTTPVersion, ReadError> {
    let (major, minor) = match version {
        "HTTP/0.9" => (0, 9),
        "HTTP/1.0" => (1, 0),
        "HTTP/1.1" => (1, 1),
        "HTTP/2.0" => (2, 0),
        "HTTP/3.0" => (3, 0),
        _ => return Err(ReadError::WrongRequestLine),
    };

    Ok(HTTPVersion(major, minor))
}

/// Parses the request line of the request.
/// eg. GET / HTTP/1.1
fn parse_request_line(line: &str) -> Result<(Method, String, HTTPVersion), ReadError> {
    let mut parts = line.split(' ');

    let method = parts.next().and_then(|w| w.parse().ok());
    let path = parts.next().map(ToOwned::to_owned);
    let version = parts.next().and_then(|w| parse_http_version(w).ok());

    method
        .and_then(|method| Some((method, path?, version?)))
        .ok_or(ReadError::WrongRequestLine)
}

#[cfg(test)]
mod test {
    #[test]
    fn test_parse_request_line() {
        let (method, path, ver) = super::parse_request_line("GET /hello HTTP/1.1").unwrap();

        assert!(method == crate::Method::Get);
        assert!(path == "/hello");
        assert!(ver == crate::common::HTTPVersion(1, 1));

        assert!(super::parse_request_line("GET /hello").is_err());
        assert!(super::parse_request_line("qsd qsd qsd").is_err());
    }
}
