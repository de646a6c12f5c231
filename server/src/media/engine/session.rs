//! A participant's session: its two connections, their negotiation, and which tracks it
//! receives.
//!
//! The client offers on `publish` and the engine answers; the engine offers on `subscribe`
//! and the client answers, one negotiation at a time, folding the changes that come meanwhile
//! into the next offer. A track stops using its section when it is unsubscribed, and the next
//! track of its kind takes that section (rtc's `add_track`).

use std::collections::HashMap;
use std::time::Instant;

use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::sdp::{RTCSdpType, RTCSessionDescription};
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodingParameters, RTCRtpEncodingParameters};
use rtc::rtp_transceiver::{
    RTCRtpReceiverId, RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverId,
};
use signaling::wire::{ErrorCode, IceCandidate, MediaKind, PcRole, Reject, ServerMsg};

use super::forward::{ConsumerRef, Rewrite, Sent};
use super::{Engine, PcId, SessionId};
use crate::media::values::{Negotiation, Signal, TrackKey, rtp_kind};

/// A track forwarded to this session.
pub(super) struct Down {
    /// Our track id, as the subscriber's SDP names it.
    pub(super) track_id: String,
    sender: RTCRtpSenderId,
    active: bool,
}

/// One participant's media.
pub(super) struct Session {
    pub(super) participant: String,
    publish: PcId,
    subscribe: PcId,
    /// The publisher's tracks as webrtc names them, once opened: receiver and SSRC.
    pub(super) opened: HashMap<String, (RTCRtpReceiverId, u32)>,
    /// Webrtc's track id → the published track it feeds.
    pub(super) published: HashMap<String, TrackKey>,
    /// What this session receives.
    pub(super) downstream: HashMap<TrackKey, Down>,
    pub(super) next_track: u32,
    negotiating: bool,
    dirty: bool,
    subscribe_connected: bool,
}

impl Engine {
    pub(super) fn open(&mut self, now: Instant, id: SessionId, participant: String) {
        let publish = self.new_pc(now, id, PcRole::Publish);
        let subscribe = self.new_pc(now, id, PcRole::Subscribe);
        let (publish, subscribe) = match (publish, subscribe) {
            (Ok(p), Ok(s)) => (p, s),
            (p, s) => {
                let mut err = String::new();
                for r in [p, s] {
                    match r {
                        Ok(pc) => self.drop_pc(pc),
                        Err(e) => err = e,
                    }
                }
                tracing::warn!(%participant, %err, "media session failed to start");
                let msg = Reject::new(ErrorCode::MediaUnavailable, format!("media: {err}"));
                self.tell_client(id, msg.into());
                return;
            }
        };
        self.sessions.insert(
            id,
            Session {
                participant,
                publish,
                subscribe,
                opened: HashMap::new(),
                published: HashMap::new(),
                downstream: HashMap::new(),
                next_track: 1,
                negotiating: false,
                dirty: false,
                subscribe_connected: false,
            },
        );
    }

    pub(super) fn close(&mut self, id: SessionId) {
        let Some(session) = self.sessions.remove(&id) else {
            return;
        };
        for key in session.downstream.keys() {
            if let Some(p) = self.producers.get_mut(key) {
                self.stats.consumers -= p.remove_consumer(session.subscribe);
            }
        }
        for key in session.published.values() {
            self.end_track(*key);
        }
        self.drop_pc(session.publish);
        self.drop_pc(session.subscribe);
        tracing::debug!(participant = %session.participant, "media session closed");
    }

    fn pc_id(&self, id: SessionId, role: PcRole) -> Option<PcId> {
        let session = self.sessions.get(&id)?;
        Some(match role {
            PcRole::Publish => session.publish,
            PcRole::Subscribe => session.subscribe,
        })
    }

    pub(super) fn signal(
        &mut self,
        now: Instant,
        id: SessionId,
        signal: Signal,
    ) -> Result<(), Reject> {
        match signal.validate()? {
            Negotiation::PublishOffer(sdp) => self.answer_publish(now, id, sdp),
            Negotiation::SubscribeAnswer(sdp) => self.apply_subscribe_answer(now, id, sdp),
            Negotiation::Candidate(pc, candidate) => self.add_candidate(id, pc, candidate),
        }
    }

    fn answer_publish(&mut self, now: Instant, id: SessionId, sdp: String) -> Result<(), Reject> {
        let bad =
            |e: rtc::shared::error::Error| Reject::new(ErrorCode::BadSdp, format!("offer: {e}"));
        let Some(pc_id) = self.pc_id(id, PcRole::Publish) else {
            return Ok(());
        };
        let Some(pc) = self.pcs.get_mut(&pc_id) else {
            return Ok(());
        };
        pc.rtc
            .set_remote_description(now, unparsed(RTCSdpType::Offer, sdp))
            .map_err(bad)?;
        pc.remote_applied();
        let answer = pc.rtc.create_answer(None).map_err(bad)?;
        pc.rtc
            .set_local_description(now, answer.clone())
            .map_err(bad)?;
        // The answer carries our one host candidate; there is nothing to trickle.
        self.tell_client(
            id,
            ServerMsg::Answer {
                pc: PcRole::Publish,
                sdp: answer.sdp,
            },
        );
        self.drain(now, pc_id);
        Ok(())
    }

    fn apply_subscribe_answer(
        &mut self,
        now: Instant,
        id: SessionId,
        sdp: String,
    ) -> Result<(), Reject> {
        let Some(session) = self.sessions.get_mut(&id) else {
            return Ok(());
        };
        if !session.negotiating {
            return Err(Reject::new(
                ErrorCode::WrongNegotiationState,
                "no offer on `subscribe` is waiting for an answer",
            ));
        }
        session.negotiating = false;
        let pc_id = session.subscribe;
        let Some(pc) = self.pcs.get_mut(&pc_id) else {
            return Ok(());
        };
        let result = pc
            .rtc
            .set_remote_description(now, unparsed(RTCSdpType::Answer, sdp));
        if result.is_ok() {
            pc.remote_applied();
        }
        self.drain(now, pc_id);
        if let Err(e) = result {
            // Offer again from scratch; the client may have sent a broken answer once.
            if let Some(session) = self.sessions.get_mut(&id) {
                session.dirty = true;
            }
            self.to_negotiate.push_back(id);
            return Err(Reject::new(ErrorCode::BadSdp, format!("answer: {e}")));
        }
        self.activate_consumers(now, id);
        self.to_negotiate.push_back(id);
        Ok(())
    }

    fn add_candidate(
        &mut self,
        id: SessionId,
        role: PcRole,
        c: IceCandidate,
    ) -> Result<(), Reject> {
        if c.candidate.is_empty() {
            return Ok(()); // end of candidates
        }
        let Some(pc_id) = self.pc_id(id, role) else {
            return Ok(());
        };
        let Some(pc) = self.pcs.get_mut(&pc_id) else {
            return Ok(());
        };
        let added = pc
            .rtc
            .add_remote_candidate(roundtable_peer::candidate_from_wire(c));
        // A new pair is checked on the connection's next timer, which has just moved.
        self.mark_stale(pc_id);
        self.mark_flush(pc_id);
        added.map_err(|e| Reject::new(ErrorCode::BadCandidate, format!("candidate: {e}")))
    }

    /// The changes of one room event to what `id` receives, offered together.
    pub(super) fn subscriptions(&mut self, id: SessionId, add: &[TrackKey], remove: &[TrackKey]) {
        if !self.sessions.contains_key(&id) {
            return;
        }
        for key in remove {
            self.unsubscribe(id, *key);
        }
        for key in add {
            if let Err(reject) = self.subscribe(id, *key) {
                self.tell_client(id, reject.into());
            }
        }
        self.to_negotiate.push_back(id);
    }

    fn subscribe(&mut self, id: SessionId, key: TrackKey) -> Result<(), Reject> {
        let Some(session) = self.sessions.get(&id) else {
            return Ok(());
        };
        let Some(published) = self.producers.get(&key) else {
            return Ok(()); // its publisher has gone meanwhile
        };
        if session.downstream.contains_key(&key) {
            return Ok(()); // already forwarded
        }
        let pc_id = session.subscribe;
        let Some(pc) = self.pcs.get_mut(&pc_id) else {
            return Ok(());
        };
        let info = &published.info;
        let ssrc = rand::random::<u32>();
        let coding = RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: published.codec.clone(),
            ..Default::default()
        };
        let track = rtc::media_stream::MediaStreamTrack::new(
            info.participant.clone(),
            info.id.clone(),
            format!("{} {}", info.participant, info.id),
            rtp_kind(info.kind),
            vec![coding],
        );
        // `add_track` takes the first section of the same kind that no track uses any more
        // (its track was unsubscribed) before it makes a new one. A section is never removed
        // from a connection's SDP, so without reuse every leave and rejoin in a long session
        // would leave a dead section with every other subscriber, kept and parsed for good.
        let transceiver = pc
            .rtc
            .add_track(track)
            .map(RTCRtpTransceiverId::from)
            .map_err(|e| {
                Reject::new(
                    ErrorCode::MediaUnavailable,
                    format!("cannot forward {}: {e}", info.id),
                )
            })?;
        // A new section is `sendrecv`; the server only sends.
        if let Some(mut t) = pc.rtc.rtp_transceiver(transceiver) {
            t.set_direction(RTCRtpTransceiverDirection::Sendonly);
        }
        // Offer only the publisher's codec (webrtc-rs adds its RTX): the server forwards and
        // never transcodes, so the other codecs are of no use in this section, and each costs
        // SDP lines and state in the transceiver, for every subscriber of every track.
        if let Some(codec) = roundtable_peer::registered_codec(&published.codec)
            && let Some(mut t) = pc.rtc.rtp_transceiver(transceiver)
            && let Err(e) = t.set_codec_preferences(vec![codec])
        {
            tracing::debug!(%e, track = %info.id, "codec preferences; offering every codec");
        }
        let track_id = info.id.clone();
        if let Some(p) = self.producers.get_mut(&key) {
            p.consumers.push(ConsumerRef {
                pc: pc_id,
                ssrc,
                payload_type: 0,
                base: Sent::default(),
                rewrite: Rewrite::default(),
            });
            self.stats.consumers += 1;
        }
        if let Some(session) = self.sessions.get_mut(&id) {
            session.downstream.insert(
                key,
                Down {
                    track_id,
                    sender: RTCRtpSenderId::from(transceiver),
                    active: false,
                },
            );
            session.dirty = true;
        }
        Ok(())
    }

    fn unsubscribe(&mut self, id: SessionId, key: TrackKey) {
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        let Some(down) = session.downstream.remove(&key) else {
            return;
        };
        session.dirty = true;
        let pc_id = session.subscribe;
        if let Some(p) = self.producers.get_mut(&key) {
            self.stats.consumers -= p.remove_consumer(pc_id);
        }
        if let Some(pc) = self.pcs.get_mut(&pc_id)
            && let Err(e) = pc.rtc.remove_track(down.sender)
        {
            tracing::debug!(%e, "remove_track");
        }
    }

    /// Offer on `subscribe` if something changed and no offer is outstanding; whether it did.
    pub(super) fn renegotiate(&mut self, now: Instant, id: SessionId) -> Result<bool, Reject> {
        let Some(session) = self.sessions.get_mut(&id) else {
            return Ok(false);
        };
        if session.negotiating || !session.dirty {
            return Ok(false);
        }
        let pc_id = session.subscribe;
        let Some(pc) = self.pcs.get_mut(&pc_id) else {
            return Ok(false);
        };
        let fail =
            |e: rtc::shared::error::Error| Reject::new(ErrorCode::Internal, format!("offer: {e}"));
        let offer = pc.rtc.create_offer(None).map_err(fail)?;
        pc.rtc
            .set_local_description(now, offer.clone())
            .map_err(fail)?;
        session.negotiating = true;
        session.dirty = false;
        self.tell_client(
            id,
            ServerMsg::Offer {
                pc: PcRole::Subscribe,
                sdp: offer.sdp,
            },
        );
        self.drain(now, pc_id);
        Ok(true)
    }

    /// Once the subscribe connection is up and an answer applied: learn each new consumer's
    /// payload type and ask its publisher for a keyframe (a request sent earlier is wasted).
    fn activate_consumers(&mut self, now: Instant, id: SessionId) {
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        if !session.subscribe_connected {
            return; // done again when it connects
        }
        let pc_id = session.subscribe;
        let Some(pc) = self.pcs.get_mut(&pc_id) else {
            return;
        };
        let mut keyframes = Vec::new();
        let mut reports = Vec::new();
        for (key, down) in session.downstream.iter_mut().filter(|(_, d)| !d.active) {
            let Some(published) = self.producers.get_mut(key) else {
                continue;
            };
            let Some(mut sender) = pc.rtc.rtp_sender(down.sender) else {
                continue;
            };
            let codecs = &sender.get_parameters().rtp_parameters.codecs;
            let Some(pt) = roundtable_peer::pick_payload_type(codecs, &published.codec) else {
                tracing::warn!(track = %down.track_id, "subscriber did not accept the codec");
                continue;
            };
            down.active = true;
            for c in published.consumers.iter_mut().filter(|c| c.pc == pc_id) {
                c.payload_type = pt;
                c.base = published.sent;
                // The publisher's clock mapping now, rather than at its next report (every
                // 1 to 5 s): until it has one, a receiver cannot play the track in sync.
                if let Some(mapping) = published.report
                    && published.open
                {
                    reports.push(c.report(published.sent, mapping));
                }
            }
            if published.info.kind == MediaKind::Video {
                keyframes.push(*key);
            }
        }
        for report in reports {
            self.write_report(now, pc_id, report);
        }
        for key in keyframes {
            self.request_keyframe(now, key);
        }
    }

    pub(super) fn handle_event(
        &mut self,
        now: Instant,
        session_id: SessionId,
        role: PcRole,
        event: RTCPeerConnectionEvent,
    ) {
        let Some(session) = self.sessions.get_mut(&session_id) else {
            return;
        };
        match event {
            RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init))
                if role == PcRole::Publish =>
            {
                session
                    .opened
                    .insert(init.track_id, (init.receiver_id, init.ssrc));
            }
            RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnClose(track))
                if role == PcRole::Publish =>
            {
                session.opened.remove(&track);
                if let Some(key) = session.published.remove(&track) {
                    self.end_track(key);
                }
            }
            RTCPeerConnectionEvent::OnIceConnectionStateChangeEvent(state) => {
                tracing::debug!(participant = %session.participant, pc = ?role, %state, "ICE");
            }
            RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                tracing::debug!(participant = %session.participant, pc = ?role, %state, "peer connection");
                if role == PcRole::Subscribe && state == RTCPeerConnectionState::Connected {
                    session.subscribe_connected = true;
                    self.activate_consumers(now, session_id);
                }
            }
            _ => {}
        }
    }
}

/// A description to hand to `set_remote_description`, which parses it (and refuses what does
/// not parse). `RTCSessionDescription::offer` and `::answer` would parse it a first time, for
/// nothing: 4 % of the server's CPU while a room of 40 fills, in a profile.
fn unparsed(sdp_type: RTCSdpType, sdp: String) -> RTCSessionDescription {
    let mut description = RTCSessionDescription::default();
    description.sdp_type = sdp_type;
    description.sdp = sdp;
    description
}
