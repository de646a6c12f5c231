//! What one WebSocket sends: a queue bounded in bytes, drained by a writer task of its own.
//! A client that stops reading blocks only its writer; the connection's task goes on reading,
//! pinging and timing out, and closes it when the queue passes its bound or a write stalls.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The sending half of a WebSocket.
pub type Sink = SplitSink<WebSocket, Message>;

/// Bytes queued for every WebSocket together, now and at most since start (for tests and
/// operators).
#[derive(Debug, Default)]
pub struct Gauge {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl Gauge {
    /// Bytes queued now.
    pub fn now(&self) -> usize {
        self.now.load(Ordering::Acquire)
    }

    /// The most ever queued at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Acquire)
    }

    fn add(&self, n: usize) {
        let now = self.now.fetch_add(n, Ordering::AcqRel) + n;
        self.peak.fetch_max(now, Ordering::AcqRel);
    }

    fn sub(&self, n: usize) {
        self.now.fetch_sub(n, Ordering::AcqRel);
    }
}

/// How the writer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It sent the close frame, or the queue was closed.
    Done,
    /// A write took longer than the write timeout: the client does not read.
    Stalled,
    /// The socket failed.
    Broken,
}

/// The queue would pass its bound.
#[derive(Debug)]
pub struct Overflow;

/// One WebSocket's outgoing queue and its writer.
pub struct Outbox {
    tx: mpsc::UnboundedSender<Message>,
    /// Bytes waiting behind the frame being written.
    queued: Arc<AtomicUsize>,
    limit: usize,
    gauge: Arc<Gauge>,
    write_timeout: Duration,
    writer: JoinHandle<Ended>,
    ended: Option<Ended>,
}

impl Outbox {
    /// Start the writer. At most `limit` bytes wait; a write may take `write_timeout`.
    pub fn start(sink: Sink, limit: usize, write_timeout: Duration, gauge: Arc<Gauge>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let counts = Counts {
            queued: queued.clone(),
            gauge: gauge.clone(),
        };
        let writer = tokio::spawn(write(sink, rx, counts, write_timeout));
        Outbox {
            tx,
            queued,
            limit,
            gauge,
            write_timeout,
            writer,
            ended: None,
        }
    }

    /// Queue a frame. A frame always fits an empty queue (the first, `joined`, may be the
    /// largest); otherwise `Err` when the bytes waiting would pass the bound.
    pub fn push(&self, msg: Message) -> Result<(), Overflow> {
        let n = frame_len(&msg);
        let queued = self.queued.load(Ordering::Acquire);
        if queued > 0 && queued + n > self.limit {
            return Err(Overflow);
        }
        self.enqueue(msg);
        Ok(())
    }

    fn enqueue(&self, msg: Message) {
        let n = frame_len(&msg);
        self.queued.fetch_add(n, Ordering::AcqRel);
        self.gauge.add(n);
        if self.tx.send(msg).is_err() {
            // The writer has ended; `ended()` says why.
            self.queued.fetch_sub(n, Ordering::AcqRel);
            self.gauge.sub(n);
        }
    }

    /// Resolves when the writer ends by itself (a stalled or broken socket).
    pub async fn ended(&mut self) -> Ended {
        if let Some(ended) = self.ended {
            return ended;
        }
        let ended = (&mut self.writer).await.unwrap_or(Ended::Broken);
        self.ended = Some(ended);
        ended
    }

    /// Send the close frame, if any, after what is queued, and wait for the writer for at
    /// most the write timeout.
    pub async fn close(mut self, frame: Option<CloseFrame>) {
        if self.ended.is_some() {
            return;
        }
        if let Some(frame) = frame {
            self.enqueue(Message::Close(Some(frame)));
        }
        drop(self.tx);
        if tokio::time::timeout(self.write_timeout, &mut self.writer)
            .await
            .is_err()
        {
            self.writer.abort();
        }
    }
}

/// What the writer keeps count in.
struct Counts {
    queued: Arc<AtomicUsize>,
    gauge: Arc<Gauge>,
}

impl Counts {
    fn taken(&self, msg: &Message) {
        let n = frame_len(msg);
        self.queued.fetch_sub(n, Ordering::AcqRel);
        self.gauge.sub(n);
    }
}

async fn write(
    mut sink: Sink,
    mut rx: mpsc::UnboundedReceiver<Message>,
    counts: Counts,
    write_timeout: Duration,
) -> Ended {
    let ended = loop {
        let Some(msg) = rx.recv().await else {
            break Ended::Done;
        };
        counts.taken(&msg);
        let close = matches!(msg, Message::Close(_));
        match tokio::time::timeout(write_timeout, sink.send(msg)).await {
            Ok(Ok(())) if close => break Ended::Done,
            Ok(Ok(())) => {}
            Ok(Err(_)) => break Ended::Broken,
            Err(_) => break Ended::Stalled,
        }
    };
    rx.close();
    while let Ok(msg) = rx.try_recv() {
        counts.taken(&msg);
    }
    ended
}

fn frame_len(msg: &Message) -> usize {
    match msg {
        Message::Text(t) => t.len(),
        Message::Binary(b) | Message::Ping(b) | Message::Pong(b) => b.len(),
        Message::Close(f) => 2 + f.as_ref().map_or(0, |f| f.reason.len()),
    }
}
