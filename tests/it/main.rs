//! Integration tests: the real server on 127.0.0.1:0, real SQLite and PostgreSQL, real WebRTC peers.

mod bad_input;
mod client;
mod common;
mod http_api;
mod pg;
mod room_flow;
mod store;
