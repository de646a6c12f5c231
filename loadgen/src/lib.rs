//! `roundtable-loadgen`: R rooms × P participants against a running Roundtable server, over the
//! real protocol with real WebRTC, measuring join time, forwarding rate, loss, one-way latency,
//! and the server's CPU per forwarded packet and memory (issue #3).
//!
//! [`client`] is the one webrtc-rs client of our protocol; the integration tests use it too.
//! [`run::run`] drives a [`scenario::Scenario`] and returns a [`report::Report`].

pub mod admin;
pub mod client;
pub mod janus;
pub mod process;
pub mod report;
pub mod run;
pub mod sansio;
pub mod scenario;
pub mod stats;
