//! The room's chat log: numbers messages, holds them until the store has committed them, and
//! keeps the recent history that joiners get.
//!
//! A message is shown to nobody before it is committed. Its `seq` is taken when it is
//! accepted and never handed out again in this room's life, even when its write fails: the
//! next message takes a higher one. Numbers are only reused after a restart, and only those
//! of messages that were never committed, so never shown.

use std::collections::VecDeque;

use super::ConnId;
use crate::wire::{CHAT_HISTORY_LEN, ChatMessage};

/// Accepted messages waiting for the store, and the committed tail of the log.
#[derive(Debug)]
pub(super) struct ChatLog {
    /// Committed messages, oldest first, at most [`CHAT_HISTORY_LEN`].
    history: VecDeque<ChatMessage>,
    /// Accepted, not yet committed, in `seq` order, with the sender's connection.
    pending: VecDeque<(ConnId, ChatMessage)>,
    next_seq: i64,
}

impl ChatLog {
    /// A log that continues after `history` (committed messages, oldest first).
    pub(super) fn new(history: &[ChatMessage]) -> Self {
        let next_seq = history.last().map_or(1, |m| m.seq + 1);
        let skip = history.len().saturating_sub(CHAT_HISTORY_LEN);
        ChatLog {
            history: history[skip..].iter().cloned().collect(),
            pending: VecDeque::new(),
            next_seq,
        }
    }

    /// The committed messages a joiner gets, oldest first.
    pub(super) fn history(&self) -> impl Iterator<Item = &ChatMessage> {
        self.history.iter()
    }

    /// How many accepted messages wait for the store.
    pub(super) fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Number `message` (its `seq` is overwritten) and hold it until the store answers.
    pub(super) fn accept(&mut self, conn: ConnId, mut message: ChatMessage) -> ChatMessage {
        message.seq = self.next_seq;
        self.next_seq += 1;
        self.pending.push_back((conn, message.clone()));
        message
    }

    /// The store committed every message up to `seq`: they join the history and are
    /// returned in order, to go out.
    pub(super) fn stored(&mut self, seq: i64) -> Vec<ChatMessage> {
        let done = self.take_up_to(seq);
        let messages: Vec<ChatMessage> = done.into_iter().map(|(_, m)| m).collect();
        self.history.extend(messages.iter().cloned());
        let excess = self.history.len().saturating_sub(CHAT_HISTORY_LEN);
        self.history.drain(..excess);
        messages
    }

    /// The store failed to commit the messages up to `seq`: they are dropped, their numbers
    /// burnt. Returns their senders' connections, in order.
    pub(super) fn failed(&mut self, seq: i64) -> Vec<ConnId> {
        self.take_up_to(seq)
            .into_iter()
            .map(|(conn, _)| conn)
            .collect()
    }

    fn take_up_to(&mut self, seq: i64) -> Vec<(ConnId, ChatMessage)> {
        let n = self.pending.partition_point(|(_, m)| m.seq <= seq);
        self.pending.drain(..n).collect()
    }
}
