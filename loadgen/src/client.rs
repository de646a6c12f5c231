//! A Roundtable client on webrtc-rs, speaking the real protocol: a WebSocket, a `publish`
//! peer connection that sends synthetic Opus and VP8 RTP, and a `subscribe` one whose every
//! received packet is logged, so tests judge media by what a real receiver got.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use roundtable::media::peer::{self, PeerNet};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{
    TransportLayerNack, nack_pairs_from_sequence_numbers,
};
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use signaling::wire::{self, ClientMsg, MediaKind, PcRole, ServerMsg};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use webrtc::media_stream::MediaStreamTrack;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionEventHandler, RTCPeerConnectionIceEvent, RTCSessionDescription,
};
use webrtc::rtp_transceiver::RtpSender;

/// How long any single wait in a test may take before it fails. Generous: 2 shared cores.
pub const WAIT: Duration = Duration::from_secs(30);

/// Every packet a client received, by (publisher participant id, kind).
#[derive(Default)]
pub struct MediaLog {
    packets: Mutex<HashMap<(String, MediaKind), Vec<Received>>>,
    /// Keyframe requests (PLI/FIR) this client received as a publisher, per kind.
    keyframe_requests: Mutex<HashMap<MediaKind, usize>>,
    /// Remote video tracks, to send keyframe requests on as a subscriber would.
    remote_video: Mutex<Vec<Arc<dyn TrackRemote>>>,
    changed: Notify,
}

/// One received packet.
#[derive(Debug, Clone, Copy)]
pub struct Received {
    /// RTP sequence number.
    pub seq: u16,
    /// The counter the publisher wrote into the payload.
    pub counter: u64,
}

impl MediaLog {
    /// Received packets from one publisher's track of one kind.
    pub fn from(&self, publisher: &str, kind: MediaKind) -> Vec<Received> {
        let map = self.packets.lock().unwrap();
        map.get(&(publisher.to_string(), kind))
            .cloned()
            .unwrap_or_default()
    }

    /// Keyframe requests received for this client's track of `kind`.
    pub fn keyframe_requests(&self, kind: MediaKind) -> usize {
        self.keyframe_requests
            .lock()
            .unwrap()
            .get(&kind)
            .copied()
            .unwrap_or(0)
    }

    /// Send a PLI on every received video track, as a browser does when it cannot decode.
    pub async fn request_keyframes(&self) -> anyhow::Result<()> {
        let tracks = self.remote_video.lock().unwrap().clone();
        for track in tracks {
            let ssrc = track.ssrcs().await.first().copied().context("no ssrc")?;
            let pli = PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc: ssrc,
            };
            track.write_rtcp(vec![Box::new(pli)]).await?;
        }
        Ok(())
    }

    /// Send a NACK for `seqs` on the received video track from `publisher`, as a receiver
    /// that lost them would.
    pub async fn nack(&self, publisher: &str, seqs: &[u16]) -> anyhow::Result<()> {
        let tracks = self.remote_video.lock().unwrap().clone();
        for track in tracks {
            if track.stream_id().await != publisher {
                continue;
            }
            let ssrc = track.ssrcs().await.first().copied().context("no ssrc")?;
            let nacks = nack_pairs_from_sequence_numbers(seqs);
            let nack = TransportLayerNack {
                sender_ssrc: 0,
                media_ssrc: ssrc,
                nacks,
            };
            track.write_rtcp(vec![Box::new(nack)]).await?;
            return Ok(());
        }
        bail!("no video track from {publisher}")
    }

    /// Wait until `done` holds over the log.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&Self) -> bool) -> anyhow::Result<()> {
        tokio::time::timeout(WAIT, async {
            loop {
                let changed = self.changed.notified();
                if done(self) {
                    return;
                }
                changed.await;
            }
        })
        .await
        .with_context(|| format!("timed out waiting for {what}"))
    }
}

/// A joined client.
pub struct Client {
    /// This client's participant id.
    pub id: String,
    /// The `joined` message.
    pub joined: ServerMsg,
    /// What it received.
    pub media: Arc<MediaLog>,
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
            let publisher = track.stream_id().await;
            let kind = match track.kind().await {
                RtpCodecKind::Audio => MediaKind::Audio,
                _ => MediaKind::Video,
            };
            if kind == MediaKind::Video {
                media.remote_video.lock().unwrap().push(track.clone());
            }
            while let Some(event) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(p) = event {
                    let counter = p
                        .payload
                        .get(..8)
                        .map_or(u64::MAX, |b| u64::from_be_bytes(b.try_into().unwrap()));
                    let r = Received {
                        seq: p.header.sequence_number,
                        counter,
                    };
                    media
                        .packets
                        .lock()
                        .unwrap()
                        .entry((publisher.clone(), kind))
                        .or_default()
                        .push(r);
                    media.changed.notify_waiters();
                }
            }
        });
    }
}

/// Open a WebSocket to the server and return raw frame channels (for bad-input tests too).
pub async fn connect(addr: SocketAddr) -> anyhow::Result<Ws> {
    let (socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await?;
    Ok(Ws { socket })
}

/// A raw protocol connection.
pub struct Ws {
    /// The socket.
    pub socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Ws {
    /// Send a text frame.
    pub async fn send_text(&mut self, text: impl Into<String>) -> anyhow::Result<()> {
        self.socket.send(Message::text(text.into())).await?;
        Ok(())
    }

    /// Send a protocol message.
    pub async fn send(&mut self, msg: &ClientMsg) -> anyhow::Result<()> {
        self.send_text(wire::encode_client(msg)).await
    }

    /// The next protocol message (skipping pings), or an error on close/timeout.
    pub async fn recv(&mut self) -> anyhow::Result<ServerMsg> {
        loop {
            let frame = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .context("no message")?;
            match frame {
                Some(Ok(Message::Text(t))) => return Ok(wire::decode_server(t.as_str())?),
                Some(Ok(Message::Close(f))) => bail!("closed: {f:?}"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => bail!("socket error: {e}"),
                None => bail!("socket ended"),
            }
        }
    }

    /// Skip messages until one matches.
    pub async fn recv_until(
        &mut self,
        mut want: impl FnMut(&ServerMsg) -> bool,
    ) -> anyhow::Result<ServerMsg> {
        loop {
            let msg = self.recv().await?;
            if want(&msg) {
                return Ok(msg);
            }
        }
    }
}

impl Client {
    /// Connect, join `room` as `name`, and set up both peer connections.
    pub async fn join(addr: SocketAddr, room: &str, name: &str) -> anyhow::Result<Client> {
        let mut ws = connect(addr).await?;
        let join = ClientMsg::Join {
            v: wire::PROTOCOL_VERSION,
            room: room.into(),
            name: name.into(),
        };
        ws.send(&join).await?;
        let joined = ws
            .recv_until(|m| !matches!(m, ServerMsg::Candidate { .. }))
            .await?;
        let ServerMsg::Joined { you, .. } = &joined else {
            bail!("join refused: {joined:?}")
        };
        let id = you.clone();
        let (out, out_rx) = mpsc::unbounded_channel();
        let media = Arc::new(MediaLog::default());
        let handler = |role| {
            Arc::new(Handler {
                role,
                out: out.clone(),
                media: media.clone(),
            })
        };
        let publish = peer::build(&PeerNet::loopback(), handler(PcRole::Publish), true).await?;
        let subscribe =
            peer::build(&PeerNet::loopback(), handler(PcRole::Subscribe), false).await?;
        let (events_tx, events) = mpsc::unbounded_channel();
        let driver = tokio::spawn(drive(
            ws,
            out_rx,
            out.clone(),
            events_tx,
            publish.clone(),
            subscribe.clone(),
        ));
        Ok(Client {
            id,
            joined,
            media,
            out,
            events,
            publish,
            subscribe,
            tasks: vec![driver],
        })
    }

    /// Publish one Opus and one VP8 track and send `packets` packets on each, paced like real
    /// media (audio every 20 ms, video every 10 ms). Payloads carry a counter equal to the
    /// sequence number, so receivers can check integrity end to end.
    pub async fn publish(&mut self, packets: u16) -> anyhow::Result<()> {
        let (audio, audio_sender) = self
            .add_track(RtpCodecKind::Audio, "audio/opus", 48000, 2, 0x1000_0001)
            .await?;
        let (video, video_sender) = self
            .add_track(RtpCodecKind::Video, "video/VP8", 90000, 0, 0x2000_0002)
            .await?;
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
        let pt_a = payload_type(&audio_sender, "audio/opus").await?;
        let pt_v = payload_type(&video_sender, "video/vp8").await?;
        for (track, kind) in [
            (audio.clone(), MediaKind::Audio),
            (video.clone(), MediaKind::Video),
        ] {
            self.tasks.push(tokio::spawn(count_keyframe_requests(
                track,
                kind,
                self.media.clone(),
            )));
        }
        self.tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            for seq in 0..packets {
                tick.tick().await;
                if seq % 2 == 0 {
                    let _ = audio
                        .write_rtp(packet(0x1000_0001, pt_a, seq / 2, 80))
                        .await;
                }
                let _ = video.write_rtp(packet(0x2000_0002, pt_v, seq, 1000)).await;
            }
        }));
        Ok(())
    }

    async fn add_track(
        &self,
        kind: RtpCodecKind,
        mime: &str,
        clock_rate: u32,
        channels: u16,
        ssrc: u32,
    ) -> anyhow::Result<(Arc<TrackLocalStaticRTP>, Arc<dyn RtpSender>)> {
        let codec = RTCRtpCodec {
            mime_type: mime.into(),
            clock_rate,
            channels,
            ..Default::default()
        };
        let coding = RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec,
            ..Default::default()
        };
        let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            self.id.clone(),
            format!("{}-{mime}", self.id),
            mime.into(),
            kind,
            vec![coding],
        )));
        let init = RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Sendonly,
            streams: vec![self.id.clone()],
            send_encodings: vec![],
        };
        let transceiver = self
            .publish
            .add_transceiver_from_track(track.clone() as Arc<dyn TrackLocal>, Some(init))
            .await?;
        let sender = transceiver
            .sender()
            .await?
            .context("transceiver without sender")?;
        Ok((track, sender))
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

    /// Close everything without a `leave` (like a closed tab).
    pub async fn drop_connection(self) {
        for t in &self.tasks {
            t.abort();
        }
        let _ = self.publish.close().await;
        let _ = self.subscribe.close().await;
    }
}

async fn count_keyframe_requests(
    track: Arc<TrackLocalStaticRTP>,
    kind: MediaKind,
    media: Arc<MediaLog>,
) {
    while let Some(event) = track.poll().await {
        if let TrackLocalEvent::OnRtcpPacket(_) = event {
            *media
                .keyframe_requests
                .lock()
                .unwrap()
                .entry(kind)
                .or_default() += 1;
            media.changed.notify_waiters();
        }
    }
}

async fn payload_type(sender: &Arc<dyn RtpSender>, mime: &str) -> anyhow::Result<u8> {
    let params = sender.get_parameters().await?;
    let codec = params
        .rtp_parameters
        .codecs
        .iter()
        .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(mime));
    Ok(codec
        .with_context(|| format!("{mime} not negotiated"))?
        .payload_type)
}

fn packet(ssrc: u32, payload_type: u8, seq: u16, size: usize) -> rtp::Packet {
    let mut payload = vec![0u8; size];
    payload[..8].copy_from_slice(&u64::from(seq).to_be_bytes());
    let mut p = rtp::Packet::default();
    p.header.version = 2;
    p.header.ssrc = ssrc;
    p.header.payload_type = payload_type;
    p.header.sequence_number = seq;
    p.header.timestamp = u32::from(seq) * 960;
    p.header.marker = true;
    p.payload = Bytes::from(payload);
    p
}

/// The client's event loop: write outgoing messages, apply negotiation, surface the rest.
async fn drive(
    mut ws: Ws,
    mut out_rx: mpsc::UnboundedReceiver<ClientMsg>,
    out: mpsc::UnboundedSender<ClientMsg>,
    events: mpsc::UnboundedSender<ServerMsg>,
    publish: Arc<dyn PeerConnection>,
    subscribe: Arc<dyn PeerConnection>,
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
                if let Err(e) = apply(&msg, &out, &publish, &subscribe).await {
                    let _ = events.send(ServerMsg::Error { code: wire::ErrorCode::Internal, message: format!("client: {e}") });
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
