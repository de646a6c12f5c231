//! Counting tasks, so that shutdown can wait for them: each holds a [`Running`] token while
//! it runs, and [`Tasks::idle`] resolves when none is left.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// A count of running tasks of one kind.
#[derive(Clone, Default)]
pub struct Tasks {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    running: AtomicUsize,
    idle: Notify,
}

/// Held by a running task; dropping it counts the task as finished.
pub struct Running {
    inner: Arc<Inner>,
}

impl Tasks {
    /// Count a task as running until the token drops.
    pub fn enter(&self) -> Running {
        self.inner.running.fetch_add(1, Ordering::AcqRel);
        Running {
            inner: self.inner.clone(),
        }
    }

    /// Spawn `task`, counted while it runs.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let running = self.enter();
        tokio::spawn(async move {
            let out = task.await;
            drop(running);
            out
        })
    }

    /// How many are running now.
    pub fn running(&self) -> usize {
        self.inner.running.load(Ordering::Acquire)
    }

    /// Resolves once none is running.
    pub async fn idle(&self) {
        loop {
            let notified = self.inner.idle.notified();
            if self.running() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.inner.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inner.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_waits_for_the_last_token() {
        let tasks = Tasks::default();
        tasks.idle().await;
        let (a, b) = (tasks.enter(), tasks.enter());
        let waiter = tokio::spawn({
            let tasks = tasks.clone();
            async move { tasks.idle().await }
        });
        drop(a);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(b);
        waiter.await.unwrap();
        assert_eq!(tasks.running(), 0);
    }
}
