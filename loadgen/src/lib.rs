//! `roundtable-loadgen`: R rooms × P participants against a running Roundtable server, over the
//! real protocol with real WebRTC, measuring join time, forwarding rate, loss, one-way latency,
//! and the server's CPU per forwarded packet and memory (issue #3).
//!
//! [`client`] is a client of our protocol on webrtc-rs's async peers; the integration tests and
//! the Janus adapter use it too. [`sansio`] is a lighter one for load runs (`--client sansio`).
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
