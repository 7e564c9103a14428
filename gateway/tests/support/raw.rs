//! Requests no S3 client would send: written byte for byte over TCP, signed
//! with SigV4 (aws-sigv4, the SDKs' own signer) or not at all.

use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response read to the end of the connection.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The S3 error code of the body, if it is an S3 error document.
    pub fn code(&self) -> Option<String> {
        let t = self.text();
        let start = t.find("<Code>")? + 6;
        let end = t[start..].find("</Code>")? + start;
        Some(t[start..end].to_owned())
    }
}

/// `host:port` of an `http://host:port` endpoint.
pub fn addr(endpoint: &str) -> String {
    endpoint.trim_start_matches("http://").to_owned()
}

/// Sends a request exactly as given (plus Host, Content-Length and
/// Connection: close unless present) and reads the answer.
pub async fn send(addr: &str, req: &http::Request<Vec<u8>>) -> RawResponse {
    let mut head = format!(
        "{} {} HTTP/1.1\r\n",
        req.method(),
        req.uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    if !req.headers().contains_key("host") {
        head.push_str(&format!("host: {addr}\r\n"));
    }
    for (k, v) in req.headers() {
        head.push_str(&format!(
            "{k}: {}\r\n",
            String::from_utf8_lossy(v.as_bytes())
        ));
    }
    if !req.headers().contains_key("content-length")
        && !req.headers().contains_key("transfer-encoding")
    {
        head.push_str(&format!("content-length: {}\r\n", req.body().len()));
    }
    if !req.headers().contains_key("connection") {
        head.push_str("connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(head.as_bytes()).await.expect("write head");
    // The server may answer and close before the body is written.
    if req.headers().contains_key("transfer-encoding") {
        let mut body = format!("{:x}\r\n", req.body().len()).into_bytes();
        body.extend_from_slice(req.body());
        body.extend_from_slice(b"\r\n0\r\n\r\n");
        let _ = s.write_all(&body).await;
    } else {
        let _ = s.write_all(req.body()).await;
    }
    let head_request = req.method() == http::Method::HEAD;
    read_response_to(&mut s, Duration::from_secs(60), head_request).await
}

/// Writes the request head (and `partial` of its body) and returns the open
/// connection, for requests that are to stall.
pub async fn start(addr: &str, req: &http::Request<Vec<u8>>, partial: usize) -> TcpStream {
    let mut head = format!(
        "{} {} HTTP/1.1\r\n",
        req.method(),
        req.uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    for (k, v) in req.headers() {
        head.push_str(&format!(
            "{k}: {}\r\n",
            String::from_utf8_lossy(v.as_bytes())
        ));
    }
    head.push_str("\r\n");
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(head.as_bytes()).await.expect("write head");
    s.write_all(&req.body()[..partial.min(req.body().len())])
        .await
        .expect("write body");
    s
}

/// Reads one response (to EOF, Content-Length or the last chunk).
pub async fn read_response(s: &mut TcpStream, limit: Duration) -> RawResponse {
    read_response_to(s, limit, false).await
}

/// The response to a request; one to a HEAD has no body whatever its
/// Content-Length says (RFC 9110 §9.3.2).
pub async fn read_response_to(s: &mut TcpStream, limit: Duration, head: bool) -> RawResponse {
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(r) = parse(&buf, head) {
            return r;
        }
        let mut chunk = [0u8; 16384];
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => panic!(
                "no complete response within {limit:?}: {}",
                String::from_utf8_lossy(&buf)
            ),
        }
    }
    parse(&buf, head).unwrap_or_else(|| {
        panic!(
            "connection closed without a complete response: {:?}",
            String::from_utf8_lossy(&buf)
        )
    })
}

fn parse(buf: &[u8], head_request: bool) -> Option<RawResponse> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    // An interim response (100 Continue to `Expect: 100-continue`) comes
    // before the real one.
    if (100..200).contains(&status) && status != 101 {
        return parse(&buf[end + 4..], head_request);
    }
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &buf[end + 4..];
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let body = if head_request {
        Vec::new()
    } else if let Some(len) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        if rest.len() < len {
            return None;
        }
        rest[..len].to_vec()
    } else if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut out = Vec::new();
        let mut at = 0;
        loop {
            let line_end = rest[at..].windows(2).position(|w| w == b"\r\n")? + at;
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&rest[at..line_end])
                    .split(';')
                    .next()?
                    .trim(),
                16,
            )
            .ok()?;
            at = line_end + 2;
            if size == 0 {
                break;
            }
            if rest.len() < at + size + 2 {
                return None;
            }
            out.extend_from_slice(&rest[at..at + size]);
            at += size + 2;
        }
        out
    } else if status == 204 || status == 304 {
        Vec::new()
    } else {
        // Read to EOF: the caller calls again once the connection closed.
        return None;
    };
    Some(RawResponse {
        status,
        headers,
        body,
    })
}

/// Signs `req` (SigV4, header auth, x-amz-content-sha256 of the body) for
/// region us-east-1. The URI is signed exactly as written.
pub fn sign_request(req: &mut http::Request<Vec<u8>>, access_key: &str, secret_key: &str) {
    sign_with(req, access_key, secret_key, false);
}

/// Like `sign_request`, with `x-amz-content-sha256: UNSIGNED-PAYLOAD` when
/// `unsigned_payload` (for bodies sent only in part).
pub fn sign_with(
    req: &mut http::Request<Vec<u8>>,
    access_key: &str,
    secret_key: &str,
    unsigned_payload: bool,
) {
    sign_at(
        req,
        access_key,
        secret_key,
        unsigned_payload,
        SystemTime::now(),
    );
}

/// Like `sign_with`, dated `time`.
pub fn sign_at(
    req: &mut http::Request<Vec<u8>>,
    access_key: &str,
    secret_key: &str,
    unsigned_payload: bool,
    time: SystemTime,
) {
    let identity =
        aws_credential_types::Credentials::new(access_key, secret_key, None, None, "dooz-tests")
            .into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(time)
        .settings(settings)
        .build()
        .expect("signing params")
        .into();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let uri = req.uri().to_string();
    let signable = SignableRequest::new(
        req.method().as_str(),
        &uri,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        if unsigned_payload {
            SignableBody::UnsignedPayload
        } else {
            SignableBody::Bytes(req.body())
        },
    );
    let Ok(signable) = signable else {
        // Not signable (e.g. a header aws-sigv4 refuses): send it unsigned.
        return;
    };
    if let Ok(out) = sign(signable, &params) {
        let (instructions, _) = out.into_parts();
        instructions.apply_to_request_http1x(req);
    }
}

/// A request to `http://addr{path_and_query}` with a Host header.
pub fn request(
    method: &str,
    addr: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> http::Request<Vec<u8>> {
    let mut b = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path_and_query}"))
        .header("host", addr);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(body).expect("request")
}
