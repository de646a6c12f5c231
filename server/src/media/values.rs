//! The values that cross between the media engine and the rest of the server: track keys,
//! negotiation messages, events for rooms, and counts. They hold no media object.

use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use signaling::wire::{ErrorCode, IceCandidate, MediaKind, PcRole, Reject, TrackInfo};

/// A published track's key: opaque, unique in the process (track ids are unique only in
/// their room).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackKey(pub(super) u64);

#[cfg(test)]
impl TrackKey {
    /// A key for tests outside the engine.
    pub(crate) fn for_test(n: u64) -> TrackKey {
        TrackKey(n)
    }
}

/// One RTP packet of a recorded track, as the engine accepted it: decrypted, a new
/// sequence number in the track's own codec, past the gate, and before any consumer's
/// rewrite. It goes to the recorder and nowhere else.
#[derive(Debug, Clone)]
pub struct RecordedPacket {
    /// The track.
    pub track: TrackKey,
    /// The publisher's SSRC.
    pub ssrc: u32,
    /// The publisher's payload type.
    pub payload_type: u8,
    /// The track's codec, which says how to read the payload.
    pub codec: Codec,
    /// The publisher's sequence number.
    pub seq: u16,
    /// The publisher's RTP timestamp.
    pub timestamp: u32,
    /// The RTP marker bit.
    pub marker: bool,
    /// The payload, as sent (Opus: one Opus packet).
    pub payload: bytes::Bytes,
    /// When the engine took it.
    pub arrived: std::time::Instant,
}

/// A recorded track's codec, as far as the recorder cares: the ones it writes, and the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Opus audio.
    Opus,
    /// VP8 video.
    Vp8,
    /// H.264 video.
    H264,
    /// Anything else (VP9, AV1, G.711...).
    Other,
}

impl Codec {
    /// The codec a negotiated MIME type (`audio/opus`, `video/VP8`) names.
    pub fn of_mime(mime: &str) -> Codec {
        let name = mime.rsplit('/').next().unwrap_or_default();
        if name.eq_ignore_ascii_case("opus") {
            Codec::Opus
        } else if name.eq_ignore_ascii_case("vp8") {
            Codec::Vp8
        } else if name.eq_ignore_ascii_case("h264") {
            Codec::H264
        } else {
            Codec::Other
        }
    }
}

/// What the engine tells a room.
#[derive(Debug)]
pub enum MediaEvent {
    /// A participant started publishing a track.
    TrackPublished {
        /// Its key, for subscriptions and the gate.
        key: TrackKey,
        /// The track as the room knows it.
        info: TrackInfo,
    },
    /// A published track ended.
    TrackEnded {
        /// Its key.
        key: TrackKey,
        /// Its id.
        track_id: String,
    },
}

/// A negotiation message from the client, already decoded.
#[derive(Debug, Clone)]
pub enum Signal {
    /// SDP offer.
    Offer {
        /// Which connection.
        pc: PcRole,
        /// The SDP.
        sdp: String,
    },
    /// SDP answer.
    Answer {
        /// Which connection.
        pc: PcRole,
        /// The SDP.
        sdp: String,
    },
    /// Trickle ICE candidate.
    Candidate {
        /// Which connection.
        pc: PcRole,
        /// The candidate.
        candidate: IceCandidate,
    },
}

/// A negotiation message that fits the two-connection protocol: the client offers on
/// `publish` and answers on `subscribe`, and trickles candidates on either.
#[derive(Debug)]
pub(crate) enum Negotiation {
    /// An offer on `publish`.
    PublishOffer(String),
    /// An answer on `subscribe`.
    SubscribeAnswer(String),
    /// A candidate for one of the two.
    Candidate(PcRole, IceCandidate),
}

impl Signal {
    /// Refuse what the protocol never allows (`wrong_negotiation_state`).
    pub(crate) fn validate(self) -> Result<Negotiation, Reject> {
        match self {
            Signal::Offer {
                pc: PcRole::Publish,
                sdp,
            } => Ok(Negotiation::PublishOffer(sdp)),
            Signal::Answer {
                pc: PcRole::Subscribe,
                sdp,
            } => Ok(Negotiation::SubscribeAnswer(sdp)),
            Signal::Offer {
                pc: PcRole::Subscribe,
                ..
            } => Err(Reject::new(
                ErrorCode::WrongNegotiationState,
                "the server is the only offerer on `subscribe`",
            )),
            Signal::Answer {
                pc: PcRole::Publish,
                ..
            } => Err(Reject::new(
                ErrorCode::WrongNegotiationState,
                "the server never offers on `publish`; send an offer",
            )),
            Signal::Candidate { pc, candidate } => Ok(Negotiation::Candidate(pc, candidate)),
        }
    }
}

/// What the media engine holds now and has done since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct MediaStats {
    /// Open peer connections.
    pub connections: usize,
    /// Published tracks being forwarded.
    pub producers: usize,
    /// Forwarded (track, subscriber) pairs.
    pub consumers: usize,
    /// RTP packets forwarded to subscribers (one per copy).
    pub forwarded: u64,
    /// Their payload octets (headers and SRTP overhead excluded).
    pub forwarded_bytes: u64,
    /// Datagrams that reached the media socket from no known connection (dropped).
    pub unrouted: u64,
    /// Datagrams dropped because the media socket's send buffer was full.
    pub send_dropped: u64,
    /// Datagrams the kernel refused for another reason (an unreachable peer).
    pub send_failed: u64,
    /// Messages for a client (offers, answers, candidates) dropped because its queue was full.
    pub client_queue_full: u64,
    /// Recorded packets dropped because the recorder's queue was full.
    pub record_queue_full: u64,
}

impl MediaStats {
    /// Whether the engine holds nothing: no connection, track or consumer.
    pub fn is_idle(&self) -> bool {
        (self.connections, self.producers, self.consumers) == (0, 0, 0)
    }
}

pub(crate) fn rtp_kind(kind: MediaKind) -> RtpCodecKind {
    match kind {
        MediaKind::Audio => RtpCodecKind::Audio,
        MediaKind::Video => RtpCodecKind::Video,
    }
}
