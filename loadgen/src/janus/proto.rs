//! Janus's JSON API and its videoroom plugin, as pure data: the requests the adapter sends, the
//! messages Janus sends back, transaction matching, and what the adapter reads out of
//! videoroom events and SDP. No IO here, so all of it is unit-tested.

use std::collections::HashMap;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// The WebSocket subprotocol Janus's WebSocket transport requires.
pub const SUBPROTOCOL: &str = "janus-protocol";
/// The plugin every handle attaches to.
pub const VIDEOROOM: &str = "janus.plugin.videoroom";

/// An SDP offer or answer as Janus carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Jsep {
    /// `offer` or `answer`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The SDP.
    pub sdp: String,
}

impl Jsep {
    /// An offer.
    pub fn offer(sdp: String) -> Self {
        Jsep {
            kind: "offer".into(),
            sdp,
        }
    }

    /// An answer.
    pub fn answer(sdp: String) -> Self {
        Jsep {
            kind: "answer".into(),
            sdp,
        }
    }
}

/// A request of the Janus API, without its transaction (the session adds one).
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Create a session.
    Create,
    /// Attach a handle of `plugin` to a session.
    Attach {
        /// The session.
        session: u64,
        /// The plugin's package name.
        plugin: &'static str,
    },
    /// A plugin request on a handle, with an offer or answer if it negotiates.
    Message {
        /// The session.
        session: u64,
        /// The handle.
        handle: u64,
        /// The plugin request.
        body: Value,
        /// SDP, if any.
        jsep: Option<Jsep>,
    },
    /// One of our ICE candidates, for a handle's peer connection.
    Trickle {
        /// The session.
        session: u64,
        /// The handle.
        handle: u64,
        /// `{candidate, sdpMid, sdpMLineIndex}`, or `{completed: true}`.
        candidate: Value,
    },
    /// Keep a session alive (Janus ends sessions idle for 60 s).
    Keepalive {
        /// The session.
        session: u64,
    },
    /// End a session and its handles.
    Destroy {
        /// The session.
        session: u64,
    },
}

impl Request {
    /// The request as a JSON text frame.
    pub fn to_json(&self, transaction: &str) -> String {
        let value = match self {
            Request::Create => json!({ "janus": "create", "transaction": transaction }),
            Request::Attach { session, plugin } => json!({
                "janus": "attach", "session_id": session, "plugin": plugin,
                "transaction": transaction,
            }),
            Request::Message {
                session,
                handle,
                body,
                jsep,
            } => {
                let mut v = json!({
                    "janus": "message", "session_id": session, "handle_id": handle,
                    "body": body, "transaction": transaction,
                });
                if let Some(jsep) = jsep {
                    v["jsep"] = json!(jsep);
                }
                v
            }
            Request::Trickle {
                session,
                handle,
                candidate,
            } => json!({
                "janus": "trickle", "session_id": session, "handle_id": handle,
                "candidate": candidate, "transaction": transaction,
            }),
            Request::Keepalive { session } => json!({
                "janus": "keepalive", "session_id": session, "transaction": transaction,
            }),
            Request::Destroy { session } => json!({
                "janus": "destroy", "session_id": session, "transaction": transaction,
            }),
        };
        value.to_string()
    }

    /// Whether Janus's `ack` is the whole reply. A plugin message is acknowledged first and
    /// answered later by an `event` (or at once by a `success`) with the same transaction.
    pub fn ends_on_ack(&self) -> bool {
        matches!(self, Request::Trickle { .. } | Request::Keepalive { .. })
    }
}

/// A message from Janus.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A request succeeded: `data` for create/attach, `plugindata` for a synchronous plugin
    /// request.
    Success {
        /// The request's transaction.
        transaction: String,
        /// `data.id`, the new session's or handle's id, if any.
        id: Option<u64>,
        /// The plugin's reply, if any.
        plugin: Option<Value>,
    },
    /// Janus got the request; for a plugin message, the answer comes later as an event.
    Ack {
        /// The request's transaction.
        transaction: String,
    },
    /// A plugin event on a handle: the answer to an asynchronous request when it carries its
    /// transaction, or news (a publisher arrived) when it carries none.
    Event {
        /// The request's transaction, if it answers one.
        transaction: Option<String>,
        /// The handle.
        sender: u64,
        /// `plugindata.data`.
        data: Value,
        /// SDP, if any.
        jsep: Option<Jsep>,
    },
    /// A request failed at the Janus level.
    Error {
        /// The request's transaction, if any.
        transaction: Option<String>,
        /// Janus's error code.
        code: i64,
        /// Janus's text.
        reason: String,
    },
    /// Anything else (`webrtcup`, `media`, `slowlink`, `hangup`, `timeout`, `detached`...).
    Other {
        /// The `janus` field.
        kind: String,
        /// The handle, if any.
        sender: Option<u64>,
    },
}

#[derive(Deserialize)]
struct Raw {
    janus: String,
    transaction: Option<String>,
    sender: Option<u64>,
    data: Option<Value>,
    plugindata: Option<PluginData>,
    jsep: Option<Jsep>,
    error: Option<RawError>,
}

#[derive(Deserialize)]
struct PluginData {
    data: Value,
}

#[derive(Deserialize)]
struct RawError {
    code: i64,
    reason: String,
}

/// Read one frame from Janus.
pub fn parse(text: &str) -> anyhow::Result<Incoming> {
    let raw: Raw = serde_json::from_str(text).context("not a Janus message")?;
    let transaction = raw.transaction;
    let incoming = match raw.janus.as_str() {
        "success" => Incoming::Success {
            transaction: transaction.context("success without transaction")?,
            id: raw.data.as_ref().and_then(|d| d["id"].as_u64()),
            plugin: raw.plugindata.map(|p| p.data),
        },
        "ack" => Incoming::Ack {
            transaction: transaction.context("ack without transaction")?,
        },
        "event" => Incoming::Event {
            transaction,
            sender: raw.sender.context("event without sender")?,
            data: raw.plugindata.map(|p| p.data).unwrap_or(Value::Null),
            jsep: raw.jsep,
        },
        "error" => {
            let error = raw.error.context("error without error")?;
            Incoming::Error {
                transaction,
                code: error.code,
                reason: error.reason,
            }
        }
        _ => Incoming::Other {
            kind: raw.janus,
            sender: raw.sender,
        },
    };
    Ok(incoming)
}

impl Incoming {
    /// The transaction this message answers, if any.
    pub fn transaction(&self) -> Option<&str> {
        match self {
            Incoming::Success { transaction, .. } | Incoming::Ack { transaction } => {
                Some(transaction)
            }
            Incoming::Event { transaction, .. } | Incoming::Error { transaction, .. } => {
                transaction.as_deref()
            }
            Incoming::Other { .. } => None,
        }
    }

    /// The handle this message is about, if any.
    pub fn sender(&self) -> Option<u64> {
        match self {
            Incoming::Event { sender, .. } => Some(*sender),
            Incoming::Other { sender, .. } => *sender,
            _ => None,
        }
    }

    /// A final reply as a result: Janus errors and videoroom errors become `Err`.
    pub fn into_result(self) -> anyhow::Result<Incoming> {
        match &self {
            Incoming::Error { code, reason, .. } => bail!("janus error {code}: {reason}"),
            Incoming::Event { data, .. }
            | Incoming::Success {
                plugin: Some(data), ..
            } => {
                if let Some(code) = data["error_code"].as_i64() {
                    bail!(
                        "videoroom error {code}: {}",
                        data["error"].as_str().unwrap_or("?")
                    );
                }
                Ok(self)
            }
            _ => Ok(self),
        }
    }

    /// The plugin's data, for an event or a synchronous plugin reply.
    pub fn plugin_data(&self) -> Option<&Value> {
        match self {
            Incoming::Event { data, .. } => Some(data),
            Incoming::Success { plugin, .. } => plugin.as_ref(),
            _ => None,
        }
    }
}

/// Requests awaiting their reply, by transaction. Transactions are numbered per session.
#[derive(Default)]
pub struct Transactions {
    next: u64,
    pending: HashMap<String, Waiter>,
}

struct Waiter {
    ends_on_ack: bool,
    reply: oneshot::Sender<Incoming>,
}

impl Transactions {
    /// A new transaction for `request`, and where its final reply will arrive.
    pub fn open(&mut self, request: &Request) -> (String, oneshot::Receiver<Incoming>) {
        self.next += 1;
        let transaction = format!("t{}", self.next);
        let (reply, rx) = oneshot::channel();
        let waiter = Waiter {
            ends_on_ack: request.ends_on_ack(),
            reply,
        };
        self.pending.insert(transaction.clone(), waiter);
        (transaction, rx)
    }

    /// Hand `incoming` to the request it answers. Returns it back if it answers none (news
    /// for a handle, or a reply nobody waits for). An `ack` of a plugin message is consumed
    /// and the request stays open.
    pub fn deliver(&mut self, incoming: Incoming) -> Option<Incoming> {
        let Some(transaction) = incoming.transaction() else {
            return Some(incoming);
        };
        let is_ack = matches!(incoming, Incoming::Ack { .. });
        match self.pending.get(transaction) {
            None => Some(incoming),
            Some(waiter) if is_ack && !waiter.ends_on_ack => None,
            Some(_) => {
                let waiter = self.pending.remove(transaction)?;
                let _ = waiter.reply.send(incoming);
                None
            }
        }
    }

    /// Drop every waiting request (the socket closed): their receivers see an error.
    pub fn abandon(&mut self) {
        self.pending.clear();
    }

    /// Requests still waiting.
    pub fn open_count(&self) -> usize {
        self.pending.len()
    }
}

/// Videoroom plugin requests.
pub mod videoroom {
    use serde_json::{Value, json};

    /// Create a room for up to `publishers` publishers, Opus and VP8 only, no bitrate cap, no
    /// periodic keyframe requests (ours sends none either). Janus picks the id.
    pub fn create(description: &str, publishers: usize) -> Value {
        json!({
            "request": "create", "description": description, "publishers": publishers,
            "audiocodec": "opus", "videocodec": "vp8", "bitrate": 0, "fir_freq": 0,
            "notify_joining": false, "permanent": false,
        })
    }

    /// Join `room` as a publisher.
    pub fn join_publisher(room: u64, display: &str) -> Value {
        json!({ "request": "join", "ptype": "publisher", "room": room, "display": display })
    }

    /// Publish: goes with the offer.
    pub fn configure() -> Value {
        json!({ "request": "configure", "audio": true, "video": true })
    }

    /// Join `room` as a subscriber to every stream of `feeds`.
    pub fn join_subscriber(room: u64, private_id: Option<u64>, feeds: &[u64]) -> Value {
        let mut body = json!({
            "request": "join", "ptype": "subscriber", "room": room, "streams": streams(feeds),
        });
        if let Some(id) = private_id {
            body["private_id"] = json!(id);
        }
        body
    }

    /// Add every stream of `feeds` to a joined subscriber (Janus renegotiates).
    pub fn subscribe(feeds: &[u64]) -> Value {
        json!({ "request": "update", "subscribe": streams(feeds) })
    }

    /// Start receiving: goes with the answer to Janus's offer.
    pub fn start() -> Value {
        json!({ "request": "start" })
    }

    fn streams(feeds: &[u64]) -> Vec<Value> {
        feeds.iter().map(|f| json!({ "feed": f })).collect()
    }
}

/// The publishers a videoroom event lists (`joined`, or news of publishers arriving), by id.
/// Only those publishing something: a participant that joined but has not published yet is
/// listed with no streams in some versions.
pub fn publishers(data: &Value) -> Vec<u64> {
    let Some(list) = data["publishers"].as_array() else {
        return vec![];
    };
    list.iter()
        .filter(|p| p["streams"].as_array().is_none_or(|s| !s.is_empty()))
        .filter_map(|p| p["id"].as_u64())
        .collect()
}

/// A subscriber's streams (`attached`, `updated`): which publisher each `mid` carries.
pub fn stream_feeds(data: &Value) -> Vec<(String, u64)> {
    let Some(list) = data["streams"].as_array() else {
        return vec![];
    };
    list.iter()
        .filter_map(|s| Some((s["mid"].as_str()?.to_string(), s["feed_id"].as_u64()?)))
        .collect()
}

/// Per media section of an SDP, its `mid` and the SSRCs it declares.
pub fn sdp_ssrcs(sdp: &str) -> Vec<(String, Vec<u32>)> {
    let mut sections: Vec<(Option<String>, Vec<u32>)> = Vec::new();
    for line in sdp.lines() {
        let line = line.trim_end();
        if line.starts_with("m=") {
            sections.push((None, Vec::new()));
        } else if let Some((mid, ssrcs)) = sections.last_mut() {
            if let Some(value) = line.strip_prefix("a=mid:") {
                *mid = Some(value.to_string());
            } else if let Some(value) = line.strip_prefix("a=ssrc:") {
                let ssrc = value.split(' ').next().and_then(|s| s.parse().ok());
                if let Some(ssrc) = ssrc.filter(|s| !ssrcs.contains(s)) {
                    ssrcs.push(ssrc);
                }
            }
        }
    }
    sections
        .into_iter()
        .filter_map(|(mid, ssrcs)| Some((mid?, ssrcs)))
        .collect()
}

/// The SSRC → publisher map of a subscriber's offer, from its SDP and its `streams`.
pub fn ssrc_publishers(sdp: &str, data: &Value) -> HashMap<u32, u64> {
    let feeds: HashMap<String, u64> = stream_feeds(data).into_iter().collect();
    let mut map = HashMap::new();
    for (mid, ssrcs) in sdp_ssrcs(sdp) {
        if let Some(feed) = feeds.get(&mid) {
            for ssrc in ssrcs {
                map.insert(ssrc, *feed);
            }
        }
    }
    map
}

/// A candidate of ours as a `trickle` request carries it.
pub fn trickle_candidate(candidate: &str, sdp_mid: Option<&str>, index: Option<u16>) -> Value {
    json!({ "candidate": candidate, "sdpMid": sdp_mid, "sdpMLineIndex": index })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn requests_carry_session_handle_and_transaction() {
        let create = json(&Request::Create.to_json("t1"));
        assert_eq!(create, json!({ "janus": "create", "transaction": "t1" }));
        let attach = json(
            &Request::Attach {
                session: 7,
                plugin: VIDEOROOM,
            }
            .to_json("t2"),
        );
        assert_eq!(attach["plugin"], "janus.plugin.videoroom");
        assert_eq!(attach["session_id"], 7);
        let message = Request::Message {
            session: 7,
            handle: 9,
            body: videoroom::configure(),
            jsep: Some(Jsep::offer("v=0\r\n".into())),
        };
        let m = json(&message.to_json("t3"));
        assert_eq!(
            (m["janus"].as_str(), m["handle_id"].as_u64()),
            (Some("message"), Some(9))
        );
        assert_eq!(m["body"]["request"], "configure");
        assert_eq!(m["jsep"], json!({ "type": "offer", "sdp": "v=0\r\n" }));
        let bare = Request::Message {
            session: 7,
            handle: 9,
            body: videoroom::start(),
            jsep: None,
        };
        assert!(json(&bare.to_json("t4")).get("jsep").is_none());
        let trickle = Request::Trickle {
            session: 7,
            handle: 9,
            candidate: trickle_candidate(
                "candidate:1 1 udp 1 10.77.0.2 5000 typ host",
                Some("0"),
                Some(0),
            ),
        };
        let t = json(&trickle.to_json("t5"));
        assert_eq!(t["candidate"]["sdpMid"], "0");
        assert_eq!(t["candidate"]["sdpMLineIndex"], 0);
        assert_eq!(
            json(&Request::Keepalive { session: 7 }.to_json("t6"))["janus"],
            "keepalive"
        );
    }

    #[test]
    fn videoroom_bodies() {
        let create = videoroom::create("loadgen room10 1", 10);
        assert_eq!(create["publishers"], 10);
        assert_eq!(
            (create["audiocodec"].as_str(), create["videocodec"].as_str()),
            (Some("opus"), Some("vp8"))
        );
        let join = videoroom::join_publisher(1234, "r1p1");
        assert_eq!(
            (join["ptype"].as_str(), join["room"].as_u64()),
            (Some("publisher"), Some(1234))
        );
        let sub = videoroom::join_subscriber(1234, Some(55), &[1, 2]);
        assert_eq!(sub["ptype"], "subscriber");
        assert_eq!(sub["private_id"], 55);
        assert_eq!(sub["streams"], json!([{ "feed": 1 }, { "feed": 2 }]));
        assert!(
            videoroom::join_subscriber(1, None, &[3])
                .get("private_id")
                .is_none()
        );
        let update = videoroom::subscribe(&[3]);
        assert_eq!(
            update,
            json!({ "request": "update", "subscribe": [{ "feed": 3 }] })
        );
    }

    #[test]
    fn parses_every_kind_of_reply() {
        let success = parse(r#"{"janus":"success","transaction":"t1","data":{"id":42}}"#).unwrap();
        assert_eq!(
            success,
            Incoming::Success {
                transaction: "t1".into(),
                id: Some(42),
                plugin: None
            }
        );
        let created = parse(
            r#"{"janus":"success","session_id":1,"transaction":"t2","sender":3,
                "plugindata":{"plugin":"janus.plugin.videoroom","data":{"videoroom":"created","room":77}}}"#,
        )
        .unwrap();
        assert_eq!(created.plugin_data().unwrap()["room"], 77);
        let ack = parse(r#"{"janus":"ack","session_id":1,"transaction":"t3"}"#).unwrap();
        assert_eq!(ack.transaction(), Some("t3"));
        let event = parse(
            r#"{"janus":"event","session_id":1,"transaction":"t4","sender":9,
                "plugindata":{"plugin":"janus.plugin.videoroom","data":{"videoroom":"event","configured":"ok"}},
                "jsep":{"type":"answer","sdp":"v=0"}}"#,
        )
        .unwrap();
        let Incoming::Event { sender, jsep, .. } = &event else {
            panic!("{event:?}")
        };
        assert_eq!(
            (*sender, jsep.as_ref().unwrap().kind.as_str()),
            (9, "answer")
        );
        let error = parse(
            r#"{"janus":"error","transaction":"t5","error":{"code":458,"reason":"No such session"}}"#,
        )
        .unwrap();
        assert!(
            error
                .clone()
                .into_result()
                .unwrap_err()
                .to_string()
                .contains("458")
        );
        let up = parse(r#"{"janus":"webrtcup","session_id":1,"sender":9}"#).unwrap();
        assert_eq!(up.sender(), Some(9));
        assert_eq!(up.transaction(), None);
        assert!(parse("[]").is_err());
    }

    #[test]
    fn videoroom_errors_are_errors() {
        let event = parse(
            r#"{"janus":"event","transaction":"t1","sender":9,
                "plugindata":{"plugin":"janus.plugin.videoroom","data":{"videoroom":"event","error_code":426,"error":"No such room"}}}"#,
        )
        .unwrap();
        let e = event.into_result().unwrap_err().to_string();
        assert!(e.contains("426") && e.contains("No such room"), "{e}");
    }

    #[test]
    fn transactions_match_replies_and_skip_plugin_acks() {
        let mut t = Transactions::default();
        let message = Request::Message {
            session: 1,
            handle: 2,
            body: videoroom::start(),
            jsep: None,
        };
        let (id, mut rx) = t.open(&message);
        let (keepalive_id, mut keepalive_rx) = t.open(&Request::Keepalive { session: 1 });
        assert_ne!(id, keepalive_id);
        // The message's ack is swallowed; the request stays open.
        assert_eq!(
            t.deliver(Incoming::Ack {
                transaction: id.clone()
            }),
            None
        );
        assert!(rx.try_recv().is_err());
        // A keepalive's ack is its answer.
        assert_eq!(
            t.deliver(Incoming::Ack {
                transaction: keepalive_id.clone()
            }),
            None
        );
        assert!(keepalive_rx.try_recv().is_ok());
        // News without a transaction goes back to the caller, for its handle.
        let news = Incoming::Event {
            transaction: None,
            sender: 2,
            data: json!({ "videoroom": "event", "publishers": [] }),
            jsep: None,
        };
        assert_eq!(t.deliver(news.clone()), Some(news));
        // So does a reply to a transaction nobody opened.
        let stray = Incoming::Ack {
            transaction: "nope".into(),
        };
        assert_eq!(t.deliver(stray.clone()), Some(stray));
        let event = Incoming::Event {
            transaction: Some(id.clone()),
            sender: 2,
            data: json!({ "videoroom": "event", "started": "ok" }),
            jsep: None,
        };
        assert_eq!(t.deliver(event.clone()), None);
        assert_eq!(rx.try_recv().unwrap(), event);
        assert_eq!(t.open_count(), 0);
    }

    #[test]
    fn reads_publishers_and_streams() {
        let joined = json!({
            "videoroom": "joined", "room": 1, "id": 10, "private_id": 5,
            "publishers": [
                { "id": 11, "display": "a", "streams": [{ "type": "audio", "mid": "0" }] },
                { "id": 12, "display": "b", "streams": [] },
                { "id": 13, "display": "c" },
            ],
        });
        assert_eq!(publishers(&joined), vec![11, 13]);
        assert!(publishers(&json!({ "videoroom": "event", "unpublished": 11 })).is_empty());
        let attached = json!({
            "videoroom": "attached",
            "streams": [
                { "type": "audio", "mid": "0", "feed_id": 11, "feed_mid": "0" },
                { "type": "video", "mid": "1", "feed_id": 11, "feed_mid": "1" },
                { "type": "data", "mid": "2" },
            ],
        });
        assert_eq!(
            stream_feeds(&attached),
            vec![("0".to_string(), 11), ("1".to_string(), 11)]
        );
    }

    #[test]
    fn maps_ssrcs_to_publishers() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 10.77.0.1\r\ns=VideoRoom 1\r\nt=0 0\r\n\
                   m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=ssrc:100 cname:janus\r\n\
                   a=ssrc:100 msid:janus janus0\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=mid:1\r\na=ssrc-group:FID 200 201\r\n\
                   a=ssrc:200 cname:janus\r\na=ssrc:201 cname:janus\r\n\
                   m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:2\r\na=ssrc:300 cname:janus\r\n";
        assert_eq!(
            sdp_ssrcs(sdp),
            vec![
                ("0".to_string(), vec![100]),
                ("1".to_string(), vec![200, 201]),
                ("2".to_string(), vec![300]),
            ]
        );
        let streams = json!({ "streams": [
            { "mid": "0", "feed_id": 11 }, { "mid": "1", "feed_id": 11 }, { "mid": "2", "feed_id": 12 },
        ]});
        let map = ssrc_publishers(sdp, &streams);
        assert_eq!(map.get(&100), Some(&11));
        assert_eq!(map.get(&201), Some(&11));
        assert_eq!(map.get(&300), Some(&12));
    }
}
