//! A Roundtable client on webrtc-rs, speaking the real protocol: a WebSocket, a `publish`
//! peer connection that sends synthetic Opus and VP8 RTP, and a `subscribe` one whose every
//! received packet is accounted for. Integration tests judge media by what it received; the
//! load generator runs many of them at once.

pub(crate) mod media_log;
pub(crate) mod publisher;
pub(crate) mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::StreamExt;
use roundtable_peer::{self as peer, PeerNet};
use signaling::wire::{self, ClientMsg, PcRole, ServerMsg};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionEventHandler, RTCPeerConnectionIceEvent, RTCSessionDescription,
};

pub use media_log::{MediaLog, Received};
pub use publisher::{Keyframes, PublishPlan, TrackPlan, Tracks, VideoCodec};
pub use ws::{Ws, connect, join, join_invited};

use crate::stats::now_ns;

/// How long any single wait may take before it fails. Generous: 2 shared cores.
pub const WAIT: Duration = Duration::from_secs(30);

/// Choices made when joining.
#[derive(Debug, Clone, Copy, Default)]
pub struct JoinOptions {
    /// Keep every received packet, not only running statistics (tests that check sequence
    /// numbers one by one want this; a long load run must not).
    pub packet_log: bool,
    /// Agree to be recorded at join.
    pub consent: bool,
}

/// A joined client.
pub struct Client {
    /// This client's participant id.
    pub id: String,
    /// The `joined` message.
    pub joined: ServerMsg,
    /// What it received.
    pub media: Arc<MediaLog>,
    /// When it started to open its WebSocket ([`now_ns`] clock).
    pub opened_at_ns: u64,
    /// When its publish answer arrived, if it published: signaling alone, no media yet.
    pub answered_at_ns: Option<u64>,
    /// RTP packets it has sent, over all its tracks.
    pub sent: Arc<AtomicU64>,
    out: mpsc::UnboundedSender<ClientMsg>,
    events: mpsc::UnboundedReceiver<ServerMsg>,
    publish: Arc<dyn PeerConnection>,
    subscribe: Arc<dyn PeerConnection>,
    tasks: Vec<JoinHandle<()>>,
}

struct Handler {
    role: PcRole,
    out: mpsc::UnboundedSender<ClientMsg>,
    media: Arc<MediaLog>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        let Some(candidate) = peer::candidate_to_wire(&event.candidate) else {
            return;
        };
        let _ = self.out.send(ClientMsg::Candidate {
            pc: self.role,
            candidate,
        });
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let media = self.media.clone();
        tokio::spawn(async move {
            // Our server names each forwarded track's stream after its publisher.
            let publisher = track.stream_id().await;
            media_log::receive(media, track, publisher).await;
        });
    }
}

impl Client {
    /// Connect, join `room` as `name`, and set up both peer connections, keeping a log of
    /// every received packet (what the integration tests want).
    pub async fn join(addr: SocketAddr, room: &str, name: &str) -> anyhow::Result<Client> {
        Self::join_with(
            addr,
            room,
            name,
            JoinOptions {
                packet_log: true,
                ..JoinOptions::default()
            },
        )
        .await
    }

    /// Connect, join `room` as `name` with an invite's secret, and set up both peer
    /// connections, keeping a log of every received packet.
    pub async fn join_invited(
        addr: SocketAddr,
        room: &str,
        name: &str,
        invite: &str,
    ) -> anyhow::Result<Client> {
        let options = JoinOptions {
            packet_log: true,
            ..JoinOptions::default()
        };
        Self::join_full(addr, room, name, Some(invite), options).await
    }

    /// Connect, join `room` as `name`, and set up both peer connections.
    pub async fn join_with(
        addr: SocketAddr,
        room: &str,
        name: &str,
        options: JoinOptions,
    ) -> anyhow::Result<Client> {
        Self::join_full(addr, room, name, None, options).await
    }

    /// Connect, join `room` as `name`, with an invite's secret if given, and set up both
    /// peer connections, as `options` say.
    pub async fn join_full(
        addr: SocketAddr,
        room: &str,
        name: &str,
        invite: Option<&str>,
        options: JoinOptions,
    ) -> anyhow::Result<Client> {
        let opened_at_ns = now_ns();
        let (ws, id, joined) =
            ws::join_consenting(addr, room, name, invite, options.consent).await?;
        let (out, out_rx) = mpsc::unbounded_channel();
        let media = Arc::new(MediaLog::new(options.packet_log));
        let handler = |role| {
            Arc::new(Handler {
                role,
                out: out.clone(),
                media: media.clone(),
            })
        };
        let publish = peer::build(
            &PeerNet::loopback(),
            handler(PcRole::Publish),
            peer::Side::Client,
            peer::Flow::Send,
        )
        .await?;
        let subscribe = peer::build(
            &PeerNet::loopback(),
            handler(PcRole::Subscribe),
            peer::Side::Client,
            peer::Flow::Receive,
        )
        .await?;
        let (events_tx, events) = mpsc::unbounded_channel();
        let pcs = (publish.clone(), subscribe.clone());
        let driver = tokio::spawn(drive(ws, out_rx, out.clone(), events_tx, pcs));
        Ok(Client {
            id,
            joined,
            media,
            opened_at_ns,
            answered_at_ns: None,
            sent: Arc::default(),
            out,
            events,
            publish,
            subscribe,
            tasks: vec![driver],
        })
    }

    /// Publish one Opus and one VP8 track and send `packets` packets on the video track and
    /// half as many on the audio one, paced like real media (audio every 20 ms, video every
    /// 10 ms). Payload counters equal sequence numbers, so receivers can check integrity.
    pub async fn publish(&mut self, packets: u16) -> anyhow::Result<()> {
        self.publish_plan(PublishPlan::counted(packets)).await
    }

    /// Publish the tracks `plan` names, negotiate, and start sending on each.
    pub async fn publish_plan(&mut self, plan: PublishPlan) -> anyhow::Result<()> {
        let tracks = Tracks::add(&self.publish, &self.id, plan).await?;
        let offer = self.publish.create_offer(None).await?;
        self.publish.set_local_description(offer.clone()).await?;
        self.out.send(ClientMsg::Offer {
            pc: PcRole::Publish,
            sdp: offer.sdp,
        })?;
        // Only once the answer is applied are the tracks bound and payload types final.
        self.expect("the publish answer", |m| {
            matches!(
                m,
                ServerMsg::Answer {
                    pc: PcRole::Publish,
                    ..
                }
            )
        })
        .await?;
        self.answered_at_ns = Some(now_ns());
        let tasks = tracks.start(&self.media, &self.sent).await?;
        self.tasks.extend(tasks);
        Ok(())
    }

    /// Packets this client has sent so far.
    pub fn sent_packets(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Send a protocol message.
    pub fn send(&self, msg: ClientMsg) {
        let _ = self.out.send(msg);
    }

    /// Wait for a server message matching `want`, skipping others.
    pub async fn expect(
        &mut self,
        what: &str,
        mut want: impl FnMut(&ServerMsg) -> bool,
    ) -> anyhow::Result<ServerMsg> {
        tokio::time::timeout(WAIT, async {
            while let Some(msg) = self.events.recv().await {
                if want(&msg) {
                    return Ok(msg);
                }
            }
            bail!("connection ended")
        })
        .await
        .with_context(|| format!("timed out waiting for {what}"))?
    }

    /// Stop keeping server messages for [`Client::expect`], which then fails: a load run
    /// never reads them, and a big room's subscribe offers would pile up.
    pub fn ignore_events(&mut self) {
        self.events.close();
        while self.events.try_recv().is_ok() {}
    }

    /// Close everything without a `leave` (like a closed tab).
    pub async fn drop_connection(self) {
        for t in &self.tasks {
            t.abort();
        }
        let _ = self.publish.close().await;
        let _ = self.subscribe.close().await;
    }
}

/// The client's event loop: write outgoing messages, apply negotiation, surface the rest.
async fn drive(
    mut ws: Ws,
    mut out_rx: mpsc::UnboundedReceiver<ClientMsg>,
    out: mpsc::UnboundedSender<ClientMsg>,
    events: mpsc::UnboundedSender<ServerMsg>,
    pcs: (Arc<dyn PeerConnection>, Arc<dyn PeerConnection>),
) {
    loop {
        tokio::select! {
            Some(msg) = out_rx.recv() => {
                if ws.send(&msg).await.is_err() { break; }
            }
            frame = ws.socket.next() => {
                let Some(Ok(Message::Text(text))) = frame else {
                    if matches!(frame, Some(Ok(_))) { continue; }
                    break;
                };
                let Ok(msg) = wire::decode_server(text.as_str()) else { continue };
                if let Err(e) = apply(&msg, &out, &pcs.0, &pcs.1).await {
                    let message = format!("client: {e}");
                    let _ = events.send(ServerMsg::Error { code: wire::ErrorCode::Internal, message });
                }
                let _ = events.send(msg);
            }
        }
    }
}

async fn apply(
    msg: &ServerMsg,
    out: &mpsc::UnboundedSender<ClientMsg>,
    publish: &Arc<dyn PeerConnection>,
    subscribe: &Arc<dyn PeerConnection>,
) -> anyhow::Result<()> {
    match msg {
        ServerMsg::Answer {
            pc: PcRole::Publish,
            sdp,
        } => {
            publish
                .set_remote_description(RTCSessionDescription::answer(sdp.clone())?)
                .await?;
        }
        ServerMsg::Offer {
            pc: PcRole::Subscribe,
            sdp,
        } => {
            subscribe
                .set_remote_description(RTCSessionDescription::offer(sdp.clone())?)
                .await?;
            let answer = subscribe.create_answer(None).await?;
            subscribe.set_local_description(answer.clone()).await?;
            out.send(ClientMsg::Answer {
                pc: PcRole::Subscribe,
                sdp: answer.sdp,
            })?;
        }
        ServerMsg::Candidate { pc, candidate } => {
            let target = if *pc == PcRole::Publish {
                publish
            } else {
                subscribe
            };
            target
                .add_ice_candidate(peer::candidate_from_wire(candidate.clone()))
                .await?;
        }
        _ => {}
    }
    Ok(())
}
