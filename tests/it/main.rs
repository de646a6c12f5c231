//! Integration tests: the real server on 127.0.0.1:0, real SQLite and PostgreSQL, real WebRTC peers.

mod pg;
mod store;
