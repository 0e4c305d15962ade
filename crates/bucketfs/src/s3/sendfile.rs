//! UploadPart with its body sent by `sendfile(2)` straight from the staging
//! file, for plain-HTTP endpoints (an S3 server on the same host or LAN).
//!
//! Why not reqwest: hyper sends only bodies in memory, so a part staged on
//! disk was read into a buffer (a copy out of the page cache) and written
//! to the socket (a second copy). `perf` of a 1 GiB sequential write onto a
//! mount put those two copies at a third of bucketfs's CPU, and on a host
//! where the S3 server shares the cores, bucketfs's CPU is taken from the
//! server. `sendfile` hands the page-cache pages to TCP without either copy.
//!
//! This is the one request bucketfs writes on the wire itself, and only its
//! simplest form: one `PUT` with a `Content-Length` body on a blocking
//! socket (run on tokio's blocking pool), the request head signed exactly
//! as for reqwest (`Inner::signed`), the response head parsed by `httparse`
//! (the parser inside hyper). A response body is read only to find an
//! error's `<Code>`; a connection goes back to the pool only after a
//! response delimited by `Content-Length` without `Connection: close`, and a
//! pooled connection the server has closed meanwhile is noticed (a
//! non-blocking peek reads end of file) and dropped before use. Anything
//! unexpected drops the connection and fails the try as a transient
//! transport error, which the usual retry loop retries. TLS endpoints keep
//! the reqwest path.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::client::ObjectClientError;

/// Idle connections kept for later parts (more than parts sent at once).
const MAX_IDLE: usize = 16;
/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest response body read (an error document).
const MAX_BODY: usize = 64 * 1024;

/// A byte range of a file to send as a request body.
#[derive(Debug, Clone, Copy)]
pub(super) struct FileRange<'a> {
    pub file: &'a File,
    pub offset: u64,
    pub len: u64,
}

/// What the caller needs of a response.
#[derive(Debug)]
pub(super) struct FileResponse {
    pub status: u16,
    pub etag: Option<String>,
    /// The body (up to [`MAX_BODY`]), for an error's code.
    pub body: Vec<u8>,
}

/// Keep-alive connections to the endpoint, used one request at a time.
#[derive(Debug, Default)]
pub(super) struct ConnPool {
    idle: Mutex<Vec<TcpStream>>,
}

impl ConnPool {
    /// Sends `PUT path_and_query` with `headers` (already signed; a
    /// `Content-Length` of `body.len` is added) and the file range as the
    /// body, and reads the response. Blocking.
    pub(super) fn put(
        &self,
        authority: &str,
        path_and_query: &str,
        headers: &reqwest::header::HeaderMap,
        body: FileRange<'_>,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Result<FileResponse, ObjectClientError> {
        let deadline = Instant::now() + timeout;
        let conn = match self.take_idle() {
            Some(c) => c,
            None => connect(authority, connect_timeout).map_err(transport_error)?,
        };
        let mut head = format!("PUT {path_and_query} HTTP/1.1\r\n").into_bytes();
        for (name, value) in headers {
            head.extend_from_slice(name.as_str().as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len).as_bytes());
        let (response, reusable) = exchange(&conn, &head, body, deadline)?;
        if reusable {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
        }
        Ok(response)
    }

    /// A pooled connection the server has not closed.
    fn take_idle(&self) -> Option<TcpStream> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(conn) = idle.pop() {
            if still_open(&conn) {
                return Some(conn);
            }
        }
        None
    }
}

fn connect(authority: &str, timeout: Duration) -> io::Result<TcpStream> {
    use std::net::ToSocketAddrs;
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    for addr in authority.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// An idle keep-alive connection is open while a non-blocking peek finds
/// nothing to read; end of file (or stray bytes) means it is not usable.
fn still_open(conn: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    // SAFETY: recv into a valid one-byte buffer on a socket we own.
    let n = unsafe {
        libc::recv(
            conn.as_raw_fd(),
            byte.as_mut_ptr().cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock
}

/// One request/response on `conn`. Returns the response and whether the
/// connection can carry another request.
fn exchange(
    conn: &TcpStream,
    head: &[u8],
    body: FileRange<'_>,
    deadline: Instant,
) -> Result<(FileResponse, bool), ObjectClientError> {
    set_timeouts(conn, deadline)
        .and_then(|()| (&*conn).write_all(head))
        .map_err(transport_error)?;
    send_file(conn, body, deadline)?;
    read_response(conn, deadline).map_err(transport_error)
}

/// Reads the response to the request just sent.
fn read_response(conn: &TcpStream, deadline: Instant) -> io::Result<(FileResponse, bool)> {
    let mut reader = BufReader::with_capacity(8 * 1024, conn);
    loop {
        set_timeouts(conn, deadline)?;
        let raw = read_head(&mut reader)?;
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut headers);
        match parsed.parse(&raw) {
            Ok(httparse::Status::Complete(_)) => {}
            _ => return Err(invalid("unparsable response head")),
        }
        let status = parsed.code.ok_or_else(|| invalid("no status"))?;
        if (100..200).contains(&status) {
            // An interim response (100 Continue): the real one follows.
            continue;
        }
        let header = |name: &str| {
            parsed
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .and_then(|h| std::str::from_utf8(h.value).ok())
                .map(str::trim)
        };
        let etag = header("etag").map(str::to_owned);
        let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"))
            || parsed.version != Some(1);
        let length = match header("transfer-encoding") {
            Some(_) => None,
            None => header("content-length").and_then(|v| v.parse::<u64>().ok()),
        };
        let mut body = Vec::new();
        let reusable = match length {
            Some(n) if n as usize <= MAX_BODY => {
                (&mut reader).take(n).read_to_end(&mut body)?;
                if body.len() as u64 != n {
                    return Err(invalid("response body shorter than its length"));
                }
                !close && reader.buffer().is_empty()
            }
            _ => {
                // No length we can use (chunked, until close, or large):
                // read what an error document needs, then drop the
                // connection. A chunked body's size lines may surround
                // the XML; the code is still found in it.
                (&mut reader).take(MAX_BODY as u64).read_to_end(&mut body)?;
                false
            }
        };
        return Ok((FileResponse { status, etag, body }, reusable));
    }
}

/// Sends `body.len` bytes of the file from `body.offset` with sendfile(2).
/// A file shorter than the range is `LocalRead` (not retried: the
/// filesystem changed it; the upload is redone from the new bytes).
fn send_file(
    conn: &TcpStream,
    body: FileRange<'_>,
    deadline: Instant,
) -> Result<(), ObjectClientError> {
    let mut offset =
        libc::off_t::try_from(body.offset).map_err(|_| ObjectClientError::LocalRead {
            message: "offset past the largest file offset".into(),
        })?;
    let end = body.offset + body.len;
    while (offset as u64) < end {
        set_timeouts(conn, deadline).map_err(transport_error)?;
        let chunk = ((end - offset as u64) as usize).min(1 << 30);
        // SAFETY: both descriptors are open for the call; the kernel
        // advances `offset`, a valid off_t we own.
        let n =
            unsafe { libc::sendfile(conn.as_raw_fd(), body.file.as_raw_fd(), &mut offset, chunk) };
        match n {
            0 => {
                // The file ended early (truncated while the part was sent).
                return Err(ObjectClientError::LocalRead {
                    message: format!("the file ends before byte {end}"),
                });
            }
            n if n < 0 => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(transport_error(e));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Reads a response head up to and including its blank line.
fn read_head(reader: &mut BufReader<&TcpStream>) -> io::Result<Vec<u8>> {
    let mut raw = Vec::with_capacity(512);
    loop {
        let before = raw.len();
        let n = reader.read_until(b'\n', &mut raw)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before the response",
            ));
        }
        let line = &raw[before..];
        if line == b"\r\n" || line == b"\n" {
            return Ok(raw);
        }
        if raw.len() > MAX_HEAD {
            return Err(invalid("response head too large"));
        }
    }
}

/// Socket timeouts so no single read or write outlives the deadline.
fn set_timeouts(conn: &TcpStream, deadline: Instant) -> io::Result<()> {
    let left = deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "request timed out"))?;
    conn.set_read_timeout(Some(left))?;
    conn.set_write_timeout(Some(left))
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

/// Transport failures, mapped like reqwest's (all transient).
fn transport_error(e: io::Error) -> ObjectClientError {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ObjectClientError::Timeout,
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => ObjectClientError::Reset,
        io::ErrorKind::InvalidData => ObjectClientError::InvalidResponse {
            message: e.to_string(),
        },
        _ => ObjectClientError::Connection {
            message: format!("request: {e}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A one-shot server: reads a request with a body of `body_len`, sends
    /// `reply`, returns the request bytes.
    fn serve_once(
        reply: &'static [u8],
        body_len: usize,
    ) -> (String, std::thread::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let t = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            let mut got = Vec::new();
            let mut buf = [0u8; 65536];
            loop {
                let n = s.read(&mut buf).expect("read");
                got.extend_from_slice(&buf[..n]);
                if let Some(p) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                    if got.len() >= p + 4 + body_len {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            s.write_all(reply).expect("reply");
            got
        });
        (addr, t)
    }

    fn staged(bytes: &[u8]) -> File {
        let mut f = tempfile::tempfile().expect("tempfile");
        f.write_all(bytes).expect("write");
        f
    }

    /// `pool.put` of `len` bytes of `file` from `offset` to `addr`.
    fn put_range(
        pool: &ConnPool,
        addr: &str,
        path: &str,
        file: &File,
        offset: u64,
        len: u64,
    ) -> Result<FileResponse, ObjectClientError> {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("host", addr.parse().expect("host value"));
        let range = FileRange { file, offset, len };
        let secs = Duration::from_secs(5);
        pool.put(addr, path, &headers, range, secs, secs)
    }

    #[test]
    fn sends_the_range_and_reads_etag_and_keeps_the_connection() {
        let (addr, server) = serve_once(
            b"HTTP/1.1 200 OK\r\nETag: \"abc\"\r\nContent-Length: 0\r\n\r\n",
            4,
        );
        let file = staged(b"0123456789");
        let pool = ConnPool::default();
        let r = put_range(&pool, &addr, "/b/k?partNumber=1", &file, 3, 4).expect("put");
        assert_eq!((r.status, r.etag.as_deref()), (200, Some("\"abc\"")));
        let request = String::from_utf8(server.join().expect("server")).expect("utf8");
        assert!(
            request.starts_with("PUT /b/k?partNumber=1 HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(request.contains("content-length: 4\r\n"), "{request}");
        assert!(request.ends_with("\r\n\r\n3456"), "{request}");
        assert_eq!(pool.idle.lock().expect("lock").len(), 1);
        // The server has closed it since: the pool notices and drops it.
        std::thread::sleep(Duration::from_millis(50));
        assert!(pool.take_idle().is_none());
    }

    #[test]
    fn an_error_body_is_read_and_a_closing_server_is_not_reused() {
        let reply = b"HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 60\r\n\r\n<Error><Code>NoSuchUpload</Code><Message>x</Message></Error>";
        let (addr, server) = serve_once(reply, 2);
        let file = staged(b"ab");
        let pool = ConnPool::default();
        let r = put_range(&pool, &addr, "/b/k", &file, 0, 2).expect("put");
        assert_eq!(r.status, 404);
        assert!(String::from_utf8_lossy(&r.body).contains("<Code>NoSuchUpload</Code>"));
        server.join().expect("server");
        assert!(pool.idle.lock().expect("lock").is_empty());
    }

    #[test]
    fn a_file_shorter_than_the_range_fails_the_try() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let _server = std::thread::spawn(move || listener.accept().map(|(s, _)| s));
        let file = staged(b"short");
        let e =
            put_range(&ConnPool::default(), &addr, "/b/k", &file, 0, 100).expect_err("short file");
        assert!(matches!(e, ObjectClientError::LocalRead { .. }), "{e:?}");
    }
}
