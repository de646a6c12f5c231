//! Roundtable's sans-IO core: the wire protocol, the room state machine and the rules they
//! share (display names, the message rate).
//!
//! Nothing here does IO, spawns, locks or reads a clock. Callers pass the time in as [`Now`]
//! and carry out what [`room::Room::poll_output`] asks for. That keeps every rule (capacity,
//! chat limits, who consumes which track) testable without sockets or sleeping.

pub mod agenda;
pub mod limits;
pub mod name;
pub mod policy;
pub mod roles;
pub mod room;
pub mod stats;
pub mod wire;

/// The time, as the caller read it. Monotonic for timers, wall-clock for what people see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time, for durations and timers.
    pub instant: std::time::Instant,
    /// Unix time in milliseconds, for timestamps shown to people.
    pub unix_ms: i64,
}
