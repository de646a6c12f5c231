//! Recording at the engine: a recorded track's packets come out as values, in order and
//! untouched by any consumer's rewrite; after `Record` off, not one more; a track that is not
//! recorded never; and a closed gate records nothing, as it forwards nothing.

use std::time::Duration;

use roundtable_peer::Flow;

use super::sim::{self, Net};
use crate::media::values::RecordedPacket;

/// Every publisher in `who` sends one packet, `rounds` times, 20 ms apart.
fn send(net: &mut Net, who: &[usize], rounds: usize) {
    for _ in 0..rounds {
        for &i in who {
            net.send_rtp(i);
        }
        net.run_until(|_| false, Duration::from_millis(20));
    }
}

fn taken(net: &mut Net) -> Vec<RecordedPacket> {
    net.recorded.drain(..).collect()
}

#[test]
fn a_recorded_tracks_packets_come_out_in_order_and_stop_when_told() {
    let mut net = Net::new();
    let ann = net.publish(Flow::Send, sim::Media::Opus);
    let _bo = net.publish(Flow::Send, sim::Media::Opus);
    // A subscriber, so that forwarding (and its rewrite) runs alongside.
    let sub = net.join(Flow::Receive);
    net.subscribe(sub, &ann);
    net.answer_offer(sub);
    net.run_until(sim::connected(sub), Duration::from_secs(5));
    send(&mut net, &[0, 1], 3);
    assert!(taken(&mut net).is_empty(), "nothing is recorded unasked");
    let _ = net.received(sub);

    net.record(&ann, true);
    send(&mut net, &[0, 1], 10);
    let got = taken(&mut net);
    assert_eq!(got.len(), 10, "Ann's ten packets, and none of Bo's");
    assert!(got.iter().all(|p| p.track == ann.key));
    let first = got[0].seq;
    for (k, p) in got.iter().enumerate() {
        assert_eq!(
            p.seq,
            first.wrapping_add(k as u16),
            "in order, none missing"
        );
        assert_eq!(
            p.timestamp,
            u32::from(p.seq) * 960,
            "the publisher's own RTP time"
        );
        assert_eq!(
            (p.ssrc, p.payload_type),
            (1111, 111),
            "the publisher's SSRC and codec"
        );
        assert_eq!(p.payload.len(), 80);
    }
    assert!(got.windows(2).all(|w| w[0].arrived <= w[1].arrived));
    let forwarded = net.received(sub).0;
    assert_eq!(forwarded.len(), 10);
    assert!(
        forwarded.iter().all(|p| p.header.ssrc != 1111),
        "the subscriber's copies are rewritten; the recorder's are not"
    );

    net.record(&ann, false);
    send(&mut net, &[0, 1], 10);
    assert!(
        taken(&mut net).is_empty(),
        "not one packet after `Record` off"
    );
}

#[test]
fn a_closed_gate_records_nothing() {
    let mut net = Net::new();
    let ann = net.publish(Flow::Send, sim::Media::Opus);
    net.record(&ann, true);
    net.gate(&ann, false);
    send(&mut net, &[0], 5);
    assert!(
        taken(&mut net).is_empty(),
        "what nobody hears is not recorded"
    );
    net.gate(&ann, true);
    send(&mut net, &[0], 5);
    assert_eq!(taken(&mut net).len(), 5);
}

/// A video file starts at a keyframe: recording a video track asks its publisher for one at
/// once, past the throttle, and only once. Recording an audio track asks for nothing.
#[test]
fn recording_a_video_track_asks_its_publisher_for_a_keyframe() {
    let mut net = Net::new();
    let cam = net.publish(Flow::Send, sim::Media::Vp8);
    let mic = net.publish(Flow::Send, sim::Media::Opus);
    send(&mut net, &[0, 1], 3);
    let _ = net.keyframe_requests(0);
    let _ = net.keyframe_requests(1);

    net.record(&mic, true);
    net.run_until(|_| false, Duration::from_millis(50));
    assert_eq!(net.keyframe_requests(1), 0, "audio has no keyframes");

    net.record(&cam, true);
    net.run_until(|_| false, Duration::from_millis(50));
    assert_eq!(net.keyframe_requests(0), 1, "one keyframe asked for");
    send(&mut net, &[0], 3);
    let got = taken(&mut net);
    assert!(got.iter().any(|p| p.track == cam.key));
    assert!(
        got.iter()
            .filter(|p| p.track == cam.key)
            .all(|p| p.codec == crate::media::Codec::Vp8),
        "the recorder is told the codec"
    );

    net.record(&cam, true);
    net.run_until(|_| false, Duration::from_millis(50));
    assert_eq!(
        net.keyframe_requests(0),
        0,
        "a second `Record` on asks nothing"
    );
}
