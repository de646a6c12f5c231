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
}

/// What a plane holds right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlaneStats {
    /// Open peer connections (each with its socket).
    pub connections: usize,
    /// Running media tasks: sessions, producer readers, consumer writers, feedback relays.
    pub tasks: usize,
}

struct Guard(Arc<AtomicUsize>, usize);

impl Drop for Guard {
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
        let guard = Guard(self.tasks.clone(), 1);
        tokio::spawn(async move {
            let _guard = guard;
            fut.await
        })
    }

    /// Count `n` peer connections as open until the returned guard drops.
    pub fn connections(&self, n: usize) -> impl Drop + Send + use<> {
        self.connections.fetch_add(n, Ordering::Relaxed);
        Guard(self.connections.clone(), n)
    }

    /// The current counts.
    pub fn stats(&self) -> PlaneStats {
        PlaneStats {
            connections: self.connections.load(Ordering::Relaxed),
            tasks: self.tasks.load(Ordering::Relaxed),
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
        drop(conns);
        assert_eq!(gauge.stats(), PlaneStats::default());
    }
}
