//! A browser form upload's body (multipart/form-data) read as a stream:
//! the fields before the file part with a bounded buffer, then the file
//! part itself as a stream of bytes that ends at the next boundary. Fields
//! after the file are ignored, as S3 ignores them.

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};

/// The most bytes the fields before the file (and the file part's headers)
/// may take: S3 caps the policy at 20 KB; the other fields are short.
pub const MAX_FIELDS_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormError {
    #[error("The body of your POST request is not well-formed multipart/form-data.")]
    Malformed,
    #[error("The form fields before the file exceed {MAX_FIELDS_BYTES} bytes.")]
    FieldsTooLarge,
    #[error("POST requires exactly one file upload per request.")]
    NoFile,
    #[error("The request body could not be read: {0}")]
    Body(String),
}

/// The form up to its file part; `file` streams the file's bytes.
pub struct Form<S> {
    /// Field names as sent; compare them ignoring case.
    pub fields: Vec<(String, String)>,
    pub filename: Option<String>,
    pub file: FileStream<S>,
}

impl<S> Form<S> {
    /// The first field of this name, case-insensitively.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The boundary parameter of a multipart/form-data Content-Type.
pub fn boundary(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_owned())
            .filter(|b| !b.is_empty() && b.len() <= 70)
    })
}

/// Where `needle` first occurs in `hay`.
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, _) = needle.split_first()?;
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        let p = hay[i..=hay.len() - needle.len()]
            .iter()
            .position(|&b| b == first)?;
        i += p;
        if &hay[i..i + needle.len()] == needle {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// A part's name and filename from its headers.
fn disposition(headers: &str) -> Result<(String, Option<String>), FormError> {
    for line in headers.split("\r\n") {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if !name.trim().eq_ignore_ascii_case("content-disposition") {
            continue;
        }
        let mut field = None;
        let mut filename = None;
        for p in value.split(';').skip(1) {
            let Some((k, v)) = p.split_once('=') else {
                continue;
            };
            let v = v.trim().trim_matches('"').to_owned();
            match k.trim().to_ascii_lowercase().as_str() {
                "name" => field = Some(v),
                "filename" => filename = Some(v),
                _ => {}
            }
        }
        return field.map(|f| (f, filename)).ok_or(FormError::Malformed);
    }
    Err(FormError::Malformed)
}

struct Reader<S> {
    inner: S,
    buf: BytesMut,
}

impl<S, E> Reader<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    /// Reads on until `needle` is in the buffer; its offset.
    async fn until(&mut self, needle: &[u8]) -> Result<usize, FormError> {
        loop {
            if let Some(i) = find(&self.buf, needle) {
                return Ok(i);
            }
            if self.buf.len() > MAX_FIELDS_BYTES {
                return Err(FormError::FieldsTooLarge);
            }
            match self.inner.next().await {
                Some(Ok(b)) => self.buf.extend_from_slice(&b),
                Some(Err(e)) => return Err(FormError::Body(e.to_string())),
                None => return Err(FormError::Malformed),
            }
        }
    }
}

/// Reads the fields up to the file part (named `file`).
pub async fn read_form<S, E>(body: S, boundary: &str) -> Result<Form<S>, FormError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut r = Reader {
        inner: body,
        buf: BytesMut::new(),
    };
    let dash = format!("--{boundary}");
    let delim = format!("\r\n--{boundary}").into_bytes();
    // A preamble may precede the first boundary.
    let start = r.until(dash.as_bytes()).await?;
    let _ = r.buf.split_to(start + dash.len());
    let mut fields = Vec::new();
    loop {
        // After a boundary: CRLF and a part, or `--` and the end.
        r.until(b"\r\n").await.map_err(|_| FormError::Malformed)?;
        if r.buf.starts_with(b"--") {
            return Err(FormError::NoFile);
        }
        if !r.buf.starts_with(b"\r\n") {
            return Err(FormError::Malformed);
        }
        let _ = r.buf.split_to(2);
        let end = r.until(b"\r\n\r\n").await?;
        let head = r.buf.split_to(end + 4);
        let head = std::str::from_utf8(&head[..end]).map_err(|_| FormError::Malformed)?;
        let (name, filename) = disposition(head)?;
        if name.eq_ignore_ascii_case("file") {
            return Ok(Form {
                fields,
                filename,
                file: FileStream {
                    inner: r.inner,
                    buf: r.buf,
                    delim,
                    done: false,
                },
            });
        }
        let end = r.until(&delim).await?;
        let value = r.buf.split_to(end);
        let _ = r.buf.split_to(delim.len());
        let value = String::from_utf8(value.to_vec()).map_err(|_| FormError::Malformed)?;
        fields.push((name, value));
    }
}

/// The file part's bytes, up to (not including) the boundary after it.
pub struct FileStream<S> {
    inner: S,
    buf: BytesMut,
    delim: Vec<u8>,
    done: bool,
}

impl<S, E> FileStream<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
    E: std::fmt::Display,
{
    /// The bytes as a stream; an error when the body ends before the
    /// closing boundary.
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, FormError>> + Send + Unpin {
        Box::pin(futures::stream::unfold(self, |mut s| async move {
            loop {
                if s.done {
                    return None;
                }
                if let Some(i) = find(&s.buf, &s.delim) {
                    s.done = true;
                    let out = s.buf.split_to(i).freeze();
                    s.buf.clear();
                    if out.is_empty() {
                        return None;
                    }
                    return Some((Ok(out), s));
                }
                // The boundary may begin in the last delim-1 bytes: keep them.
                let keep = s.delim.len() - 1;
                if s.buf.len() > keep {
                    let n = s.buf.len() - keep;
                    return Some((Ok(s.buf.split_to(n).freeze()), s));
                }
                match s.inner.next().await {
                    Some(Ok(b)) => s.buf.extend_from_slice(&b),
                    Some(Err(e)) => {
                        s.done = true;
                        return Some((Err(FormError::Body(e.to_string())), s));
                    }
                    None => {
                        s.done = true;
                        return Some((Err(FormError::Malformed), s));
                    }
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(parts: &[&[u8]]) -> impl Stream<Item = Result<Bytes, String>> + Unpin + Send {
        futures::stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::copy_from_slice(p)))
                .collect::<Vec<_>>(),
        )
    }

    const FORM: &[u8] = b"--XyZ\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nup/${filename}\r\n--XyZ\r\nContent-Disposition: form-data; name=\"Policy\"\r\n\r\neyJ9\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--XyQ world\r\n--XyZ\r\nContent-Disposition: form-data; name=\"after\"\r\n\r\nignored\r\n--XyZ--\r\n";

    async fn collect(
        form: Form<impl Stream<Item = Result<Bytes, String>> + Unpin + Send>,
    ) -> Result<Vec<u8>, FormError> {
        let mut s = form.file.into_stream();
        let mut out = Vec::new();
        while let Some(b) = s.next().await {
            out.extend_from_slice(&b?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn fields_then_the_file_however_split() {
        for cut in [1, 2, 3, 7, 50, FORM.len()] {
            let pieces: Vec<&[u8]> = FORM.chunks(cut).collect();
            let form = read_form(body(&pieces), "XyZ").await.unwrap();
            assert_eq!(form.field("KEY"), Some("up/${filename}"));
            assert_eq!(form.field("policy"), Some("eyJ9"));
            assert_eq!(form.filename.as_deref(), Some("a.txt"));
            assert_eq!(
                collect(form).await.unwrap(),
                b"hello\r\n--XyQ world",
                "cut {cut}"
            );
        }
    }

    #[tokio::test]
    async fn malformed_forms_are_refused() {
        let no_file = b"--b\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nk\r\n--b--\r\n";
        assert!(matches!(
            read_form(body(&[no_file]), "b").await.err(),
            Some(FormError::NoFile)
        ));
        let truncated = b"--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc";
        let parts: [&[u8]; 1] = [truncated];
        let form = read_form(body(&parts), "b").await.unwrap();
        assert_eq!(collect(form).await, Err(FormError::Malformed));
        let huge = vec![b'a'; MAX_FIELDS_BYTES + 10];
        let mut big = b"--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n".to_vec();
        big.extend_from_slice(&huge);
        assert!(matches!(
            read_form(body(&[&big]), "b").await.err(),
            Some(FormError::FieldsTooLarge)
        ));
        assert_eq!(
            boundary("multipart/form-data; boundary=\"abc\""),
            Some("abc".into())
        );
        assert_eq!(boundary("text/plain; boundary=abc"), None);
    }
}
