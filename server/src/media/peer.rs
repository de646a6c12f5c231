//! How every webrtc-rs peer connection of ours is built: one place for the settings that
//! this stack needs to work with browsers (see ARCHITECTURE.md, "Media").
//! Public so the integration tests' clients and the load generator build peers the same way.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::{
    NackGeneratorBuilder, NackResponderBuilder, ReceiverReportBuilder, SenderReportBuilder, Slot,
};
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_RTX, MIME_TYPE_VP8, MIME_TYPE_VP9,
};
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, RTCDtlsRole, RTCIceCandidate as SansioCandidate,
};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind,
};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceCandidateType, RTCIceServer, Registry, SettingEngineBuilder,
    configure_simulcast_extension_headers, configure_twcc_receiver_only,
};

use signaling::wire::IceCandidate;
use webrtc::peer_connection::{RTCIceCandidate, RTCIceCandidateInit};

use super::rtcp_forward::{SENDING_SLOT, SLOT, ToApplication};
use super::rtx_unwrap::{self, RtxUnwrap};

/// Time between ICE connectivity checks.
pub const ICE_CHECK_INTERVAL: Duration = Duration::from_millis(25);

/// Packets of history per outgoing video stream kept to answer NACKs: half a second of
/// 1.2 Mbit/s video, a quarter at 2.5 Mbit/s. A retransmission is useful only within a round
/// trip or two of the loss (Janus keeps 200 ms by default). Each kept packet holds its
/// payload, so this is most of the memory of a busy room: webrtc-rs's default of 1024 cost
/// about 2 MiB a publisher, and 128 was still a fifth of room10's memory.
pub const NACK_HISTORY: u16 = 64;

/// Times one lost packet is asked for before it is given up, 100 ms apart, unless it comes
/// (webrtc-rs: without limit, which turns a burst of loss on a saturated host into seconds of
/// retransmissions). A retransmission counts as coming only with our `rtx_unwrap` stage in
/// the chain.
pub const NACK_RETRIES: u16 = 10;

/// Which way media flows on a peer connection, which decides its interceptors. Every stage of
/// webrtc-rs's interceptor chain handles every packet (a copy in, a copy out), so a connection
/// gets only the stages its direction uses. The SDP differs only in header extensions and
/// TWCC feedback (see `interceptors`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Media arrives (the webrtc-rs plane's `publish`, a client's `subscribe`): NACK
    /// generator (which sees retransmissions as the packets they repair), TWCC feedback,
    /// receiver reports.
    Receive,
    /// Media leaves (the webrtc-rs plane's `subscribe`, a client's `publish`): NACK responder
    /// (each packet sent again at most 3 times), sender reports, and inbound PLI/FIR handed
    /// to the application (the server relays them to the publisher; a client sends a
    /// keyframe).
    Send,
    /// The single-socket plane's `publish`: [`Flow::Receive`], and the publisher's sender
    /// reports handed to the application, which relays them to the subscribers.
    Ingest,
    /// The single-socket plane's `subscribe`: [`Flow::Send`] without a sender-report stage.
    /// The plane writes each forwarded stream's reports itself, from its publisher's: the
    /// publisher's clock mapping, which is what a receiver needs to play audio and video in
    /// sync, and this subscriber's own counts. The stage cost 6 % of the server's CPU in
    /// skillshare40, for every packet of every subscriber.
    Relay,
}

impl Flow {
    fn sends(self) -> bool {
        matches!(self, Flow::Send | Flow::Relay)
    }

    fn receives(self) -> bool {
        matches!(self, Flow::Receive | Flow::Ingest)
    }
}

/// Which end of our protocol a peer is on. The server answers its clients' `publish` offers as
/// the DTLS server (see `settings`); clients (the load generator's, the tests') keep
/// webrtc-rs's default, the DTLS client, as browsers do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The server's own connections.
    Server,
    /// A client's.
    Client,
}

/// The codecs we negotiate: Opus; VP8, VP9 (profile 0) and H.264 (baseline and constrained
/// baseline, packetization mode 1), each video codec with its RTX. That is every codec a
/// browser publishes unless told otherwise: Chrome and Firefox put VP8 first, Safari H.264.
/// The server forwards and never transcodes, so a codec only some subscribers can decode is
/// worse than none. webrtc-rs's defaults add G.722, PCMU, PCMA, VP9 profile 1, four more
/// H.264 variants, AV1 and H.265: every one of them is written into every media section of
/// every SDP and kept in each transceiver (in a room of 10, about 50 KiB per participant).
fn register_codecs(media: &mut MediaEngine) -> webrtc::error::Result<()> {
    for (codec, kind) in codecs() {
        media.register_codec(codec, kind)?;
    }
    Ok(())
}

/// The codecs [`register_codecs`] registers, each video codec followed by its RTX.
fn codecs() -> Vec<(RTCRtpCodecParameters, RtpCodecKind)> {
    let codec =
        |mime: &str, clock_rate, channels, fmtp: &str, feedback: &[(&str, &str)]| RTCRtpCodec {
            mime_type: mime.to_owned(),
            clock_rate,
            channels,
            sdp_fmtp_line: fmtp.to_owned(),
            rtcp_feedback: feedback
                .iter()
                .map(|(typ, parameter)| RTCPFeedback {
                    typ: (*typ).to_owned(),
                    parameter: (*parameter).to_owned(),
                })
                .collect(),
        };
    let opus = codec(MIME_TYPE_OPUS, 48000, 2, "minptime=10;useinbandfec=1", &[]);
    let mut codecs = vec![(
        RTCRtpCodecParameters {
            rtp_codec: opus,
            payload_type: 111,
        },
        RtpCodecKind::Audio,
    )];
    // What webrtc-rs's defaults give every video codec; TWCC is added with its interceptor.
    let feedback = [
        ("goog-remb", ""),
        ("ccm", "fir"),
        ("nack", ""),
        ("nack", "pli"),
    ];
    let h264 = |profile| {
        format!("level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={profile}")
    };
    // (payload type, its RTX payload type, MIME type, format parameters): webrtc-rs's numbers.
    let video = [
        (96, 97, MIME_TYPE_VP8, String::new()),
        (98, 99, MIME_TYPE_VP9, "profile-id=0".to_owned()),
        (102, 103, MIME_TYPE_H264, h264("42001f")),
        (125, 105, MIME_TYPE_H264, h264("42e01f")),
    ];
    for (payload_type, rtx, mime, fmtp) in video {
        codecs.push((
            RTCRtpCodecParameters {
                rtp_codec: codec(mime, 90000, 0, &fmtp, &feedback),
                payload_type,
            },
            RtpCodecKind::Video,
        ));
        codecs.push((
            RTCRtpCodecParameters {
                rtp_codec: codec(MIME_TYPE_RTX, 90000, 0, &format!("apt={payload_type}"), &[]),
                payload_type: rtx,
            },
            RtpCodecKind::Video,
        ));
    }
    codecs
}

/// Our registered codec that carries `codec` (a publisher's, as negotiated): the same MIME
/// type and format parameters, else the first of the same MIME type. What a subscriber's
/// section for that track offers, alone with its RTX.
pub(crate) fn registered_codec(codec: &RTCRtpCodec) -> Option<RTCRtpCodecParameters> {
    // Built once: the media loop asks for every subscription.
    static REGISTERED: LazyLock<Vec<RTCRtpCodecParameters>> =
        LazyLock::new(|| codecs().into_iter().map(|(c, _)| c).collect());
    let payload_type = super::pick_payload_type(&REGISTERED, codec)?;
    REGISTERED
        .iter()
        .find(|c| c.payload_type == payload_type)
        .cloned()
}

/// The feedback and header extensions we negotiate (TWCC, simulcast), and the interceptors
/// `flow` needs, with NACK bounded as above.
///
/// The server's sending connections negotiate no header extension and no TWCC feedback:
/// both planes forward packets with their extensions stripped (their ids are the
/// publisher's connection's), so a subscriber would never see one, and every line of them is
/// kept in each section of the offer and the answer, parsed, for the connection's life: in a
/// room of 40, 44 sections of each.
fn interceptors(
    media: &mut MediaEngine,
    flow: Flow,
    side: Side,
) -> webrtc::error::Result<Registry> {
    let extensions = side == Side::Client || !flow.sends();
    let mut registry = Registry::new();
    if extensions {
        configure_simulcast_extension_headers(media)?;
        // Registers TWCC feedback and its header extension with the codecs, and its
        // interceptor.
        let twcc = configure_twcc_receiver_only(Registry::new(), media)?;
        if flow.receives() {
            registry = twcc;
        }
    }
    if flow.sends() {
        registry = registry.with(
            Slot::NackResponder,
            NackResponderBuilder::new().with_size(NACK_HISTORY).build(),
        );
        if flow == Flow::Send {
            registry = registry.with(Slot::SenderReport, SenderReportBuilder::new().build());
        }
        registry = registry.with(Slot::from(SENDING_SLOT), ToApplication::keyframe_requests());
    }
    if flow.receives() {
        // The NACK generator above the reception statistics, with retransmissions unwrapped
        // just below it: see `rtx_unwrap`.
        registry = registry
            .with(
                Slot::from(rtx_unwrap::NACK_GENERATOR_SLOT),
                NackGeneratorBuilder::new()
                    .with_max_nacks_per_packet(NACK_RETRIES)
                    .build(),
            )
            .with(Slot::from(rtx_unwrap::SLOT), RtxUnwrap::new())
            .with(Slot::ReceiverReport, ReceiverReportBuilder::new().build());
        if flow == Flow::Ingest {
            registry = registry.with(Slot::from(SLOT), ToApplication::sender_reports());
        }
    }
    Ok(registry)
}

/// Where a peer binds its socket and what it advertises.
#[derive(Debug, Clone)]
pub struct PeerNet {
    /// Address to bind the UDP socket on (port 0: any).
    pub bind_ip: IpAddr,
    /// Address to advertise in host candidates, if different from `bind_ip` (1:1 NAT).
    pub advertise_ip: Option<IpAddr>,
    /// STUN/TURN servers.
    pub ice_servers: Vec<RTCIceServer>,
}

impl PeerNet {
    /// Bind and advertise one address, no ICE servers.
    pub fn loopback() -> Self {
        PeerNet {
            bind_ip: IpAddr::from([127, 0, 0, 1]),
            advertise_ip: None,
            ice_servers: vec![],
        }
    }
}

/// Build a peer connection with our codecs and interceptors (NACK, RTCP reports,
/// TWCC), mDNS off (it needs multicast, which a loopback-only host lacks), bound to one IP.
/// With `forward_keyframe_requests`, inbound PLI/FIR reach the application through
/// `TrackLocal::poll` (an SFU's subscriber side needs that).
pub async fn build(
    net: &PeerNet,
    handler: Arc<dyn PeerConnectionEventHandler>,
    side: Side,
    flow: Flow,
) -> webrtc::error::Result<Arc<dyn PeerConnection>> {
    let (media, registry) = codecs_and_interceptors(flow, side)?;
    let pc = PeerConnectionBuilder::new()
        .with_configuration(configuration(net))
        .with_media_engine(media)
        .with_setting_engine(settings(net, side).build())
        .with_interceptor_registry(registry)
        .with_handler(handler)
        .with_udp_addrs(vec![SocketAddr::new(net.bind_ip, 0)])
        .build()
        .await?;
    Ok(Arc::new(pc))
}

/// A sans-IO peer connection (webrtc-rs's `rtc` core) with the same codecs, interceptors and
/// settings as [`build`], whose one host candidate is `local`: the caller owns the socket and
/// feeds it datagrams. `credentials` fixes the ICE ufrag and password (the single-socket plane
/// routes by ufrag); `None` lets webrtc-rs choose them. Gathering is complete on return, so a
/// description made next carries the candidate and there is nothing to trickle.
pub fn build_sansio(
    now: std::time::Instant,
    net: &PeerNet,
    side: Side,
    flow: Flow,
    local: SocketAddr,
    credentials: Option<(String, String)>,
) -> rtc::shared::error::Result<RTCPeerConnection> {
    let (media, registry) = codecs_and_interceptors(flow, side)?;
    let mut settings = settings(net, side);
    if let Some((ufrag, password)) = credentials {
        settings = settings.with_ice_credentials(ufrag, password);
    }
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_configuration(configuration(net))
        .with_media_engine(media)
        .with_setting_engine(settings.build())
        .with_interceptor_registry(registry)
        .build(now)?;
    let host = CandidateHostConfig {
        base_config: CandidateConfig {
            network: "udp".to_owned(),
            address: local.ip().to_string(),
            port: local.port(),
            component: 1,
            ..Default::default()
        },
        ..Default::default()
    }
    .new_candidate_host()?;
    pc.add_local_candidate(SansioCandidate::from(&host).to_json()?)?;
    // End of gathering: there is nothing else to find.
    pc.add_local_candidate(Default::default())?;
    Ok(pc)
}

/// Our codecs and the interceptors `flow` needs on `side`. Shared by both media planes.
pub(crate) fn codecs_and_interceptors(
    flow: Flow,
    side: Side,
) -> webrtc::error::Result<(MediaEngine, Registry)> {
    let mut media = MediaEngine::default();
    register_codecs(&mut media)?;
    let registry = interceptors(&mut media, flow, side)?;
    Ok((media, registry))
}

/// ICE servers of a peer.
pub(crate) fn configuration(net: &PeerNet) -> webrtc::peer_connection::RTCConfiguration {
    RTCConfigurationBuilder::new()
        .with_ice_servers(net.ice_servers.clone())
        .build()
}

/// The settings every peer of ours needs here. Shared by both media planes.
pub(crate) fn settings(net: &PeerNet, side: Side) -> SettingEngineBuilder {
    // A browser's checks often reach us before its trickled candidate does, so its address is
    // first learned as peer-reflexive. webrtc-rs waits 1 s before nominating such a pair
    // (500 ms for server-reflexive); a server with a known address gains nothing by waiting.
    let mut settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_prflx_acceptance_min_wait(Some(Duration::ZERO))
        .with_srflx_acceptance_min_wait(Some(Duration::ZERO))
        // Connectivity checks every 25 ms rather than webrtc-rs's 200 ms: on a live network the
        // first check decides when media can flow, and that was most of the join time. The
        // attempt count keeps the default 1.4 s before a pair is given up.
        .with_ice_connection_attempts(Some(ICE_CHECK_INTERVAL), Some(56));
    if let Some(ip) = net.advertise_ip.filter(|ip| *ip != net.bind_ip) {
        settings = settings.with_nat_1to1_ips(vec![ip.to_string()], RTCIceCandidateType::Host);
    }
    if side == Side::Server {
        // Answering the client's `publish` offer (the server's only answer), be the DTLS
        // server: the client starts the handshake when it is ready. As DTLS client
        // (webrtc-rs's default) we sent our ClientHello the moment ICE connected on our side,
        // which can be before the client listens; a lost hello costs the 1 s retransmission
        // timer, and that was most of the slow joins in a busy room.
        settings = settings.with_answering_dtls_role(RTCDtlsRole::Server);
    }
    settings
}

/// A gathered local candidate in the wire's shape (`None` if webrtc-rs cannot express it).
pub fn candidate_to_wire(candidate: &RTCIceCandidate) -> Option<IceCandidate> {
    let init = candidate.to_json().ok()?;
    Some(IceCandidate {
        candidate: init.candidate,
        sdp_mid: init.sdp_mid,
        sdp_m_line_index: init.sdp_mline_index,
        username_fragment: init.username_fragment,
    })
}

/// A remote candidate from the wire, for `add_ice_candidate`.
pub fn candidate_from_wire(c: IceCandidate) -> RTCIceCandidateInit {
    RTCIceCandidateInit {
        candidate: c.candidate,
        sdp_mid: c.sdp_mid,
        sdp_mline_index: c.sdp_m_line_index,
        username_fragment: c.username_fragment,
        ..Default::default()
    }
}
