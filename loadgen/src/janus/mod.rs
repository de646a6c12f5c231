//! The Janus adapter: the same load against Janus 1.x's videoroom plugin, for the side-by-side
//! benchmark (issue #3). Janus's JSON API over a WebSocket (subprotocol `janus-protocol`);
//! participants use the same webrtc-rs peers, [`crate::client::PublishPlan`] and
//! [`crate::client::MediaLog`] as our own client, so every figure is computed identically.
//!
//! [`proto`] is the API as pure data (unit-tested), [`session`] one session on one socket,
//! [`participant`] one participant's publisher and subscriber.

pub mod participant;
pub mod proto;
pub mod session;

pub use participant::Participant;

use anyhow::Context;

use proto::videoroom;
use session::Session;

/// Create `count` videorooms for up to `publishers` publishers each; returns their ids.
pub async fn create_rooms(
    url: &str,
    name: &str,
    count: usize,
    publishers: usize,
) -> anyhow::Result<Vec<u64>> {
    let session = Session::connect(url).await?;
    let handle = session.attach().await?;
    let requester = session.requester();
    let mut rooms = Vec::with_capacity(count);
    for i in 0..count {
        let body = videoroom::create(&format!("loadgen {name} {}", i + 1), publishers);
        let (created, _) = requester
            .message(handle.id, body, None)
            .await
            .context("creating a videoroom")?;
        rooms.push(
            created["room"]
                .as_u64()
                .context("created without a room id")?,
        );
    }
    session.close().await;
    Ok(rooms)
}
