//! The interceptor chain of every peer connection of ours, in one table: [`CHAIN`] lists its
//! stages from the wire up, with their slots and which connections get them. The sizes the
//! stages take ([`NACK_HISTORY`], [`NACK_RETRIES`]) are passed to them here.
//!
//! Every stage of webrtc-rs's chain handles every packet (a copy in, a copy out), so a
//! connection gets only the stages its direction ([`Flow`]) uses. The stages of our own
//! (`nack_guard`, `rtx_unwrap`, `to_app`) import nothing from this crate.

mod nack_guard;
mod rtx_unwrap;
mod to_app;

use rtc::interceptor::{
    NackGeneratorBuilder, NackResponderBuilder, ReceiverReportBuilder, Registry,
    SenderReportBuilder, Slot,
};
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_simulcast_extension_headers, configure_twcc_receiver_only,
};
use rtc::peer_connection::configuration::media_engine::MediaEngine;

pub use nack_guard::{MAX_RESENDS, MIN_RESEND_GAP, NackGuard};
pub use rtx_unwrap::RtxUnwrap;
pub use to_app::ToApplication;

/// Packets of history per outgoing video stream kept to answer NACKs: half a second of
/// 1.2 Mbit/s video, a quarter at 2.5 Mbit/s. A retransmission is useful only within a round
/// trip or two of the loss (Janus keeps 200 ms by default). Each kept packet holds its
/// payload, so this is most of the memory of a busy room: webrtc-rs's default of 1024 cost
/// about 2 MiB a publisher, and 128 was still a fifth of room10's memory.
pub const NACK_HISTORY: u16 = 64;

/// Times one lost packet is asked for before it is given up, 100 ms apart, unless it comes
/// (webrtc-rs: without limit, which turns a burst of loss on a saturated host into seconds of
/// retransmissions). A retransmission counts as coming only with the `rtx_unwrap` stage below
/// the generator.
pub const NACK_RETRIES: u16 = 10;

/// Which way media flows on a peer connection, which decides its stages. The SDP differs only
/// in header extensions and TWCC feedback (see [`registry`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Media arrives (a client's `subscribe`): NACK generator (which sees retransmissions as
    /// the packets they repair), TWCC feedback, receiver reports.
    Receive,
    /// Media leaves (a client's `publish`): NACK responder (each packet sent again at most 3
    /// times), sender reports, and inbound PLI/FIR handed to the application (a client sends
    /// a keyframe).
    Send,
    /// The server's `publish`: [`Flow::Receive`], and the publisher's sender reports handed
    /// to the application, which relays them to the subscribers.
    Ingest,
    /// The server's `subscribe`: [`Flow::Send`] without a sender-report stage. The engine
    /// writes each forwarded stream's reports itself, from its publisher's: the publisher's
    /// clock mapping, which is what a receiver needs to play audio and video in sync, and
    /// this subscriber's own counts. The stage cost 6 % of the server's CPU in skillshare40,
    /// for every packet of every subscriber.
    Relay,
}

impl Flow {
    /// Whether media leaves on the connection.
    pub fn sends(self) -> bool {
        matches!(self, Flow::Send | Flow::Relay)
    }

    /// Whether media arrives on the connection.
    pub fn receives(self) -> bool {
        matches!(self, Flow::Receive | Flow::Ingest)
    }
}

/// Which end of our protocol a peer is on. The server answers its clients' `publish` offers as
/// the DTLS server; clients (the load generator's, the tests') keep webrtc-rs's default, the
/// DTLS client, as browsers do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The server's own connections.
    Server,
    /// A client's.
    Client,
}

/// A stage of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// [`ToApplication::keyframe_requests`]: PLI and FIR to the application, and NACKs
    /// bounded by a [`NackGuard`] before the responder reads them.
    KeyframeRequests,
    /// webrtc-rs's NACK responder, with [`NACK_HISTORY`] packets per stream.
    NackResponder,
    /// webrtc-rs's TWCC feedback (registered with its header extension).
    TwccFeedback,
    /// webrtc-rs's receiver reports.
    ReceiverReport,
    /// webrtc-rs's sender reports.
    SenderReport,
    /// [`RtxUnwrap`]: retransmissions shown to the NACK generator as what they repair.
    RtxUnwrap,
    /// webrtc-rs's NACK generator, [`NACK_RETRIES`] requests per lost packet.
    NackGenerator,
    /// [`ToApplication::sender_reports`]: a publisher's sender reports to the application.
    SenderReportsToApp,
}

/// Which connections get a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum On {
    /// Those that send media.
    Sending,
    /// Those that receive media.
    Receiving,
    /// [`Flow::Send`] only.
    SendOnly,
    /// [`Flow::Ingest`] only.
    IngestOnly,
}

impl On {
    fn applies(self, flow: Flow) -> bool {
        match self {
            On::Sending => flow.sends(),
            On::Receiving => flow.receives(),
            On::SendOnly => flow == Flow::Send,
            On::IngestOnly => flow == Flow::Ingest,
        }
    }
}

/// The chain, from the wire up: `(stage, slot, connections)`. A packet read goes up the
/// slots; a packet written goes down. The reasons for each place:
/// - the NACK guard just below the responder (4,000, webrtc-rs's), which reads the NACKs it
///   has bounded;
/// - TWCC feedback (8,000) and receiver reports (10,000) see the retransmission stream as it
///   is on the wire;
/// - `rtx_unwrap` just below the NACK generator, which moves above those statistics and below
///   the jitter buffer's slot (13,000) so that it sees repaired packets;
/// - the sender reports to the application last, so every other stage saw all RTCP first.
pub const CHAIN: [(Stage, usize, On); 8] = [
    (Stage::KeyframeRequests, 3_500, On::Sending),
    (Stage::NackResponder, 4_000, On::Sending),
    (Stage::TwccFeedback, 8_000, On::Receiving),
    (Stage::ReceiverReport, 10_000, On::Receiving),
    (Stage::SenderReport, 11_000, On::SendOnly),
    (Stage::RtxUnwrap, 12_400, On::Receiving),
    (Stage::NackGenerator, 12_500, On::Receiving),
    (Stage::SenderReportsToApp, 14_000, On::IngestOnly),
];

/// The stages `flow` gets, in order from the wire.
pub fn stages(flow: Flow) -> impl Iterator<Item = Stage> {
    CHAIN
        .into_iter()
        .filter(move |(_, _, on)| on.applies(flow))
        .map(|(stage, _, _)| stage)
}

/// The header extensions and feedback we negotiate, into `media`, and the chain `flow` needs
/// on `side`.
///
/// The server's sending connections negotiate no header extension and no TWCC feedback: the
/// engine forwards packets with their extensions stripped (their ids are the publisher's
/// connection's), so a subscriber would never see one, and every line of them is kept in
/// each section of the offer and the answer, parsed, for the connection's life.
pub fn registry(
    media: &mut MediaEngine,
    flow: Flow,
    side: Side,
) -> rtc::shared::error::Result<Registry> {
    let extensions = side == Side::Client || !flow.sends();
    let mut registry = Registry::new();
    for (stage, slot, on) in CHAIN {
        if !on.applies(flow) {
            continue;
        }
        registry = match stage {
            Stage::TwccFeedback => {
                // Registers TWCC feedback and its header extension with the codecs, and its
                // interceptor at webrtc-rs's own slot (the table's).
                configure_simulcast_extension_headers(media)?;
                configure_twcc_receiver_only(registry, media)?
            }
            Stage::KeyframeRequests => registry.with(
                Slot::from(slot),
                ToApplication::keyframe_requests(NACK_HISTORY),
            ),
            Stage::NackResponder => registry.with(
                Slot::from(slot),
                NackResponderBuilder::new().with_size(NACK_HISTORY).build(),
            ),
            Stage::ReceiverReport => {
                registry.with(Slot::from(slot), ReceiverReportBuilder::new().build())
            }
            Stage::SenderReport => {
                registry.with(Slot::from(slot), SenderReportBuilder::new().build())
            }
            Stage::RtxUnwrap => registry.with(Slot::from(slot), RtxUnwrap::new()),
            Stage::NackGenerator => registry.with(
                Slot::from(slot),
                NackGeneratorBuilder::new()
                    .with_max_nacks_per_packet(NACK_RETRIES)
                    .build(),
            ),
            Stage::SenderReportsToApp => {
                registry.with(Slot::from(slot), ToApplication::sender_reports())
            }
        };
    }
    // A client's sending connection negotiates the extensions too (browsers do), without
    // the receiving stages.
    if extensions && !flow.receives() {
        configure_simulcast_extension_headers(media)?;
        let _ = configure_twcc_receiver_only(Registry::new(), media)?;
    }
    Ok(registry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_is_in_slot_order_and_the_table_keeps_webrtc_rs_slots() {
        let slots: Vec<usize> = CHAIN.iter().map(|(_, slot, _)| *slot).collect();
        assert!(slots.windows(2).all(|w| w[0] < w[1]), "{slots:?}");
        let theirs = [
            (Stage::NackResponder, Slot::NackResponder),
            (Stage::TwccFeedback, Slot::TwccReceiver),
            (Stage::ReceiverReport, Slot::ReceiverReport),
            (Stage::SenderReport, Slot::SenderReport),
        ];
        for (stage, slot) in theirs {
            let row = CHAIN.iter().find(|(s, _, _)| *s == stage).unwrap();
            assert_eq!(Slot::from(row.1), slot, "{stage:?}");
        }
    }

    #[test]
    fn each_flow_gets_the_stages_of_its_direction() {
        use Stage::*;
        let of = |flow| stages(flow).collect::<Vec<_>>();
        assert_eq!(
            of(Flow::Send),
            [KeyframeRequests, NackResponder, SenderReport]
        );
        assert_eq!(of(Flow::Relay), [KeyframeRequests, NackResponder]);
        assert_eq!(
            of(Flow::Receive),
            [TwccFeedback, ReceiverReport, RtxUnwrap, NackGenerator]
        );
        assert_eq!(
            of(Flow::Ingest),
            [
                TwccFeedback,
                ReceiverReport,
                RtxUnwrap,
                NackGenerator,
                SenderReportsToApp
            ]
        );
    }
}
