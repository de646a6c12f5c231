//! Scenarios as data: how many rooms and participants, who publishes video, how they join, for
//! how long, and what their media looks like on the wire. The named ones are issue #3's.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::client::{Keyframes, PublishPlan, TrackPlan};

/// How participants arrive.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Joins {
    /// One join starts every `gap_ms` milliseconds, across all rooms, as people trickle in.
    Staggered {
        /// Milliseconds between two join starts.
        gap_ms: u64,
    },
    /// Every join starts at once.
    AllAtOnce,
}

/// Synthetic Opus: 50 packets/s of 80 to 160 bytes (speech at 32 to 64 kbit/s).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AudioProfile {
    /// Packets per second.
    pub packets_per_s: u32,
    /// Smallest payload.
    pub min_bytes: usize,
    /// Largest payload.
    pub max_bytes: usize,
}

/// Synthetic VP8: full-size packets at the rate the bitrate needs (125/s at 1.2 Mbit/s), plus
/// a keyframe burst every few seconds and on request.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VideoProfile {
    /// Bits per second, keyframes aside.
    pub bitrate_bps: u64,
    /// Payload bytes per packet (below a 1,280-byte path MTU once SRTP and headers are on).
    pub packet_bytes: usize,
    /// Seconds between periodic keyframes.
    pub keyframe_every_s: u64,
    /// Extra packets a keyframe adds (a keyframe is several times a delta frame).
    pub keyframe_extra_packets: u64,
}

/// One load scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    /// Its name in reports.
    pub name: String,
    /// Rooms, all alike.
    pub rooms: usize,
    /// Participants per room; all publish audio and subscribe to everyone else.
    pub participants: usize,
    /// Participants per room that also publish video (the first ones to join).
    pub video_publishers: usize,
    /// How they arrive.
    pub joins: Joins,
    /// Seconds of measurement once everyone receives everyone.
    pub duration_s: f64,
    /// What audio looks like.
    pub audio: AudioProfile,
    /// What video looks like.
    pub video: VideoProfile,
}

impl AudioProfile {
    /// Opus at 50 packets/s, 80 to 160 bytes.
    pub const OPUS: AudioProfile = AudioProfile {
        packets_per_s: 50,
        min_bytes: 80,
        max_bytes: 160,
    };
}

impl VideoProfile {
    /// VP8 at 1.2 Mbit/s: 125 packets/s of 1,200 bytes, a 20-packet keyframe every 3 s.
    pub const VP8_1200K: VideoProfile = VideoProfile {
        bitrate_bps: 1_200_000,
        packet_bytes: 1200,
        keyframe_every_s: 3,
        keyframe_extra_packets: 20,
    };
}

/// The names [`Scenario::named`] knows.
pub const NAMES: [&str; 4] = ["room10", "rooms", "skillshare40", "joinstorm"];

impl Scenario {
    /// A scenario of `rooms` × `participants`, `video_publishers` of them with video, staggered
    /// joins 200 ms apart, 20 s of measurement, and the default media profiles.
    pub fn new(name: &str, rooms: usize, participants: usize, video_publishers: usize) -> Self {
        Scenario {
            name: name.into(),
            rooms,
            participants,
            video_publishers: video_publishers.min(participants),
            joins: Joins::Staggered { gap_ms: 200 },
            duration_s: 20.0,
            audio: AudioProfile::OPUS,
            video: VideoProfile::VP8_1200K,
        }
    }

    /// One of issue #3's scenarios, by name.
    pub fn named(name: &str) -> Option<Self> {
        let scenario = match name {
            "room10" => Scenario::new(name, 1, 10, 10),
            "rooms" => Scenario::new(name, 8, 6, 6),
            "skillshare40" => Scenario::new(name, 1, 40, 5),
            "joinstorm" => Scenario {
                joins: Joins::AllAtOnce,
                duration_s: 10.0,
                ..Scenario::new(name, 1, 40, 5)
            },
            _ => return None,
        };
        Some(scenario)
    }

    /// Participants over all rooms.
    pub fn total_participants(&self) -> usize {
        self.rooms * self.participants
    }

    /// What the participant at `index` (in join order within its room) publishes.
    pub fn publish_plan(&self, index: usize) -> PublishPlan {
        let audio = &self.audio;
        PublishPlan {
            audio: Some(TrackPlan {
                period: Duration::from_secs(1) / audio.packets_per_s.max(1),
                min_bytes: audio.min_bytes,
                max_bytes: audio.max_bytes.max(audio.min_bytes),
                keyframes: None,
                packets: None,
                vp8_framing: false,
            }),
            video: (index < self.video_publishers).then(|| self.video_plan()),
            video_codec: Default::default(),
            set: 0,
            audio_payloads: None,
        }
    }

    fn video_plan(&self) -> TrackPlan {
        let video = &self.video;
        let bits_per_packet = (video.packet_bytes as u64 * 8).max(1);
        let packets_per_s = (video.bitrate_bps / bits_per_packet).max(1);
        TrackPlan {
            period: Duration::from_secs(1) / packets_per_s as u32,
            min_bytes: video.packet_bytes,
            max_bytes: video.packet_bytes,
            keyframes: Some(Keyframes {
                every: Duration::from_secs(video.keyframe_every_s.max(1)),
                extra_packets: video.keyframe_extra_packets,
            }),
            packets: None,
            // Payloads framed as VP8, as a browser's are: a recorder then writes them (each
            // packet a frame: more blocks than a real encoder's, so an upper bound).
            vp8_framing: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_scenario_exists_and_matches_the_issue() {
        for name in NAMES {
            assert_eq!(Scenario::named(name).unwrap().name, name);
        }
        assert!(Scenario::named("nope").is_none());
        let s = Scenario::named("skillshare40").unwrap();
        assert_eq!((s.rooms, s.participants, s.video_publishers), (1, 40, 5));
        assert_eq!(Scenario::named("rooms").unwrap().total_participants(), 48);
        assert_eq!(
            Scenario::named("joinstorm").unwrap().joins,
            Joins::AllAtOnce
        );
    }

    #[test]
    fn media_rates_follow_the_profiles() {
        let s = Scenario::named("skillshare40").unwrap();
        let first = s.publish_plan(0);
        assert_eq!(first.audio.unwrap().period, Duration::from_millis(20));
        let video = first.video.unwrap();
        assert_eq!(video.period, Duration::from_millis(8), "125 packets/s");
        assert_eq!(video.max_bytes, 1200);
        assert!(s.publish_plan(5).video.is_none(), "only 5 publish video");
    }
}
