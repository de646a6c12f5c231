// @ts-check
/**
 * Roundtable client protocol: the signaling WebSocket and the two peer connections, and the
 * wire's types. The HTTP API is api.js's; the local camera and microphone devices.js's.
 *
 * No DOM code lives here. {@link RoomConnection} speaks the wire protocol that
 * `signaling/src/wire.rs` defines and reports what happens as events; the UI (`app.js` and
 * its screen modules) draws it.
 */
import { ServerClock } from '/assets/clock.js';

/** Protocol version sent in `join`. */
export const PROTOCOL_VERSION = 1;
/** Longest chat message, in characters (Unicode scalar values). */
export const MAX_CHAT_CHARS = 2000;
/** Longest display name, in characters. */
export const MAX_NAME_CHARS = 64;
/** Most tactics in an agenda (`signaling/src/agenda/plan.rs`). */
export const MAX_TACTICS = 12;
/** Longest tactic title or organisation, in characters. */
export const MAX_TITLE_CHARS = 200;
/** Longest segment, in minutes. */
export const MAX_SEGMENT_MIN = 120;
/** Characters that draw nothing; a name of only these is refused (`signaling/src/name.rs`). */
const INVISIBLE = /^[\s\u00AD\u034F\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200D\u2060-\u2064\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\u{E0000}-\u{E007F}]*$/u;
/** Control and text-direction characters, refused anywhere in a name. */
const HOSTILE = /[\p{Cc}\u2028\u2029\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/u;

/**
 * Whether the server will take this name (already trimmed): `bad_name` otherwise.
 * @param {string} name
 */
export function isUsableName(name) {
  return [...name].length <= MAX_NAME_CHARS && !INVISIBLE.test(name) && !HOSTILE.test(name);
}
/** Keepalive period; each keepalive ping also refreshes the server clock's estimate. */
const PING_INTERVAL_MS = 15_000;
/** Pings sent one after another at the start, for a first estimate of the server's clock. */
const CLOCK_BURST = 5;
/** Without any server message for this long, the connection counts as lost. */
const SILENCE_LIMIT_MS = 45_000;

/** @typedef {'publish'|'subscribe'} PcRole */
/** @typedef {'audio'|'video'} MediaKind */
/** A room role (`signaling/src/roles.rs`). @typedef {'facilitator'|'advocate'|'participant'|'observer'} Role */
/**
 * `audio` and `video` are what the person reports; `*_allowed` turn false once a facilitator
 * muted them or stopped their camera. `invite` is the id (not the secret) of the invite they
 * joined with: how the agenda names an advocate across reconnects. `consent`: they agree to be
 * recorded (false until they say so).
 * @typedef {{id: string, name: string, role: Role, audio: boolean, video: boolean,
 *   audio_allowed: boolean, video_allowed: boolean, invite?: string, consent: boolean}} ParticipantInfo
 */
/**
 * The room's recording (see docs/protocol.md, "Recording and consent"). `recorded`: the
 * participant ids recorded now, in join order; empty while `on` is false. `session` is
 * opaque, and left out while off.
 * @typedef {{on: boolean, presentation_only: boolean, session?: string, recorded: string[]}} RecordingView
 */
/** Someone in the waiting room, as facilitators see them. `since` is Unix ms. @typedef {{id: string, name: string, role: Role, since: number}} WaiterInfo */
/** @typedef {{id: string, participant: string, kind: MediaKind}} TrackInfo */
/** @typedef {{seq: number, from: string, name: string, text: string, ts: number}} ChatMessage */
/** @typedef {{id: string, title: string, capacity: number}} RoomInfo */
/** `open_link` false: only an invite gets in. @typedef {RoomInfo & {participants: number, open_link?: boolean}} RoomSummary */
/** What an invite admits as: `name` is a fixed display name, or null. @typedef {{role: Role, name: string | null, expires_at: number | null}} InviteCheck */
/** @typedef {{urls: string[], username?: string, credential?: string}} IceServerInfo */
/**
 * `hands` holds participant ids in the order hands went up; `waiting` is filled for
 * facilitators only.
 * @typedef {{type: 'joined', v: number, you: string, role: Role, room: RoomInfo,
 *   participants: ParticipantInfo[], tracks: TrackInfo[], chat: ChatMessage[],
 *   ice_servers: IceServerInfo[], hands: string[], locked: boolean, waiting: WaiterInfo[],
 *   agenda?: AgendaView, recording?: RecordingView}} JoinedMsg
 */
/** @typedef {{type: 'error', code: string, message: string}} ErrorMsg */
/** @typedef {'organisation'|'tactic'|'conversation'} SegmentKind */
/** One timed part of a tactic. @typedef {{kind: SegmentKind, duration_s: number}} Segment */
/** Who presents a tactic: whoever joins with an invite, or a participant. @typedef {{by: 'invite' | 'participant', id: string}} Advocate */
/** @typedef {{title: string, organisation: string, advocate: Advocate | null, segments: Segment[]}} Tactic */
/** What time up does: signal only, move on after the grace period, or close the presenter's floor. @typedef {'warn'|'advance'|'mute'} TimeUpPolicy */
/**
 * The agenda's plan (`signaling/src/agenda/plan.rs`). `warn_at_s`: warnings, in seconds
 * before each segment's end. `hand_raise`: in conversations, only whom a facilitator gives
 * the floor speaks.
 * @typedef {{tactics: Tactic[], time_up: TimeUpPolicy, grace_s: number, warn_at_s: number[], hand_raise: boolean}} Plan
 */
/** @typedef {'ready'|'running'|'paused'|'ended'} AgendaPhase */
/** Why the floor is as it is. @typedef {'open'|'presentation'|'hand_raise'|'closed'} FloorMode */
/** Who may speak: `speakers` includes the facilitators; `given`, whom a facilitator gave it. @typedef {{mode: FloorMode, speakers: string[], given: string[]}} FloorView */
/**
 * The agenda on the server's clock. Times are server Unix ms: `deadline` while running,
 * `remaining_ms` while paused (negative once over time).
 * @typedef {{plan: Plan, phase: AgendaPhase, tactic: number, segment: number, started_at: number,
 *   deadline: number | null, remaining_ms: number | null, extended_s: number, time_up: boolean,
 *   overrun: boolean, floor: FloorView, server_time: number}} AgendaView
 */
/**
 * What just happened to the agenda.
 * @typedef {{kind: 'segment_started'|'time_up'|'overrun'|'floor_closed'|'paused'|'resumed'|'extended'|'ended'}
 *   | {kind: 'warning', left_s: number}} AgendaEvent
 */
/** @typedef {'start'|'pause'|'resume'|'extend'|'next'|'previous'|'skip_tactic'|'end'} AgendaAction */
/** @typedef {'connecting'|'connected'|'reconnecting'|'disconnected'|'left'} ConnectionStatus */
/** @typedef {{participantId: string, tracks: MediaStreamTrack[]}} RemoteMedia */

/** An error with a stable, machine-readable code (the server's `error.code` where there is one). */
export class RoundtableError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   */
  constructor(code, message) {
    super(message);
    this.name = 'RoundtableError';
    this.code = code;
  }
}

// ---- signaling and peer connections ------------------------------------------------------

/** One peer connection plus its queue of early remote candidates and serialised SDP work. */
class Peer {
  /**
   * @param {PcRole} role
   * @param {RTCConfiguration} config
   * @param {(msg: object) => void} send
   * @param {(err: unknown) => void} onError
   */
  constructor(role, config, send, onError) {
    this.role = role;
    this.pc = new RTCPeerConnection(config);
    /** @type {RTCIceCandidateInit[]} */
    this.pending = [];
    /** @type {Promise<void>} */
    this.chain = Promise.resolve();
    this.onError = onError;
    this.pc.onicecandidate = (e) => {
      if (e.candidate) send({ type: 'candidate', pc: role, candidate: e.candidate.toJSON() });
    };
  }

  /** Run SDP work after whatever is already running on this connection. @param {() => Promise<void>} fn */
  run(fn) {
    this.chain = this.chain.then(fn).catch(this.onError);
    return this.chain;
  }

  /** @param {RTCSessionDescriptionInit} desc */
  async setRemote(desc) {
    await this.pc.setRemoteDescription(desc);
    const queued = this.pending.splice(0);
    for (const c of queued) await this.addCandidate(c);
  }

  /** Add a remote candidate now, or queue it until a remote description exists. @param {RTCIceCandidateInit} c */
  async addCandidate(c) {
    if (!this.pc.remoteDescription) {
      this.pending.push(c);
      return;
    }
    // A late or end-of-candidates line that the browser refuses does not break the call.
    await this.pc.addIceCandidate(c).catch((e) => console.warn(`[${this.role}] candidate refused`, e));
  }

  close() {
    this.pc.onicecandidate = null;
    this.pc.ontrack = null;
    this.pc.onconnectionstatechange = null;
    this.pc.close();
  }
}

/**
 * What each {@link RoomConnection} event carries in `detail`.
 * @typedef {{status: ConnectionStatus, joined: JoinedMsg, waiting: {position: number},
 *   declined: {}, 'participant-joined': ParticipantInfo,
 *   'participant-updated': ParticipantInfo, 'participant-left': {id: string, reason: string},
 *   'track-published': TrackInfo, 'track-unpublished': {id: string, participant: string},
 *   media: RemoteMedia, chat: ChatMessage, queue: WaiterInfo[], hands: string[],
 *   'room-locked': {locked: boolean, by: string}, moderated: {kind: MediaKind, allowed: boolean, by: string},
 *   removed: {by: string, barred: boolean},
 *   agenda: {agenda: AgendaView, event: AgendaEvent | null}, clock: {}, recording: RecordingView,
 *   'server-error': ErrorMsg, 'join-failed': RoundtableError, closed: {reason: string}}} RoomEvents
 */

/**
 * A participant's connection to one room.
 *
 * Events (all `CustomEvent`, payload in `detail`):
 * `status` {@link ConnectionStatus}, `joined` {@link JoinedMsg}, `waiting` `{position}` (no seat
 * yet; `joined` or `declined` follows), `declined`, `participant-joined`,
 * `participant-updated` {@link ParticipantInfo}, `participant-left` `{id, reason}`,
 * `track-published` {@link TrackInfo}, `track-unpublished` `{id, participant}`,
 * `media` {@link RemoteMedia} (what is received from one participant now), `chat` {@link ChatMessage},
 * `queue` (facilitators: the waiting room, in order), `hands` (ids, in the order hands went up),
 * `room-locked`, `moderated` (a facilitator stopped or allowed our audio or video), `removed`
 * (a facilitator removed us; the connection is over), `agenda` (the agenda or the floor
 * changed, and the event that changed it, if any), `clock` ({@link RoomConnection.clock}'s
 * estimate changed: countdowns are redrawn), `recording` {@link RecordingView} (recording
 * started or stopped, or who is recorded changed),
 * `server-error` {@link ErrorMsg} (after joining), `join-failed` {@link RoundtableError},
 * `closed` `{reason}` when the connection ends without `leave()`.
 *
 * An observer's connection never publishes, whatever stream it was given.
 */
export class RoomConnection extends EventTarget {
  /**
   * `consent`: the person agreed, before joining, to be recorded; `join` says so.
   * @param {{roomId: string, name: string, invite?: string | null, consent?: boolean, stream: MediaStream | null, url?: string}} opts
   */
  constructor({ roomId, name, invite, consent, stream, url }) {
    super();
    this.roomId = roomId;
    this.name = name;
    this.invite = invite ?? null;
    this.consent = consent ?? false;
    /** Our role, once joined. @type {Role | null} */
    this.role = null;
    this.stream = stream;
    this.url = url ?? `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
    /** @type {WebSocket | null} */
    this.ws = null;
    /** @type {Peer | null} */
    this.publish = null;
    /** @type {Peer | null} */
    this.subscribe = null;
    /** @type {string | null} */
    this.you = null;
    this.ended = false;
    this.publishBusy = false;
    this.publishDirty = false;
    this.lastHeard = Date.now();
    /** @type {ReturnType<typeof setInterval> | undefined} */
    this.pingTimer = undefined;
    /** @type {ConnectionStatus | null} */
    this.status = null;
    /** Received media by participant id, then kind. @type {Map<string, Map<string, MediaStreamTrack>>} */
    this.remote = new Map();
    /** The server's clock, learned from pings; agenda countdowns read it. */
    this.clock = new ServerClock();
    /** Pings still to send one after another, for a first estimate. */
    this.burst = 0;
    /** One handler per server message type. @type {Record<string, (msg: any) => void>} */
    this.handlers = {
      joined: (m) => this.onJoined(m),
      waiting: (m) => {
        this.startKeepAlive(); // nothing else may come for a long while
        this.emit('waiting', { position: m.position });
      },
      declined: () => {
        this.teardown('disconnected', true);
        this.emit('declined', {});
      },
      removed: (m) => {
        this.teardown('disconnected', true);
        this.emit('removed', { by: m.by, barred: m.barred });
      },
      queue: (m) => this.emit('queue', m.waiting),
      hands: (m) => this.emit('hands', m.queue),
      room_locked: (m) => this.emit('room-locked', { locked: m.locked, by: m.by }),
      moderated: (m) => this.emit('moderated', { kind: m.kind, allowed: m.allowed, by: m.by }),
      participant_joined: (m) => this.emit('participant-joined', m.participant),
      participant_updated: (m) => this.emit('participant-updated', m.participant),
      participant_left: (m) => {
        this.remote.delete(m.id);
        this.emit('participant-left', { id: m.id, reason: m.reason });
      },
      track_published: (m) => this.emit('track-published', m.track),
      track_unpublished: (m) => {
        this.dropRemote(m.participant, m.id);
        this.emit('track-unpublished', { id: m.id, participant: m.participant });
      },
      offer: (m) => this.onOffer(m),
      answer: (m) => this.onAnswer(m),
      candidate: (m) => this.peer(m.pc)?.addCandidate(m.candidate),
      chat: (m) => this.emit('chat', m.message),
      agenda: (m) => {
        if (this.clock.hint(m.agenda.server_time)) this.emit('clock', {});
        this.emit('agenda', { agenda: m.agenda, event: m.event ?? null });
      },
      recording: (m) => this.emit('recording', m.recording),
      pong: (m) => this.onPong(m),
      left: () => {},
      error: (m) => this.onServerError(m),
    };
  }

  /** Open the socket and send `join`. */
  connect() {
    this.setStatus('connecting');
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => {
      // `consent` left out is no, as `invite` left out is the open link.
      const join = { type: 'join', v: PROTOCOL_VERSION, room: this.roomId, name: this.name };
      this.send({ ...join, ...(this.invite ? { invite: this.invite } : {}), ...(this.consent ? { consent: true } : {}) });
      this.burst = CLOCK_BURST;
      this.ping();
    };
    ws.onmessage = (e) => this.onMessage(e.data);
    ws.onclose = (e) => this.onSocketClosed(e);
  }

  /** Leave on purpose: tell the server, close everything. Local tracks are the caller's to stop. */
  leave() {
    if (this.ended) return;
    this.send({ type: 'leave' });
    this.teardown('left');
  }

  /** @param {boolean} audio @param {boolean} video */
  sendMediaState(audio, video) {
    this.send({ type: 'media_state', audio, video });
  }

  /** @param {string} text */
  sendChat(text) {
    this.send({ type: 'chat', text });
  }

  raiseHand() {
    this.send({ type: 'raise_hand' });
  }

  /** Lower our own hand, or (facilitators) `participant`'s. @param {string} [participant] */
  lowerHand(participant) {
    this.send(participant ? { type: 'lower_hand', participant } : { type: 'lower_hand' });
  }

  // Facilitators only: the server refuses these from anyone else with `forbidden`.

  /** Stop (`muted`) or allow someone's audio or video. @param {string} participant @param {MediaKind} kind @param {boolean} muted */
  moderate(participant, kind, muted) {
    this.send({ type: 'mute', participant, kind, muted });
  }

  /** @param {string} participant @param {boolean} bar also revoke the invite they joined with */
  remove(participant, bar) {
    this.send({ type: 'remove', participant, bar });
  }

  /** @param {boolean} locked */
  lock(locked) {
    this.send({ type: 'lock', locked });
  }

  /** @param {string} waiter */
  admit(waiter) {
    this.send({ type: 'admit', waiter });
  }

  /** @param {string} waiter */
  decline(waiter) {
    this.send({ type: 'decline', waiter });
  }

  // The agenda and the floor. Facilitators only, but `yieldFloor`: the server refuses the
  // rest from anyone else with `forbidden`.

  /** @param {AgendaAction} action @param {number} [seconds] for `extend` (the server's default: 60) */
  agendaControl(action, seconds) {
    this.send(seconds === undefined ? { type: 'agenda_control', action } : { type: 'agenda_control', action, seconds });
  }

  /** Replace the whole plan; `bad_agenda` or `agenda_state` if the server will not. @param {Plan} plan */
  setAgenda(plan) {
    this.send({ type: 'agenda_set', plan });
  }

  /** @param {string} participant */
  giveFloor(participant) {
    this.send({ type: 'give_floor', participant });
  }

  /** @param {string} participant */
  takeFloor(participant) {
    this.send({ type: 'take_floor', participant });
  }

  /** Give back the floor a facilitator gave us. */
  yieldFloor() {
    this.send({ type: 'yield_floor' });
  }

  // Recording. Anyone may give or withdraw consent; only facilitators start and stop.

  /** Agree to be recorded (`true`), or withdraw. @param {boolean} granted */
  setConsent(granted) {
    this.consent = granted;
    this.send({ type: 'consent', granted });
  }

  /**
   * Start (`on`) or stop recording the room; `recording_state` if it already is so.
   * @param {boolean} on @param {boolean} [presentationOnly] record only while a presentation is under way
   */
  setRecording(on, presentationOnly = false) {
    this.send(on ? { type: 'recording', on, presentation_only: presentationOnly } : { type: 'recording', on });
  }

  /**
   * Use `track` for its kind: swap it into the existing sender (no renegotiation),
   * or add a sender and renegotiate the publish connection.
   * @param {MediaStreamTrack} track
   */
  async setTrack(track) {
    if (!this.publish || !this.stream || this.role === 'observer') return;
    const sender = this.publish.pc.getSenders().find((s) => s.track?.kind === track.kind);
    if (sender) {
      await sender.replaceTrack(track);
      return;
    }
    this.publish.pc.addTransceiver(track, { direction: 'sendonly', streams: [this.stream] });
    await this.negotiatePublish();
  }

  /** The tracks received from one participant right now. @param {string} participantId */
  remoteTracks(participantId) {
    return [...(this.remote.get(participantId)?.values() ?? [])];
  }

  // ---- internals -------------------------------------------------------------------------

  /** @template {keyof RoomEvents} K @param {K} type @param {RoomEvents[K]} detail */
  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** @param {object} msg */
  send(msg) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  /** @param {ConnectionStatus} status */
  setStatus(status) {
    if (status === this.status) return;
    this.status = status;
    this.emit('status', status);
  }

  /** @param {string} role @returns {Peer | null} */
  peer(role) {
    return role === 'publish' ? this.publish : role === 'subscribe' ? this.subscribe : null;
  }

  /** @param {unknown} data */
  onMessage(data) {
    this.lastHeard = Date.now();
    let msg;
    try {
      msg = JSON.parse(String(data));
    } catch {
      console.warn('unparseable server message', data);
      return;
    }
    const handler = this.handlers[msg?.type];
    if (handler) handler(msg);
    else console.warn('unknown server message type', msg?.type);
  }

  /** @param {JoinedMsg} msg */
  onJoined(msg) {
    this.you = msg.you;
    this.role = msg.role;
    const config = { iceServers: msg.ice_servers ?? [] };
    const onError = (/** @type {unknown} */ e) => this.onMediaError(e);
    this.publish = new Peer('publish', config, (m) => this.send(m), onError);
    this.subscribe = new Peer('subscribe', config, (m) => this.send(m), onError);
    this.subscribe.pc.ontrack = (e) => this.onRemoteTrack(e);
    for (const p of [this.publish, this.subscribe]) {
      p.pc.onconnectionstatechange = () => this.updateMediaStatus();
    }
    this.startKeepAlive();
    if (msg.agenda && this.clock.hint(msg.agenda.server_time)) this.emit('clock', {});
    this.emit('joined', msg);
    const stream = this.stream;
    const tracks = msg.role === 'observer' ? [] : stream?.getTracks() ?? [];
    for (const track of tracks) {
      this.publish.pc.addTransceiver(track, { direction: 'sendonly', streams: stream ? [stream] : [] });
    }
    this.updateMediaStatus();
    this.negotiatePublish();
  }

  /** Offer on the publish connection; one offer in flight at a time. */
  async negotiatePublish() {
    const peer = this.publish;
    if (!peer || peer.pc.getTransceivers().length === 0) return;
    if (this.publishBusy) {
      this.publishDirty = true;
      return;
    }
    this.publishBusy = true;
    this.publishDirty = false;
    await peer.run(async () => {
      try {
        const offer = await peer.pc.createOffer();
        await peer.pc.setLocalDescription(offer);
        this.send({ type: 'offer', pc: 'publish', sdp: peer.pc.localDescription?.sdp });
      } catch (e) {
        this.publishBusy = false;
        throw e;
      }
    });
  }

  /** The server offers on `subscribe` whenever the set of tracks changes. @param {{pc: string, sdp: string}} msg */
  onOffer(msg) {
    const peer = this.subscribe;
    if (msg.pc !== 'subscribe' || !peer) return console.warn('offer for', msg.pc, 'ignored');
    peer.run(async () => {
      await peer.setRemote({ type: 'offer', sdp: msg.sdp });
      const answer = await peer.pc.createAnswer();
      await peer.pc.setLocalDescription(answer);
      this.send({ type: 'answer', pc: 'subscribe', sdp: peer.pc.localDescription?.sdp });
    });
  }

  /** @param {{pc: string, sdp: string}} msg */
  onAnswer(msg) {
    const peer = this.publish;
    if (msg.pc !== 'publish' || !peer) return console.warn('answer for', msg.pc, 'ignored');
    peer.run(async () => {
      await peer.setRemote({ type: 'answer', sdp: msg.sdp });
      this.publishBusy = false;
      if (this.publishDirty) this.negotiatePublish();
    });
  }

  /** The remote stream's id is the publisher's participant id; keep one track per (participant, kind). @param {RTCTrackEvent} e */
  onRemoteTrack(e) {
    const stream = e.streams[0];
    if (!stream) return console.warn('remote track without a stream', e.track.id);
    stream.onremovetrack = (ev) => this.dropRemote(stream.id, ev.track.id);
    const kinds = this.remote.get(stream.id) ?? new Map();
    kinds.set(e.track.kind, e.track);
    this.remote.set(stream.id, kinds);
    this.emit('media', { participantId: stream.id, tracks: this.remoteTracks(stream.id) });
  }

  /** @param {string} participantId @param {string} trackId */
  dropRemote(participantId, trackId) {
    const kinds = this.remote.get(participantId);
    const kind = [...(kinds?.entries() ?? [])].find(([, t]) => t.id === trackId)?.[0];
    if (!kinds || !kind) return;
    kinds.delete(kind);
    this.emit('media', { participantId, tracks: this.remoteTracks(participantId) });
  }

  /** @param {ErrorMsg} msg */
  onServerError(msg) {
    if (!this.you) {
      this.emit('join-failed', new RoundtableError(msg.code, msg.message));
      this.teardown('disconnected', true);
      return;
    }
    if (['bad_sdp', 'wrong_negotiation_state', 'media_unavailable'].includes(msg.code)) this.publishBusy = false;
    this.emit('server-error', msg);
  }

  /** @param {unknown} err */
  onMediaError(err) {
    console.error('negotiation failed', err);
    const text = err instanceof Error ? err.message : String(err);
    this.emit('server-error', { type: 'error', code: 'client_media', message: `Media setup failed: ${text}` });
  }

  /**
   * Connected once our own media is up (right away when we publish nothing); reconnecting while
   * either connection has lost its path. New subscriptions coming up do not count as connecting.
   */
  updateMediaStatus() {
    if (this.ended || !this.you) return;
    const peers = [this.publish, this.subscribe].filter((p) => p !== null);
    const states = peers.map((p) => p.pc.connectionState);
    const publishing = (this.publish?.pc.getTransceivers().length ?? 0) > 0;
    if (states.some((s) => s === 'disconnected' || s === 'failed')) this.setStatus('reconnecting');
    else if (publishing && this.publish?.pc.connectionState !== 'connected') this.setStatus('connecting');
    else this.setStatus('connected');
  }

  startKeepAlive() {
    if (this.pingTimer === undefined) this.pingTimer = setInterval(() => this.keepAlive(), PING_INTERVAL_MS);
  }

  keepAlive() {
    if (Date.now() - this.lastHeard > SILENCE_LIMIT_MS) {
      this.ws?.close();
      this.onSocketClosed(null);
      return;
    }
    this.ping();
  }

  /** A ping with an id, so that its pong is a sample of the server's clock. */
  ping() {
    this.send({ type: 'ping', id: this.clock.ping() });
  }

  /** @param {{id?: number, time?: number}} msg */
  onPong(msg) {
    if (this.clock.pong(msg.id, msg.time)) this.emit('clock', {});
    if (this.burst > 0) {
      this.burst -= 1;
      if (this.burst > 0) this.ping();
    }
  }

  /** @param {CloseEvent | null} e */
  onSocketClosed(e) {
    if (this.ended) return;
    if (!this.you) {
      const err = new RoundtableError('network', 'Could not reach the server. Check your connection and try again.');
      this.emit('join-failed', err);
      this.teardown('disconnected', true);
      return;
    }
    this.teardown('disconnected');
    this.emit('closed', { reason: e?.reason || 'connection lost' });
  }

  /**
   * Close both connections and the socket.
   * @param {ConnectionStatus} status
   * @param {boolean} [quiet] skip the status event (a failed join never was connected)
   */
  teardown(status, quiet = false) {
    this.ended = true;
    clearInterval(this.pingTimer);
    this.publish?.close();
    this.subscribe?.close();
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.onmessage = null;
      this.ws.close();
    }
    if (!quiet) this.setStatus(status);
  }
}
