//! The media plane: everything that touches RTP. The room task talks to it only through
//! [`MediaPlane`] and [`MediaSession`], behind which two planes stand: the single-socket plane
//! on webrtc-rs's sans-IO `rtc` core (the default) and the webrtc-rs plane, one task and socket
//! per connection.
//!
//! Architecture invariant: nothing here waits on the database, the disk, the room task or a
//! slow subscriber. A producer pushes into each consumer's bounded queue with `try_send` and
//! counts what it had to drop.

pub mod delay;
pub mod fanout;
pub mod gauge;
mod nack_guard;
pub mod peer;
pub mod rtc_plane;
mod rtcp_forward;
mod rtx_unwrap;
pub mod udp;
pub mod webrtc_plane;

use std::sync::Arc;

use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RtpCodecKind};
use signaling::wire::{ErrorCode, IceCandidate, MediaKind, PcRole, Reject, ServerMsg};
use tokio::sync::mpsc;

pub use delay::DelaySnapshot;
pub use fanout::Producer;
pub use gauge::PlaneStats;

/// Sequence numbers a published track remembers having forwarded: 4 s of 1.2 Mbit/s video.
/// A copy that comes later than that is dropped as too late to be of use, as SRTP drops one
/// more than 64 packets late on the track's own stream.
const SEEN_WINDOW: usize = 512;

/// The packets of a published track that came lately, so that none is forwarded twice.
///
/// SRTP drops a packet that comes again on the same stream. A copy unwrapped from the track's
/// retransmission stream (RTX) is left to us: a retransmission asked for after the packet
/// itself came, or recent media that a publisher sends again to probe its bandwidth, as
/// Chrome does. Forwarded, it would cost the server and every subscriber's link, and then be
/// dropped by the subscriber's SRTP.
pub(crate) struct Seen(rtc::shared::replay_detector::WrappedSlidingWindowDetector);

impl Default for Seen {
    fn default() -> Self {
        Seen(
            rtc::shared::replay_detector::WrappedSlidingWindowDetector::new(
                SEEN_WINDOW,
                u64::from(u16::MAX),
            ),
        )
    }
}

impl Seen {
    /// Whether packet `seq` is new (recorded as seen now), rather than a copy of one that
    /// came lately or one too old to forward.
    pub(crate) fn is_new(&mut self, seq: u16) -> bool {
        use rtc::shared::replay_detector::ReplayDetector;
        let new = self.0.check(u64::from(seq));
        if new {
            self.0.accept();
        }
        new
    }
}

/// What a media session tells its room.
#[derive(Debug)]
pub enum MediaEvent {
    /// A participant started publishing a track.
    TrackPublished {
        /// Who publishes.
        participant: String,
        /// The producer, ready for consumers.
        producer: Arc<Producer>,
    },
    /// A producer track ended.
    TrackEnded {
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
    /// Refuse what the protocol never allows (`wrong_negotiation_state`), whatever the plane.
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

/// Everything a new session needs to talk back.
pub struct SessionCtx {
    /// The participant id.
    pub participant: String,
    /// Messages for this participant's WebSocket (answers, offers, candidates, errors).
    pub to_client: mpsc::Sender<ServerMsg>,
    /// Events for the room task.
    pub to_room: mpsc::UnboundedSender<MediaEvent>,
}

/// A participant's media: its publish and subscribe connections and its consumers.
/// Every method returns at once; the work happens on the session's own task.
pub trait MediaSession: Send + Sync {
    /// Apply a negotiation message from the client. Errors come back to the client as
    /// `error` messages on its socket; a full command queue is refused here.
    fn signal(&self, signal: Signal) -> Result<(), Reject>;
    /// Start forwarding `producer` to this participant.
    fn subscribe(&self, producer: Arc<Producer>);
    /// Stop forwarding the producer with this track id.
    fn unsubscribe(&self, track_id: &str);
    /// Tear everything down: connections, tasks, producers and consumers.
    fn close(&self);
}

/// A factory of media sessions.
pub trait MediaPlane: Send + Sync + 'static {
    /// Open a session for a participant who just joined.
    fn open_session(&self, ctx: SessionCtx) -> Arc<dyn MediaSession>;
    /// Peer connections and tasks held now; for metrics and leak tests.
    fn stats(&self) -> PlaneStats;
    /// The one UDP address every connection shares, if the plane has one.
    fn media_addr(&self) -> Option<std::net::SocketAddr> {
        None
    }
    /// How long forwarded packets stayed in the server, since it started, if the plane
    /// measures it (the single-socket plane does; see [`delay`]).
    fn forward_delay(&self) -> Option<DelaySnapshot> {
        None
    }
}

pub(crate) fn queue_full() -> Reject {
    Reject::new(
        ErrorCode::RateLimited,
        "too many negotiation messages in flight",
    )
}

pub(crate) fn rtp_kind(kind: MediaKind) -> RtpCodecKind {
    match kind {
        MediaKind::Audio => RtpCodecKind::Audio,
        MediaKind::Video => RtpCodecKind::Video,
    }
}

/// The payload type the subscriber negotiated for the producer's codec: same MIME type,
/// preferring the same format parameters (H.264 profiles differ only there).
pub(crate) fn pick_payload_type(
    codecs: &[rtc::rtp_transceiver::rtp_sender::RTCRtpCodecParameters],
    codec: &RTCRtpCodec,
) -> Option<u8> {
    let same_mime = |c: &&rtc::rtp_transceiver::rtp_sender::RTCRtpCodecParameters| {
        c.rtp_codec.mime_type.eq_ignore_ascii_case(&codec.mime_type)
    };
    codecs
        .iter()
        .filter(same_mime)
        .find(|c| c.rtp_codec.sdp_fmtp_line == codec.sdp_fmtp_line)
        .or_else(|| codecs.iter().find(same_mime))
        .map(|c| c.payload_type)
}

/// Drop a packet's header extensions (their ids are per connection).
pub(crate) fn strip_extensions(header: &mut rtc::rtp::header::Header) {
    header.extension = false;
    header.extension_profile = 0;
    header.extensions = Vec::new();
    header.extensions_padding = 0;
}
