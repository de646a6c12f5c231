//! Integration tests: the real server on 127.0.0.1:0, real SQLite and PostgreSQL, real WebRTC peers.

mod agenda;
mod bad_input;
mod bounds;
mod common;
mod gate;
mod hardening;
mod http_api;
mod invites;
mod lifecycle;
mod moderation;
mod observability;
mod offer_order;
mod pg;
mod record;
mod record_mix;
mod record_video;
mod room_flow;
mod sdp;
mod store;
