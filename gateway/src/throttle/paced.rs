//! A body paced by the bandwidth limiters of its request: each data frame
//! is let through in pieces of at most the configured burst, each piece
//! once every limiter on its way has room for it. Waiting happens here, so
//! an upload reads its socket no faster than its limit (TCP pushes back on
//! the client) and a download is written no faster than its limit; neither
//! ever fails for being paced.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

use super::{Direction, THROTTLE, ThrottleSlot};

pub struct Paced<B> {
    inner: B,
    slot: ThrottleSlot,
    dir: Direction,
    /// Data received and not yet let through.
    pending: Option<Bytes>,
    /// Limiters the current piece has passed.
    stage: usize,
    sleep: Option<Pin<Box<Sleep>>>,
    /// When the current piece began to wait at the current stage.
    waiting_since: Option<Instant>,
}

impl<B> Paced<B> {
    pub fn new(inner: B, slot: ThrottleSlot, dir: Direction) -> Self {
        Self {
            inner,
            slot,
            dir,
            pending: None,
            stage: 0,
            sleep: None,
            waiting_since: None,
        }
    }
}

impl<B> Paced<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    /// Lets the next piece of `pending` through, or says when to look again.
    fn release(&mut self, cx: &mut Context<'_>) -> Poll<Bytes> {
        loop {
            if let Some(sleep) = &mut self.sleep {
                ready!(sleep.as_mut().poll(cx));
                self.sleep = None;
            }
            let Some(pacer) = self.slot.pacer().cloned() else {
                return Poll::Ready(self.pending.take().unwrap_or_default());
            };
            let len = self.pending.as_ref().map_or(0, Bytes::len);
            let piece = len.min(pacer.piece.max(1));
            let cells = u32::try_from(piece.div_ceil(super::CELL as usize).max(1))
                .ok()
                .and_then(std::num::NonZeroU32::new)
                .unwrap_or(std::num::NonZeroU32::MIN);
            while let Some(l) = pacer.limiters.get(self.stage) {
                let Some(limiter) = l.bandwidth(self.dir) else {
                    self.stage += 1;
                    continue;
                };
                match limiter.check_n(cells) {
                    // More cells than the burst cannot happen (pieces are
                    // at most the burst); let it through rather than stall.
                    Ok(Ok(())) | Err(_) => {
                        if let Some(since) = self.waiting_since.take() {
                            THROTTLE.delayed(l.scope, self.dir, since.elapsed());
                        }
                        self.stage += 1;
                    }
                    Ok(Err(not_until)) => {
                        let wait = not_until.wait_time_from(Instant::now());
                        self.waiting_since.get_or_insert_with(Instant::now);
                        self.slot.mark_paced();
                        self.sleep = Some(Box::pin(tokio::time::sleep(wait)));
                        break;
                    }
                }
            }
            if self.sleep.is_some() {
                continue;
            }
            self.stage = 0;
            let out = match &mut self.pending {
                Some(data) if data.len() > piece => data.split_to(piece),
                _ => self.pending.take().unwrap_or_default(),
            };
            return Poll::Ready(out);
        }
    }
}

impl<B> Body for Paced<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        if this.pending.is_some() {
            let data = ready!(this.release(cx));
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    let paces = this.slot.pacer().is_some_and(|p| p.paces(this.dir));
                    if !paces || data.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    this.pending = Some(data);
                    let data = ready!(this.release(cx));
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            other => Poll::Ready(other),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let held = self.pending.as_ref().map_or(0, |d| d.len() as u64);
        let inner = self.inner.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + held);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + held);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    fn body(pieces: usize, size: usize) -> impl Body<Data = Bytes, Error = std::io::Error> + Unpin {
        let frames = (0..pieces)
            .map(move |i| Ok::<_, std::io::Error>(Frame::data(Bytes::from(vec![i as u8; size]))));
        StreamBody::new(futures::stream::iter(frames))
    }

    #[tokio::test]
    async fn a_paced_body_keeps_every_byte_in_order_and_takes_its_time() {
        let mut cfg = LimitsConfig::default();
        cfg.key.ingress = Some(ByteRate::parse("512KiB/s").unwrap());
        cfg.burst = ByteSize::parse("64KiB").unwrap();
        let t = Throttle::new(&cfg);
        let slot = ThrottleSlot::default();
        let who = Subject {
            key: Some("K"),
            ..Default::default()
        };
        t.admit(&who, Some(&slot)).unwrap();
        let started = Instant::now();
        // 1 MiB in 4 frames of 256 KiB, each cut into 64 KiB pieces.
        let paced = Paced::new(body(4, 256 * 1024), slot.clone(), Direction::Ingress);
        let mut frames = 0;
        let mut got = Vec::new();
        let mut stream = paced;
        while let Some(f) = stream.frame().await {
            let d = f.unwrap().into_data().unwrap();
            assert!(d.len() <= 64 * 1024);
            frames += 1;
            got.extend_from_slice(&d);
        }
        assert_eq!(frames, 16);
        let want: Vec<u8> = (0..4u8).flat_map(|i| vec![i; 256 * 1024]).collect();
        assert_eq!(got, want);
        // (1 MiB - the 64 KiB burst) at 512 KiB/s takes at least 1.875 s.
        assert!(started.elapsed() >= std::time::Duration::from_millis(1800));
        assert_eq!(slot.outcome(), "paced");
        // The other direction is not limited: no pacing, no pieces.
        let egress = Paced::new(body(1, 256 * 1024), slot, Direction::Egress);
        let all = egress.collect().await.unwrap().to_bytes();
        assert_eq!(all.len(), 256 * 1024);
    }
}
