//! A request body, watched: a body that delivers nothing for the stall
//! timeout fails (and the request gives back its memory), a client that
//! aborts is told apart from a server error, aws-chunked chunks larger
//! than an upload's body allowance reserve their memory before s3s buffers
//! them (s3s collects each chunk whole to check its signature), and the
//! Content-MD5 / x-amz-checksum-* of a body s3s reads whole (XML) is
//! checked, which s3s does not do.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use crate::budget::{BudgetError, MemoryBudget, Reservation};
use crate::engine::{BODY_ALLOWANCE, Checksums, ExpectedChecksums};

/// Why a request body ended early, for the front door's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFailure {
    /// Nothing arrived for the stall timeout.
    Stalled,
    /// The client closed the connection or sent a malformed body.
    Aborted,
    /// A large aws-chunked chunk found no memory in time.
    NoMemory,
    /// The body does not match its Content-MD5 or checksum header.
    BadDigest,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BodyError(&'static str);

/// Shared between the body (deep inside s3s or the engine) and the front
/// door, which reads it once the request is answered.
#[derive(Default, Debug)]
pub struct BodyOutcome(Mutex<Option<BodyFailure>>);

impl BodyOutcome {
    pub fn failure(&self) -> Option<BodyFailure> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, f: BodyFailure) {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        g.get_or_insert(f);
    }
}

pub struct GuardedBody {
    inner: Incoming,
    stall: Duration,
    timer: Pin<Box<Sleep>>,
    armed: bool,
    done: bool,
    outcome: Arc<BodyOutcome>,
    chunks: Option<ChunkMemory>,
    digest: Option<(ExpectedChecksums, Checksums)>,
}

impl GuardedBody {
    /// `budget` is given for aws-chunked bodies (`x-amz-content-sha256:
    /// STREAMING-…`), whose chunk sizes are watched; `digest` for bodies
    /// whose Content-MD5 / checksum headers are to be checked here.
    pub fn new(
        inner: Incoming,
        stall: Duration,
        outcome: Arc<BodyOutcome>,
        budget: Option<MemoryBudget>,
        digest: Option<ExpectedChecksums>,
    ) -> Self {
        Self {
            inner,
            stall,
            timer: Box::pin(tokio::time::sleep(stall)),
            armed: false,
            done: false,
            outcome,
            chunks: budget.map(|budget| ChunkMemory {
                budget,
                framing: Framing::Header(Vec::new()),
                held: [Reservation::none(), Reservation::none()],
                waiting: None,
            }),
            digest: digest.map(|e| {
                let hashes = Checksums::new(e.algorithms());
                (e, hashes)
            }),
        }
    }

    fn fail(
        &mut self,
        why: BodyFailure,
        msg: &'static str,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.done = true;
        self.chunks = None;
        self.outcome.set(why);
        Poll::Ready(Some(Err(BodyError(msg))))
    }
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        // A frame held back until its chunk's memory is reserved.
        if let Some(cm) = this.chunks.as_mut()
            && let Some((_, wait)) = cm.waiting.as_mut()
        {
            return match wait.as_mut().poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Ok(r)) => {
                    cm.hold(r);
                    match cm.waiting.take() {
                        Some((frame, _)) => Poll::Ready(Some(Ok(frame))),
                        None => Poll::Ready(None),
                    }
                }
                Poll::Ready(Err(BudgetError::Exhausted(_))) => this.fail(
                    BodyFailure::NoMemory,
                    "no memory for an aws-chunked chunk in time",
                ),
            };
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.armed = false;
                if let (Some((_, hashes)), Some(data)) = (this.digest.as_mut(), frame.data_ref()) {
                    hashes.update(data);
                }
                let need = match (this.chunks.as_mut(), frame.data_ref()) {
                    (Some(cm), Some(data)) => cm.framing.feed(data),
                    _ => None,
                };
                let Some(size) = need else {
                    return Poll::Ready(Some(Ok(frame)));
                };
                let Some(cm) = this.chunks.as_mut() else {
                    return Poll::Ready(Some(Ok(frame)));
                };
                let extra = usize::try_from(size)
                    .unwrap_or(usize::MAX)
                    .saturating_sub(BODY_ALLOWANCE);
                match cm.budget.try_reserve(extra) {
                    Some(r) => {
                        cm.hold(r);
                        Poll::Ready(Some(Ok(frame)))
                    }
                    None => {
                        let budget = cm.budget.clone();
                        cm.waiting =
                            Some((frame, Box::pin(async move { budget.reserve(extra).await })));
                        self.poll_frame(cx)
                    }
                }
            }
            Poll::Ready(Some(Err(_))) => {
                this.fail(BodyFailure::Aborted, "the request body was cut")
            }
            Poll::Ready(None) => {
                if let Some((expected, hashes)) = this.digest.take()
                    && expected.verify(&hashes.finish()).is_err()
                {
                    return this.fail(BodyFailure::BadDigest, "the body does not match its digest");
                }
                this.done = true;
                this.chunks = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                if !this.armed {
                    let deadline = Instant::now() + this.stall;
                    this.timer.as_mut().reset(deadline);
                    this.armed = true;
                }
                if this.timer.as_mut().poll(cx).is_ready() {
                    return this.fail(BodyFailure::Stalled, "the request body stalled");
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

type MemoryWait = BoxFuture<'static, Result<Reservation, BudgetError>>;

/// The memory of the aws-chunked chunks s3s is collecting: the chunk being
/// read and the one before it (s3s may still be handing that one out).
struct ChunkMemory {
    budget: MemoryBudget,
    framing: Framing,
    held: [Reservation; 2],
    waiting: Option<(Frame<Bytes>, MemoryWait)>,
}

impl ChunkMemory {
    fn hold(&mut self, r: Reservation) {
        self.held.swap(0, 1);
        self.held[1] = r;
    }
}

/// Just enough of the aws-chunked framing to see each chunk's declared
/// size: `hex-size[;chunk-signature=…]\r\n`, the data, `\r\n`, … until the
/// zero-size chunk and its trailers. Anything it cannot parse it leaves to
/// s3s, which refuses it.
#[derive(Debug, PartialEq, Eq)]
enum Framing {
    Header(Vec<u8>),
    Data(u64),
    DataEnd(u8),
    Done,
}

/// s3s refuses chunk headers longer than this.
const MAX_HEADER: usize = 1024;

impl Framing {
    /// Consumes a frame; returns the largest chunk size whose header
    /// completed in it, if larger than the allowance.
    fn feed(&mut self, mut data: &[u8]) -> Option<u64> {
        let mut started = None;
        while !data.is_empty() {
            match self {
                Framing::Header(buf) => match data.iter().position(|b| *b == b'\n') {
                    Some(i) => {
                        buf.extend_from_slice(&data[..i]);
                        data = &data[i + 1..];
                        let line = String::from_utf8_lossy(buf);
                        let hex = line.split(';').next().unwrap_or("").trim();
                        *self = match u64::from_str_radix(hex, 16) {
                            Ok(0) | Err(_) => Framing::Done,
                            Ok(n) => {
                                if n > BODY_ALLOWANCE as u64 {
                                    started = started.max(Some(n));
                                }
                                Framing::Data(n)
                            }
                        };
                    }
                    None => {
                        buf.extend_from_slice(data);
                        data = &[];
                        if buf.len() > MAX_HEADER {
                            *self = Framing::Done;
                        }
                    }
                },
                Framing::Data(n) => {
                    let take = (*n).min(data.len() as u64);
                    data = &data[take as usize..];
                    *n -= take;
                    if *n == 0 {
                        *self = Framing::DataEnd(2);
                    }
                }
                Framing::DataEnd(k) => {
                    let take = usize::from(*k).min(data.len());
                    data = &data[take..];
                    *k -= take as u8;
                    if *k == 0 {
                        *self = Framing::Header(Vec::new());
                    }
                }
                Framing::Done => break,
            }
        }
        started
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_finds_large_chunks_across_frames() {
        let big = BODY_ALLOWANCE as u64 + 10;
        let mut f = Framing::Header(Vec::new());
        assert_eq!(f.feed(b"400;chunk-signature=ab"), None);
        assert_eq!(f.feed(b"cd\r\n"), None);
        assert_eq!(f, Framing::Data(0x400));
        let mut frame = vec![b'x'; 0x400];
        frame.extend_from_slice(format!("\r\n{big:x}\r\n").as_bytes());
        assert_eq!(f.feed(&frame), Some(big));
        assert_eq!(f, Framing::Data(big));
        let rest = vec![b'y'; big as usize];
        assert_eq!(f.feed(&rest), None);
        assert_eq!(
            f.feed(b"\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"),
            None
        );
        assert_eq!(f, Framing::Done);
        let mut bad = Framing::Header(Vec::new());
        assert_eq!(bad.feed(b"zz\r\n"), None);
        assert_eq!(bad, Framing::Done);
    }
}
