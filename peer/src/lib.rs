//! How every WebRTC peer connection of Roundtable's is built: the server's, the integration
//! tests' clients and the load generator's. One place for the settings this stack needs to
//! work with browsers (ARCHITECTURE.md, "Media"): codecs, the interceptor chain ([`chain`]),
//! ICE and DTLS settings.
//!
//! The server uses the sans-IO [`build_sansio`] only. The `client` feature adds [`build`],
//! on webrtc-rs's async API, for clients; without it this crate does not depend on it.

pub mod chain;

use std::net::{IpAddr, SocketAddr};
use std::sync::LazyLock;
use std::time::Duration;

use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::Registry;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_RTX, MIME_TYPE_VP8, MIME_TYPE_VP9, MediaEngine,
};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::configuration::{
    RTCConfiguration, RTCConfigurationBuilder, RTCIceServer,
};
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, RTCDtlsRole, RTCIceCandidate, RTCIceCandidateInit,
    RTCIceCandidateType,
};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind,
};
use signaling::wire::IceCandidate;

pub use chain::{Flow, NACK_HISTORY, NACK_RETRIES, Side};

/// Time between ICE connectivity checks.
pub const ICE_CHECK_INTERVAL: Duration = Duration::from_millis(25);

/// The codecs we negotiate: Opus; VP8, VP9 (profile 0) and H.264 (baseline and constrained
/// baseline, packetization mode 1), each video codec with its RTX. That is every codec a
/// browser publishes unless told otherwise: Chrome and Firefox put VP8 first, Safari H.264.
/// The server forwards and never transcodes, so a codec only some subscribers can decode is
/// worse than none. webrtc-rs's defaults add G.722, PCMU, PCMA, VP9 profile 1, four more
/// H.264 variants, AV1 and H.265: every one of them is written into every media section of
/// every SDP and kept in each transceiver (in a room of 10, about 50 KiB per participant).
fn register_codecs(media: &mut MediaEngine) -> rtc::shared::error::Result<()> {
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
pub fn registered_codec(codec: &RTCRtpCodec) -> Option<RTCRtpCodecParameters> {
    // Built once: the media loop asks for every subscription.
    static REGISTERED: LazyLock<Vec<RTCRtpCodecParameters>> =
        LazyLock::new(|| codecs().into_iter().map(|(c, _)| c).collect());
    let payload_type = pick_payload_type(&REGISTERED, codec)?;
    REGISTERED
        .iter()
        .find(|c| c.payload_type == payload_type)
        .cloned()
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

#[cfg(feature = "client")]
/// Build a peer connection with our codecs and interceptors (NACK, RTCP reports,
/// TWCC), mDNS off (it needs multicast, which a loopback-only host lacks), bound to one IP.
/// With `forward_keyframe_requests`, inbound PLI/FIR reach the application through
/// `TrackLocal::poll` (an SFU's subscriber side needs that).
pub async fn build(
    net: &PeerNet,
    handler: std::sync::Arc<dyn webrtc::peer_connection::PeerConnectionEventHandler>,
    side: Side,
    flow: Flow,
) -> rtc::shared::error::Result<std::sync::Arc<dyn webrtc::peer_connection::PeerConnection>> {
    let (media, registry) = codecs_and_interceptors(flow, side)?;
    let pc = webrtc::peer_connection::PeerConnectionBuilder::new()
        .with_configuration(configuration(net))
        .with_media_engine(media)
        .with_setting_engine(settings(net, side).build())
        .with_interceptor_registry(registry)
        .with_handler(handler)
        .with_udp_addrs(vec![SocketAddr::new(net.bind_ip, 0)])
        .build()
        .await?;
    Ok(std::sync::Arc::new(pc))
}

/// A sans-IO peer connection (webrtc-rs's `rtc` core) with the same codecs, interceptors and
/// settings as [`build`], whose one host candidate is `local`: the caller owns the socket and
/// feeds it datagrams. `credentials` fixes the ICE ufrag and password (the server's engine
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
    pc.add_local_candidate(RTCIceCandidate::from(&host).to_json()?)?;
    // End of gathering: there is nothing else to find.
    pc.add_local_candidate(Default::default())?;
    Ok(pc)
}

/// Our codecs and the interceptors `flow` needs on `side`.
fn codecs_and_interceptors(
    flow: Flow,
    side: Side,
) -> rtc::shared::error::Result<(MediaEngine, Registry)> {
    let mut media = MediaEngine::default();
    register_codecs(&mut media)?;
    let registry = chain::registry(&mut media, flow, side)?;
    Ok((media, registry))
}

/// ICE servers of a peer.
fn configuration(net: &PeerNet) -> RTCConfiguration {
    RTCConfigurationBuilder::new()
        .with_ice_servers(net.ice_servers.clone())
        .build()
}

/// The settings every peer of ours needs here.
fn settings(net: &PeerNet, side: Side) -> SettingEngineBuilder {
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

/// The payload type of `codecs` that carries `codec`: the same MIME type, preferring the same
/// format parameters (H.264 profiles differ only there).
pub fn pick_payload_type(codecs: &[RTCRtpCodecParameters], codec: &RTCRtpCodec) -> Option<u8> {
    let same_mime =
        |c: &&RTCRtpCodecParameters| c.rtp_codec.mime_type.eq_ignore_ascii_case(&codec.mime_type);
    codecs
        .iter()
        .filter(same_mime)
        .find(|c| c.rtp_codec.sdp_fmtp_line == codec.sdp_fmtp_line)
        .or_else(|| codecs.iter().find(same_mime))
        .map(|c| c.payload_type)
}
