//! Counts of what the media plane holds, kept by guards so that nothing can forget to count
//! down: a task's guard drops when it finishes or is aborted.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::task::JoinHandle;

/// Live peer connections and tasks of one media plane.
#[derive(Debug, Default, Clone)]
pub struct Gauge {
    connections: Arc<AtomicUsize>,
    tasks: Arc<AtomicUsize>,
    producers: Arc<AtomicUsize>,
    consumers: Arc<AtomicUsize>,
}

/// What a plane holds right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct PlaneStats {
    /// Open peer connections (each with its socket).
    pub connections: usize,
    /// Running per-session media tasks: sessions, producer readers, consumer writers,
    /// feedback relays (the webrtc-rs plane; the single-socket plane has one loop and none).
    pub tasks: usize,
    /// Published tracks being forwarded.
    pub producers: usize,
    /// Forwarded (track, subscriber) pairs.
    pub consumers: usize,
    /// Datagrams that reached the shared media socket from no known connection, since start
    /// (dropped; the single-socket plane only).
    pub unrouted: u64,
    /// Datagrams dropped since start because the media socket's send buffer was full.
    pub send_dropped: u64,
    /// Datagrams the kernel refused since start for another reason (an unreachable peer).
    pub send_failed: u64,
}

impl PlaneStats {
    /// Whether the plane holds nothing: no connection, task, producer or consumer.
    pub fn is_idle(&self) -> bool {
        (self.connections, self.tasks, self.producers, self.consumers) == (0, 0, 0, 0)
    }
}

/// Holds a count up until it drops.
#[must_use]
pub struct Count(Arc<AtomicUsize>, usize);

impl Drop for Count {
    fn drop(&mut self) {
        self.0.fetch_sub(self.1, Ordering::Relaxed);
    }
}

impl Gauge {
    /// Spawn a task that counts as live until it ends or is aborted.
    pub fn spawn<F>(&self, fut: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tasks.fetch_add(1, Ordering::Relaxed);
        let guard = Count(self.tasks.clone(), 1);
        tokio::spawn(async move {
            let _guard = guard;
            fut.await
        })
    }

    /// Count `n` peer connections as open until the returned guard drops.
    pub fn connections(&self, n: usize) -> Count {
        self.connections.fetch_add(n, Ordering::Relaxed);
        Count(self.connections.clone(), n)
    }

    /// Count a producer as live until the returned guard drops.
    pub fn producer(&self) -> Count {
        self.producers.fetch_add(1, Ordering::Relaxed);
        Count(self.producers.clone(), 1)
    }

    /// Count a consumer as live until the returned guard drops.
    pub fn consumer(&self) -> Count {
        self.consumers.fetch_add(1, Ordering::Relaxed);
        Count(self.consumers.clone(), 1)
    }

    /// The current counts.
    pub fn stats(&self) -> PlaneStats {
        PlaneStats {
            connections: self.connections.load(Ordering::Relaxed),
            tasks: self.tasks.load(Ordering::Relaxed),
            producers: self.producers.load(Ordering::Relaxed),
            consumers: self.consumers.load(Ordering::Relaxed),
            unrouted: 0,
            send_dropped: 0,
            send_failed: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn aborted_and_finished_tasks_count_down() {
        let gauge = Gauge::default();
        let done = gauge.spawn(async {});
        let stuck = gauge.spawn(std::future::pending::<()>());
        done.await.unwrap();
        assert_eq!(gauge.stats().tasks, 1);
        stuck.abort();
        assert!(stuck.await.unwrap_err().is_cancelled());
        assert_eq!(gauge.stats().tasks, 0);
        let conns = gauge.connections(2);
        assert_eq!(gauge.stats().connections, 2);
        let (p, c) = (gauge.producer(), gauge.consumer());
        assert_eq!((gauge.stats().producers, gauge.stats().consumers), (1, 1));
        drop((conns, p, c));
        assert_eq!(gauge.stats(), PlaneStats::default());
    }
}
