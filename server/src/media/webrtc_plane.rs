//! The media plane on webrtc-rs 0.21: per participant, a `publish` peer connection (client
//! offers) and a `subscribe` one (server offers), driven by one session task.
//!
//! The session task owns both connections and is the only code that negotiates on them, so
//! negotiations never overlap. RTP never passes through it: each producer has a reader task
//! that pushes into consumers' queues, and each consumer has a writer task.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use signaling::wire::{ErrorCode, IceCandidate, MediaKind, PcRole, Reject, ServerMsg, TrackInfo};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use webrtc::media_stream::MediaStreamTrack;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionEventHandler, RTCPeerConnectionIceEvent, RTCPeerConnectionState,
    RTCSessionDescription,
};
use webrtc::rtp_transceiver::RtpSender;

use super::fanout::{Consumer, Producer};
use super::gauge::{Count, Gauge, PlaneStats};
use super::peer::{self, PeerNet};
use super::{
    MediaEvent, MediaPlane, MediaSession, Negotiation, Seen, SessionCtx, Signal, pick_payload_type,
    queue_full, rtp_kind, strip_extensions,
};

/// Commands a session task handles, in order.
enum Cmd {
    Signal(Signal),
    Subscribe(Arc<Producer>),
    Unsubscribe(String),
    RemoteTrack(Arc<dyn TrackRemote>),
    /// The subscribe connection reached `connected` (DTLS done: SRTP can flow).
    SubscribeConnected,
    Close,
}

/// Negotiation messages a client may have in flight before it is told to slow down.
const SESSION_QUEUE: usize = 256;

/// The webrtc-rs media plane.
pub struct WebrtcPlane {
    net: PeerNet,
    gauge: Gauge,
}

impl WebrtcPlane {
    /// A plane whose peers bind and advertise as `net` says.
    pub fn new(net: PeerNet) -> Self {
        WebrtcPlane {
            net,
            gauge: Gauge::default(),
        }
    }
}

impl MediaPlane for WebrtcPlane {
    fn open_session(&self, ctx: SessionCtx) -> Arc<dyn MediaSession> {
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        let weak = tx.downgrade();
        let net = self.net.clone();
        let gauge = self.gauge.clone();
        self.gauge.spawn(async move {
            let participant = ctx.participant.clone();
            match Session::start(net, ctx, weak, gauge.clone()).await {
                Ok(session) => {
                    let _open = gauge.connections(2);
                    session.run(rx).await;
                }
                Err((ctx, err)) => {
                    tracing::warn!(%participant, %err, "media session failed to start");
                    let msg = Reject::new(ErrorCode::MediaUnavailable, format!("media: {err}"));
                    let _ = ctx.to_client.try_send(msg.into());
                }
            }
        });
        Arc::new(WebrtcSession { tx })
    }

    fn stats(&self) -> PlaneStats {
        self.gauge.stats()
    }
}

struct WebrtcSession {
    tx: mpsc::Sender<Cmd>,
}

impl MediaSession for WebrtcSession {
    fn signal(&self, signal: Signal) -> Result<(), Reject> {
        self.tx
            .try_send(Cmd::Signal(signal))
            .map_err(|_| queue_full())
    }

    fn subscribe(&self, producer: Arc<Producer>) {
        // The room task must not wait on a session. A session this far behind is broken and
        // the client will see missing media; the room stays responsive.
        if self.tx.try_send(Cmd::Subscribe(producer)).is_err() {
            tracing::warn!("session queue full; subscribe dropped");
        }
    }

    fn unsubscribe(&self, track_id: &str) {
        if self
            .tx
            .try_send(Cmd::Unsubscribe(track_id.to_string()))
            .is_err()
        {
            tracing::warn!("session queue full; unsubscribe dropped");
        }
    }

    fn close(&self) {
        // If the queue is full the Close is lost, but dropping this handle (which the room
        // does right after) closes the channel and ends the task all the same.
        let _ = self.tx.try_send(Cmd::Close);
    }
}

/// A consumer: one producer forwarded to this participant.
struct Downstream {
    producer: Arc<Producer>,
    consumer_id: u64,
    track: Arc<TrackLocalStaticRTP>,
    sender: Arc<dyn RtpSender>,
    payload_type: Arc<AtomicU8>,
    tasks: Vec<JoinHandle<()>>,
    _counted: Count,
}

struct Session {
    ctx: SessionCtx,
    gauge: Gauge,
    publish: Arc<dyn PeerConnection>,
    subscribe: Arc<dyn PeerConnection>,
    downstream: HashMap<String, Downstream>,
    producers: HashMap<String, (Arc<Producer>, JoinHandle<()>, Count)>,
    next_track: u32,
    /// An offer on `subscribe` is waiting for its answer.
    negotiating: bool,
    /// The subscribe side changed since the last offer.
    dirty: bool,
    /// The subscribe connection is up; before that, forwarded RTP could not be encrypted.
    subscribe_connected: bool,
}

impl Session {
    async fn start(
        net: PeerNet,
        ctx: SessionCtx,
        cmd: mpsc::WeakSender<Cmd>,
        gauge: Gauge,
    ) -> Result<Self, (SessionCtx, webrtc::error::Error)> {
        let handler = |role| {
            Arc::new(PcHandler {
                role,
                participant: ctx.participant.clone(),
                to_client: ctx.to_client.clone(),
                cmd: cmd.clone(),
            }) as Arc<dyn PeerConnectionEventHandler>
        };
        let publish = match peer::build(
            &net,
            handler(PcRole::Publish),
            peer::Side::Server,
            peer::Flow::Receive,
        )
        .await
        {
            Ok(pc) => pc,
            Err(e) => return Err((ctx, e)),
        };
        let subscribe = match peer::build(
            &net,
            handler(PcRole::Subscribe),
            peer::Side::Server,
            peer::Flow::Send,
        )
        .await
        {
            Ok(pc) => pc,
            Err(e) => {
                let _ = publish.close().await;
                return Err((ctx, e));
            }
        };
        Ok(Session {
            ctx,
            gauge,
            publish,
            subscribe,
            downstream: HashMap::new(),
            producers: HashMap::new(),
            next_track: 1,
            negotiating: false,
            dirty: false,
            subscribe_connected: false,
        })
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        while let Some(cmd) = rx.recv().await {
            if !self.handle(cmd).await {
                break;
            }
            // Fold everything already queued (a publisher's audio and video, several
            // departures) into one renegotiation.
            let mut open = true;
            while open && let Ok(cmd) = rx.try_recv() {
                open = self.handle(cmd).await;
            }
            if !open {
                break;
            }
            if let Err(reject) = self.renegotiate().await {
                self.send(reject.into());
            }
        }
        self.shutdown().await;
    }

    /// Handle one command; `false` means close the session.
    async fn handle(&mut self, cmd: Cmd) -> bool {
        let result = match cmd {
            Cmd::Signal(signal) => self.handle_signal(signal).await,
            Cmd::Subscribe(producer) => self.handle_subscribe(producer).await,
            Cmd::Unsubscribe(id) => self.handle_unsubscribe(&id).await,
            Cmd::RemoteTrack(track) => self.handle_remote_track(track).await,
            Cmd::SubscribeConnected => {
                self.subscribe_connected = true;
                self.activate_consumers().await;
                Ok(())
            }
            Cmd::Close => return false,
        };
        if let Err(reject) = result {
            tracing::debug!(participant = %self.ctx.participant, ?reject, "session refused");
            self.send(reject.into());
        }
        true
    }

    async fn handle_signal(&mut self, signal: Signal) -> Result<(), Reject> {
        match signal.validate()? {
            Negotiation::PublishOffer(sdp) => self.answer_publish(sdp).await,
            Negotiation::SubscribeAnswer(sdp) => self.apply_subscribe_answer(sdp).await,
            Negotiation::Candidate(pc, candidate) => self.add_candidate(pc, candidate).await,
        }
    }

    async fn answer_publish(&mut self, sdp: String) -> Result<(), Reject> {
        let bad = |e: webrtc::error::Error| Reject::new(ErrorCode::BadSdp, format!("offer: {e}"));
        let offer = RTCSessionDescription::offer(sdp).map_err(bad)?;
        self.publish
            .set_remote_description(offer)
            .await
            .map_err(bad)?;
        let answer = self.publish.create_answer(None).await.map_err(bad)?;
        // Send before applying it: applying starts ICE gathering, and our candidates must not
        // reach the client ahead of the description they belong to.
        self.send(ServerMsg::Answer {
            pc: PcRole::Publish,
            sdp: answer.sdp.clone(),
        });
        self.publish
            .set_local_description(answer)
            .await
            .map_err(bad)?;
        Ok(())
    }

    async fn apply_subscribe_answer(&mut self, sdp: String) -> Result<(), Reject> {
        if !self.negotiating {
            return Err(Reject::new(
                ErrorCode::WrongNegotiationState,
                "no offer on `subscribe` is waiting for an answer",
            ));
        }
        let answer = RTCSessionDescription::answer(sdp)
            .map_err(|e| Reject::new(ErrorCode::BadSdp, format!("answer: {e}")))?;
        self.negotiating = false;
        if let Err(e) = self.subscribe.set_remote_description(answer).await {
            // Offer again from scratch; the client may have sent a broken answer once.
            self.dirty = true;
            self.renegotiate().await?;
            return Err(Reject::new(ErrorCode::BadSdp, format!("answer: {e}")));
        }
        self.activate_consumers().await;
        self.renegotiate().await
    }

    async fn add_candidate(&mut self, pc: PcRole, c: IceCandidate) -> Result<(), Reject> {
        if c.candidate.is_empty() {
            return Ok(()); // end of candidates
        }
        let init = peer::candidate_from_wire(c);
        let target = match pc {
            PcRole::Publish => &self.publish,
            PcRole::Subscribe => &self.subscribe,
        };
        target
            .add_ice_candidate(init)
            .await
            .map_err(|e| Reject::new(ErrorCode::BadCandidate, format!("candidate: {e}")))
    }

    async fn handle_subscribe(&mut self, producer: Arc<Producer>) -> Result<(), Reject> {
        let id = producer.info.id.clone();
        if self.downstream.contains_key(&id) {
            return Ok(());
        }
        let ssrc = rand::random::<u32>();
        let kind = rtp_kind(producer.info.kind);
        let coding = RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: producer.codec.clone(),
            ..Default::default()
        };
        let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            producer.info.participant.clone(),
            id.clone(),
            format!("{} {}", producer.info.participant, id),
            kind,
            vec![coding],
        )));
        let init = RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Sendonly,
            streams: vec![producer.info.participant.clone()],
            send_encodings: vec![],
        };
        let media = |e: webrtc::error::Error| {
            Reject::new(
                ErrorCode::MediaUnavailable,
                format!("cannot forward {id}: {e}"),
            )
        };
        let transceiver = self
            .subscribe
            .add_transceiver_from_track(track.clone() as Arc<dyn TrackLocal>, Some(init))
            .await
            .map_err(media)?;
        let sender = transceiver
            .sender()
            .await
            .map_err(media)?
            .ok_or_else(|| Reject::new(ErrorCode::Internal, "transceiver has no sender"))?;
        let (consumer_id, consumer) = producer.add_consumer();
        let payload_type = Arc::new(AtomicU8::new(0));
        let writer = self.gauge.spawn(write_consumer(
            consumer,
            track.clone(),
            ssrc,
            payload_type.clone(),
        ));
        let down = Downstream {
            producer,
            consumer_id,
            track,
            sender,
            payload_type,
            tasks: vec![writer],
            _counted: self.gauge.consumer(),
        };
        self.downstream.insert(id, down);
        self.dirty = true;
        Ok(())
    }

    async fn handle_unsubscribe(&mut self, track_id: &str) -> Result<(), Reject> {
        let Some(down) = self.downstream.remove(track_id) else {
            return Ok(());
        };
        let sender = down.sender.clone();
        drop_downstream(down);
        if let Err(e) = self.subscribe.remove_track(&sender).await {
            tracing::debug!(%e, "remove_track");
        }
        self.dirty = true;
        Ok(())
    }

    /// Offer on `subscribe` if something changed and no offer is outstanding.
    async fn renegotiate(&mut self) -> Result<(), Reject> {
        if self.negotiating || !self.dirty {
            return Ok(());
        }
        let fail =
            |e: webrtc::error::Error| Reject::new(ErrorCode::Internal, format!("offer: {e}"));
        let offer = self.subscribe.create_offer(None).await.map_err(fail)?;
        // Sent before it is applied, for the same reason as the publish answer.
        self.send(ServerMsg::Offer {
            pc: PcRole::Subscribe,
            sdp: offer.sdp.clone(),
        });
        self.negotiating = true;
        self.dirty = false;
        self.subscribe
            .set_local_description(offer)
            .await
            .map_err(fail)?;
        Ok(())
    }

    /// After an answer: learn each new consumer's payload type, start reading its RTCP, and
    /// ask its publisher for a keyframe (a request sent earlier would have been wasted).
    async fn activate_consumers(&mut self) {
        if !self.subscribe_connected {
            return; // done again on `SubscribeConnected`
        }
        let now = Instant::now();
        for down in self.downstream.values_mut() {
            if down.payload_type.load(Ordering::Relaxed) != 0 {
                continue;
            }
            let Ok(params) = down.sender.get_parameters().await else {
                continue;
            };
            let Some(pt) = pick_payload_type(&params.rtp_parameters.codecs, &down.producer.codec)
            else {
                tracing::warn!(track = %down.producer.info.id, "subscriber did not accept the codec");
                continue;
            };
            down.payload_type.store(pt, Ordering::Relaxed);
            down.tasks.push(
                self.gauge
                    .spawn(relay_feedback(down.track.clone(), down.producer.clone())),
            );
            if down.producer.info.kind == MediaKind::Video {
                down.producer.request_keyframe(now);
            }
        }
    }

    async fn handle_remote_track(&mut self, track: Arc<dyn TrackRemote>) -> Result<(), Reject> {
        let Some(ssrc) = track.ssrcs().await.first().copied() else {
            return Err(Reject::new(
                ErrorCode::MediaUnavailable,
                "published track has no SSRC",
            ));
        };
        let Some(codec) = track.codec(ssrc).await else {
            return Err(Reject::new(
                ErrorCode::MediaUnavailable,
                "published track has no codec",
            ));
        };
        let kind = match track.kind().await {
            RtpCodecKind::Audio => MediaKind::Audio,
            RtpCodecKind::Video => MediaKind::Video,
            _ => {
                return Err(Reject::new(
                    ErrorCode::MediaUnavailable,
                    "track of unknown kind",
                ));
            }
        };
        let letter = if kind == MediaKind::Audio { 'a' } else { 'v' };
        let id = format!("{}-{letter}{}", self.ctx.participant, self.next_track);
        self.next_track += 1;
        let info = TrackInfo {
            id: id.clone(),
            participant: self.ctx.participant.clone(),
            kind,
        };
        let (producer, keyframes) = Producer::new(info, codec);
        let producer = Arc::new(producer);
        let to_room = self.ctx.to_room.clone();
        let reader = self.gauge.spawn(read_producer(
            track,
            ssrc,
            producer.clone(),
            keyframes,
            to_room,
        ));
        let counted = self.gauge.producer();
        self.producers
            .insert(id, (producer.clone(), reader, counted));
        let participant = self.ctx.participant.clone();
        let _ = self.ctx.to_room.send(MediaEvent::TrackPublished {
            participant,
            producer,
        });
        Ok(())
    }

    fn send(&self, msg: ServerMsg) {
        if self.ctx.to_client.try_send(msg).is_err() {
            tracing::warn!(participant = %self.ctx.participant, "client queue full; message dropped");
        }
    }

    async fn shutdown(mut self) {
        for (_, down) in self.downstream.drain() {
            drop_downstream(down);
        }
        for (id, (producer, reader, _counted)) in self.producers.drain() {
            reader.abort();
            producer.close();
            let _ = self
                .ctx
                .to_room
                .send(MediaEvent::TrackEnded { track_id: id });
        }
        let _ = self.publish.close().await;
        let _ = self.subscribe.close().await;
        tracing::debug!(participant = %self.ctx.participant, "media session closed");
    }
}

fn drop_downstream(down: Downstream) {
    down.producer.remove(down.consumer_id);
    for task in down.tasks {
        task.abort();
    }
}

/// Read one published track: forward its RTP to consumers, and answer keyframe requests.
/// Every remote track must be read, or webrtc-rs's queue for it fills and logs per packet.
async fn read_producer(
    track: Arc<dyn TrackRemote>,
    ssrc: u32,
    producer: Arc<Producer>,
    mut keyframes: mpsc::Receiver<()>,
    to_room: mpsc::UnboundedSender<MediaEvent>,
) {
    let mut seen = Seen::default();
    loop {
        tokio::select! {
            event = track.poll() => match event {
                Some(TrackRemoteEvent::OnRtpPacket(mut packet)) => {
                    if !seen.is_new(packet.header.sequence_number) {
                        producer.received.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    // Extension ids are per connection; the publisher's would mean something
                    // else to a subscriber. Stripped once here, so the per-consumer clones
                    // copy no extension data.
                    strip_extensions(&mut packet.header);
                    producer.forward(&packet);
                }
                Some(TrackRemoteEvent::OnEnded) | Some(TrackRemoteEvent::OnError) | None => break,
                Some(_) => {}
            },
            Some(()) = keyframes.recv() => {
                let pli = PictureLossIndication { sender_ssrc: 0, media_ssrc: ssrc };
                if let Err(e) = track.write_rtcp(vec![Box::new(pli)]).await {
                    tracing::debug!(%e, "PLI to publisher");
                }
            }
        }
    }
    producer.close();
    let _ = to_room.send(MediaEvent::TrackEnded {
        track_id: producer.info.id.clone(),
    });
}

/// Drain one consumer's queue into its track, rewritten for this subscriber.
async fn write_consumer(
    mut consumer: Consumer,
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    payload_type: Arc<AtomicU8>,
) {
    while let Some(mut packet) = consumer.rx.recv().await {
        let pt = payload_type.load(Ordering::Relaxed);
        if pt == 0 {
            continue; // not negotiated yet; a keyframe is requested once it is
        }
        packet.header.ssrc = ssrc;
        packet.header.payload_type = pt;
        if let Err(e) = track.write_rtp(packet).await {
            tracing::debug!(%e, "consumer write ended");
            break;
        }
    }
}

/// Relay a subscriber's keyframe requests for this consumer to its publisher (throttled there).
async fn relay_feedback(track: Arc<TrackLocalStaticRTP>, producer: Arc<Producer>) {
    while let Some(event) = track.poll().await {
        if let TrackLocalEvent::OnRtcpPacket(_) = event {
            producer.request_keyframe(Instant::now());
        }
    }
}

struct PcHandler {
    role: PcRole,
    participant: String,
    to_client: mpsc::Sender<ServerMsg>,
    cmd: mpsc::WeakSender<Cmd>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for PcHandler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        let Some(candidate) = peer::candidate_to_wire(&event.candidate) else {
            return;
        };
        // Never block the peer connection's driver on a slow WebSocket.
        let _ = self.to_client.try_send(ServerMsg::Candidate {
            pc: self.role,
            candidate,
        });
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        if let Some(cmd) = self.cmd.upgrade() {
            let _ = cmd.send(Cmd::RemoteTrack(track)).await;
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        tracing::debug!(participant = %self.participant, pc = ?self.role, %state, "peer connection");
        if self.role == PcRole::Subscribe
            && state == RTCPeerConnectionState::Connected
            && let Some(cmd) = self.cmd.upgrade()
        {
            let _ = cmd.send(Cmd::SubscribeConnected).await;
        }
    }
}
