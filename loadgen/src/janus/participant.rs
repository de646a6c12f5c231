//! One load-generator participant in a Janus videoroom: the same webrtc-rs peers, the same
//! [`PublishPlan`] and the same [`MediaLog`] as our own client, behind Janus's signaling.
//!
//! Per participant: one session on one WebSocket; a publisher handle (`join`, then `configure`
//! with our offer); a subscriber handle with one peer connection for everyone else in the room
//! (`join` as subscriber to the publishers present, `update` as more arrive, each of Janus's
//! offers answered with `start`). Like our server, one subscription negotiation at a time, with
//! publishers that arrive meanwhile folded into the next one.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use roundtable_peer::{self as peer, PeerNet};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionEventHandler, RTCPeerConnectionIceEvent, RTCSessionDescription,
};

use super::proto::{self, Incoming, Jsep, Request, videoroom};
use super::session::{Handle, Requester, Session};
use crate::client::media_log;
use crate::client::{MediaLog, PublishPlan, Tracks};
use crate::stats::now_ns;

/// A participant joined to a Janus videoroom, publishing and subscribing.
pub struct Participant {
    /// Its publisher id in the room (Janus's feed id), as the stats name publishers.
    pub id: String,
    /// What it received.
    pub media: Arc<MediaLog>,
    /// When it started to open its WebSocket ([`now_ns`] clock).
    pub opened_at_ns: u64,
    /// When Janus's answer to its publish offer arrived.
    pub answered_at_ns: Option<u64>,
    /// RTP packets it has sent.
    pub sent: Arc<AtomicU64>,
    session: Session,
    publish: Arc<dyn PeerConnection>,
    subscribe: Arc<dyn PeerConnection>,
    tasks: Vec<JoinHandle<()>>,
}

/// Which publisher each incoming SSRC belongs to, filled from Janus's subscriber offers before
/// they are applied, so before any of their tracks can fire.
type SsrcPublishers = Arc<Mutex<HashMap<u32, u64>>>;

struct Handler {
    requests: Requester,
    handle: u64,
    media: Arc<MediaLog>,
    publishers: SsrcPublishers,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        let Some(c) = peer::candidate_to_wire(&event.candidate) else {
            return;
        };
        // Bundled: every candidate belongs to the first media section.
        let mid = c.sdp_mid.filter(|m| !m.is_empty()).unwrap_or("0".into());
        let index = c.sdp_m_line_index.or(Some(0));
        self.requests.send(Request::Trickle {
            session: self.requests.session(),
            handle: self.handle,
            candidate: proto::trickle_candidate(&c.candidate, Some(&mid), index),
        });
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let (media, publishers) = (self.media.clone(), self.publishers.clone());
        tokio::spawn(async move {
            let ssrcs = track.ssrcs().await;
            let known = {
                let map = publishers.lock().unwrap();
                ssrcs.iter().find_map(|s| map.get(s).copied())
            };
            let publisher = match known {
                Some(feed) => feed.to_string(),
                None => format!("unknown:{}", track.stream_id().await),
            };
            media_log::receive(media, track, publisher).await;
        });
    }
}

impl Participant {
    /// Open a session to Janus at `url`, join `room` as `name`, publish `plan`, and subscribe
    /// to everyone else who publishes in the room, now or later.
    pub async fn join(
        url: &str,
        room: u64,
        name: &str,
        plan: PublishPlan,
        net: &PeerNet,
    ) -> anyhow::Result<Participant> {
        let opened_at_ns = now_ns();
        let session = Session::connect(url).await?;
        let media = Arc::new(MediaLog::new(false));
        let ssrc_publishers = SsrcPublishers::default();
        let handler = |handle: u64| {
            Arc::new(Handler {
                requests: session.requester(),
                handle,
                media: media.clone(),
                publishers: ssrc_publishers.clone(),
            })
        };
        let publisher = session.attach().await?;
        let subscriber = session.attach().await?;
        let publish = peer::build(
            net,
            handler(publisher.id),
            peer::Side::Client,
            peer::Flow::Send,
        )
        .await?;
        let subscribe = peer::build(
            net,
            handler(subscriber.id),
            peer::Side::Client,
            peer::Flow::Receive,
        )
        .await?;

        let requester = session.requester();
        let (joined, _) = requester
            .message(publisher.id, videoroom::join_publisher(room, name), None)
            .await
            .context("joining as publisher")?;
        let id = joined["id"].as_u64().context("joined without an id")?;
        let private_id = joined["private_id"].as_u64();
        let present = proto::publishers(&joined);

        // Subscriptions run beside publishing, as our server's do.
        let (feeds_tx, feeds_rx) = mpsc::unbounded_channel();
        let _ = feeds_tx.send(present);
        let mut tasks = vec![tokio::spawn(forward_publishers(publisher.news, feeds_tx))];
        let subscriptions = Subscriptions {
            requester: requester.clone(),
            handle: subscriber,
            room,
            private_id,
            pc: subscribe.clone(),
            ssrc_publishers,
            own_id: id,
        };

        let sent = Arc::new(AtomicU64::new(0));
        let tracks = Tracks::add(&publish, &id.to_string(), plan).await?;
        let offer = publish.create_offer(None).await?;
        publish.set_local_description(offer.clone()).await?;
        let (_, answer) = requester
            .message(
                publisher.id,
                videoroom::configure(),
                Some(Jsep::offer(offer.sdp)),
            )
            .await
            .context("publishing")?;
        let answer = answer.context("configure answered without SDP")?;
        publish
            .set_remote_description(RTCSessionDescription::answer(answer.sdp)?)
            .await?;
        let answered_at_ns = Some(now_ns());
        tasks.extend(tracks.start(&media, &sent).await?);
        tasks.push(tokio::spawn(subscriptions.run(feeds_rx)));
        Ok(Participant {
            id: id.to_string(),
            media,
            opened_at_ns,
            answered_at_ns,
            sent,
            session,
            publish,
            subscribe,
            tasks,
        })
    }

    /// Packets this participant has sent so far.
    pub fn sent_packets(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Close the peer connections and the session.
    pub async fn drop_connection(self) {
        for t in &self.tasks {
            t.abort();
        }
        let _ = self.publish.close().await;
        let _ = self.subscribe.close().await;
        self.session.close().await;
    }
}

/// Pass on the ids of publishers Janus announces on the publisher handle.
async fn forward_publishers(
    mut news: mpsc::UnboundedReceiver<Incoming>,
    feeds: mpsc::UnboundedSender<Vec<u64>>,
) {
    while let Some(incoming) = news.recv().await {
        if let Some(data) = incoming.plugin_data() {
            let arrived = proto::publishers(data);
            if !arrived.is_empty() && feeds.send(arrived).is_err() {
                return;
            }
        }
    }
}

/// The subscriber side: one peer connection, renegotiated one batch of publishers at a time.
struct Subscriptions {
    requester: Requester,
    handle: Handle,
    room: u64,
    private_id: Option<u64>,
    pc: Arc<dyn PeerConnection>,
    ssrc_publishers: SsrcPublishers,
    own_id: u64,
}

impl Subscriptions {
    async fn run(self, mut feeds: mpsc::UnboundedReceiver<Vec<u64>>) {
        let mut subscribed = HashSet::new();
        let mut joined = false;
        while let Some(first) = feeds.recv().await {
            let mut batch: Vec<u64> = first;
            while let Ok(more) = feeds.try_recv() {
                batch.extend(more);
            }
            batch.retain(|f| *f != self.own_id && subscribed.insert(*f));
            if batch.is_empty() {
                continue;
            }
            let body = if joined {
                videoroom::subscribe(&batch)
            } else {
                videoroom::join_subscriber(self.room, self.private_id, &batch)
            };
            match self.negotiate(body).await {
                Ok(()) => joined = true,
                Err(e) => {
                    eprintln!("janus: subscribing to {batch:?} failed: {e:#}");
                    for f in batch {
                        subscribed.remove(&f);
                    }
                }
            }
        }
    }

    /// Send `body` (join or update), answer Janus's offer, and `start`.
    async fn negotiate(&self, body: serde_json::Value) -> anyhow::Result<()> {
        let (data, jsep) = self.requester.message(self.handle.id, body, None).await?;
        let Some(offer) = jsep else {
            return Ok(());
        };
        let map = proto::ssrc_publishers(&offer.sdp, &data);
        self.ssrc_publishers.lock().unwrap().extend(map);
        self.pc
            .set_remote_description(RTCSessionDescription::offer(offer.sdp)?)
            .await?;
        let answer = self.pc.create_answer(None).await?;
        self.pc.set_local_description(answer.clone()).await?;
        self.requester
            .message(
                self.handle.id,
                videoroom::start(),
                Some(Jsep::answer(answer.sdp)),
            )
            .await?;
        Ok(())
    }
}
