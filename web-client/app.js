// @ts-check
/**
 * Roundtable web client UI. Draws the screens and reacts to {@link RoomConnection} events;
 * all wire-protocol work lives in protocol.js.
 */
import {
  RoomConnection, fetchRoom, acquireMedia, getUserMedia, trackConstraints, MAX_CHAT_CHARS, MAX_NAME_CHARS,
} from '/assets/protocol.js';

/** @typedef {import('/assets/protocol.js').ParticipantInfo} ParticipantInfo */
/** @typedef {import('/assets/protocol.js').ChatMessage} ChatMessage */
/** @typedef {import('/assets/protocol.js').JoinedMsg} JoinedMsg */
/** @typedef {import('/assets/protocol.js').RemoteTrack} RemoteTrack */
/** @typedef {import('/assets/protocol.js').RoundtableError} RoundtableError */
/** @typedef {import('/assets/protocol.js').ConnectionStatus} ConnectionStatus */
/**
 * @typedef {{info: ParticipantInfo, tile: HTMLElement, video: HTMLVideoElement,
 *   tracks: Map<string, MediaStreamTrack>}} Person
 */

const STORE = { name: 'roundtable.name', video: 'roundtable.camera', audio: 'roundtable.microphone' };
const SCREENS = ['home', 'problem', 'prejoin', 'call', 'left'];
const STATUS_TEXT = { connecting: 'Connecting…', connected: 'Connected', reconnecting: 'Reconnecting…', disconnected: 'Disconnected' };
const TOAST_MS = 8000;

/** @param {string} id @returns {any} */
const $ = (id) => document.getElementById(id);

const state = {
  roomId: '',
  roomTitle: '',
  /** @type {number | null} */
  capacity: null,
  stream: new MediaStream(),
  audioOn: true,
  videoOn: true,
  /** @type {RoomConnection | null} */
  conn: null,
  you: '',
  /** @type {Map<string, Person>} */
  people: new Map(),
  /** Remote tracks that arrived before their participant did. @type {RemoteTrack[]} */
  earlyTracks: [],
  lastChatSeq: -Infinity,
  unread: 0,
  /** @type {() => void} */
  stopMeter: () => {},
};

// ---- small helpers ------------------------------------------------------------------------

/** @param {string} name */
function showScreen(name) {
  for (const s of SCREENS) $(s).hidden = s !== name;
}

/**
 * @param {string} tag
 * @param {string} [className]
 * @param {string} [text]
 */
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** @param {string} text */
function showToast(text) {
  const toast = el('div', 'toast');
  toast.setAttribute('role', 'alert');
  const close = el('button', '', '×');
  close.setAttribute('aria-label', 'Dismiss');
  close.addEventListener('click', () => toast.remove());
  toast.append(el('p', '', text), close);
  $('toasts').append(toast);
  setTimeout(() => toast.remove(), TOAST_MS);
}

/** @param {HTMLElement} node @param {string | null} text */
function setNotice(node, text) {
  node.hidden = !text;
  node.textContent = text ?? '';
}

/** @param {string} name */
function initials(name) {
  const words = name.trim().split(/\s+/).filter(Boolean);
  return words.slice(0, 2).map((w) => [...w][0].toUpperCase()).join('') || '?';
}

/** A stable colour per participant. @param {string} id */
function avatarColor(id) {
  let h = 0;
  for (const ch of id) h = (h * 31 + ch.charCodeAt(0)) % 360;
  return `hsl(${h} 45% 42%)`;
}

/** @param {number} ts */
function clock(ts) {
  return new Date(ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

// ---- start-up and the room ----------------------------------------------------------------

async function boot() {
  const match = location.pathname.match(/^\/r\/([^/]+)\/?$/);
  if (!match) {
    showScreen('home');
    return;
  }
  state.roomId = decodeURIComponent(match[1]);
  $('name').value = localStorage.getItem(STORE.name) ?? '';
  showScreen('prejoin');
  const roomKnown = loadRoom();
  await startPreview();
  if (!(await roomKnown)) stopLocalMedia();
}

/** @returns {Promise<boolean>} false when the room does not exist */
async function loadRoom() {
  try {
    const room = await fetchRoom(state.roomId);
    state.roomTitle = room.title;
    state.capacity = room.capacity;
    $('room-title').textContent = room.title;
    document.title = `${room.title} · Roundtable`;
    const n = room.participants;
    $('room-meta').textContent = n === 0 ? 'Nobody is here yet. Be the first!' : `${n} ${n === 1 ? 'person is' : 'people are'} in the call`;
    return true;
  } catch (e) {
    const err = /** @type {RoundtableError} */ (e);
    if (err.code === 'room_not_found') {
      showProblem('This room does not exist', 'Check the link you were given: it may be mistyped, or the room may have been removed.');
      return false;
    }
    $('room-title').textContent = 'Skill Share';
    setNotice($('join-error'), `Could not load the room details: ${err.message}`);
    return true;
  }
}

/** @param {string} title @param {string} text */
function showProblem(title, text) {
  $('problem-title').textContent = title;
  $('problem-text').textContent = text;
  document.title = `${title} · Roundtable`;
  showScreen('problem');
}

// ---- local media --------------------------------------------------------------------------

/** A plain-language explanation of a getUserMedia failure. @param {any} err @param {MediaStream} stream */
function mediaErrorText(err, stream) {
  const join = 'You can still join to watch and listen.';
  const hasAudio = stream.getAudioTracks().length > 0;
  const hasVideo = stream.getVideoTracks().length > 0;
  switch (err.name) {
    case 'NotAllowedError':
      return `Camera and microphone access is blocked. Allow it in your browser's site settings and reload, or join without them. ${join}`;
    case 'NotFoundError':
    case 'OverconstrainedError':
      if (hasAudio) return 'No camera was found. You can join with your microphone only.';
      if (hasVideo) return 'No microphone was found. Others will see you but not hear you.';
      return `No camera or microphone was found. ${join}`;
    case 'NotReadableError':
      return `Your camera or microphone is in use by another application. Close it and reload, or join without them. ${join}`;
    case 'SecurityError':
      return `Camera and microphone only work on a secure (https) connection. ${join}`;
    default:
      return `Could not start your camera or microphone (${err.message || err.name}). ${join}`;
  }
}

async function startPreview() {
  const { stream, error } = await acquireMedia(localStorage.getItem(STORE.audio), localStorage.getItem(STORE.video));
  state.stream = stream;
  showPreview();
  setNotice($('media-error'), error ? mediaErrorText(error, stream) : null);
  renderToggles();
  startMeter();
  await fillDeviceSelects();
}

function stopLocalMedia() {
  state.stopMeter();
  for (const t of state.stream.getTracks()) t.stop();
  state.stream = new MediaStream();
  showPreview();
}

/** An empty stream in a media element would hold the page's load event forever: only attach tracks. */
function showPreview() {
  $('preview-video').srcObject = hasVideo() ? new MediaStream(state.stream.getVideoTracks()) : null;
}

async function fillDeviceSelects() {
  const devices = navigator.mediaDevices ? await navigator.mediaDevices.enumerateDevices() : [];
  /** @type {[string, 'audio' | 'video', string][]} */
  const sets = [['camera-select', 'video', 'Camera'], ['mic-select', 'audio', 'Microphone']];
  for (const [id, kind, noun] of sets) {
    const select = $(id);
    const found = devices.filter((d) => d.kind === `${kind}input` && d.deviceId);
    const current = state.stream.getTracks().find((t) => t.kind === kind)?.getSettings().deviceId;
    select.replaceChildren(...found.map((d, i) => new Option(d.label || `${noun} ${i + 1}`, d.deviceId)));
    if (!found.length || !current) select.replaceChildren(new Option(`No ${noun.toLowerCase()} available`, ''));
    select.disabled = !found.length || !current;
    if (current) select.value = current;
  }
}

/** Use another camera or microphone, before or during the call. @param {'audio' | 'video'} kind @param {string} deviceId */
async function switchDevice(kind, deviceId) {
  try {
    const fresh = await getUserMedia({ [kind]: { ...trackConstraints(kind, null), deviceId: { exact: deviceId } } });
    const track = fresh.getTracks()[0];
    const old = state.stream.getTracks().find((t) => t.kind === kind);
    if (old) {
      state.stream.removeTrack(old);
      old.stop();
    }
    track.enabled = kind === 'audio' ? state.audioOn : state.videoOn;
    state.stream.addTrack(track);
    localStorage.setItem(STORE[kind], deviceId);
    showPreview();
    if (kind === 'audio' && !state.conn) startMeter();
    await state.conn?.setTrack(track);
  } catch (e) {
    showToast(`Could not switch ${kind === 'audio' ? 'microphone' : 'camera'}: ${/** @type {Error} */ (e).message}`);
  }
}

/** A small live level bar under the preview, so people can see their microphone works. */
function startMeter() {
  state.stopMeter();
  const track = state.stream.getAudioTracks()[0];
  if (!track || typeof AudioContext === 'undefined') return;
  const ctx = new AudioContext();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 512;
  ctx.createMediaStreamSource(new MediaStream([track])).connect(analyser);
  const buf = new Uint8Array(analyser.fftSize);
  const bar = $('mic-meter');
  let frame = 0;
  const tick = () => {
    analyser.getByteTimeDomainData(buf);
    let peak = 0;
    for (const v of buf) peak = Math.max(peak, Math.abs(v - 128));
    bar.style.width = track.enabled ? `${Math.min(100, (peak / 64) * 100)}%` : '0';
    frame = requestAnimationFrame(tick);
  };
  tick();
  const resume = () => ctx.resume();
  document.addEventListener('pointerdown', resume, { once: true });
  state.stopMeter = () => {
    cancelAnimationFrame(frame);
    document.removeEventListener('pointerdown', resume);
    ctx.close();
    bar.style.width = '0';
    state.stopMeter = () => {};
  };
}

// ---- microphone and camera toggles --------------------------------------------------------

const hasAudio = () => state.stream.getAudioTracks().length > 0;
const hasVideo = () => state.stream.getVideoTracks().length > 0;
const audioLive = () => hasAudio() && state.audioOn;
const videoLive = () => hasVideo() && state.videoOn;

/** @param {boolean} on */
function setAudio(on) {
  state.audioOn = on;
  for (const t of state.stream.getAudioTracks()) t.enabled = on;
  afterToggle();
}

/** @param {boolean} on */
function setVideo(on) {
  state.videoOn = on;
  for (const t of state.stream.getVideoTracks()) t.enabled = on;
  afterToggle();
}

function afterToggle() {
  renderToggles();
  state.conn?.sendMediaState(audioLive(), videoLive());
  const self = state.people.get(state.you);
  if (self) renderPerson(self);
}

/** Mute is pressed when the microphone is off; Camera is pressed when the camera is on. */
function renderToggles() {
  for (const id of ['pre-mute', 'mute-btn']) {
    $(id).setAttribute('aria-pressed', String(!audioLive()));
    $(id).disabled = !hasAudio();
  }
  for (const id of ['pre-camera', 'camera-btn']) {
    $(id).setAttribute('aria-pressed', String(videoLive()));
    $(id).disabled = !hasVideo();
  }
  $('preview-off').hidden = videoLive();
  $('preview-off-text').textContent = hasVideo() ? 'Camera is off' : 'No camera';
}

// ---- joining ------------------------------------------------------------------------------

function join() {
  const name = $('name').value.trim();
  if (!name || [...name].length > MAX_NAME_CHARS) {
    setNotice($('join-error'), `Please enter your name (up to ${MAX_NAME_CHARS} characters).`);
    $('name').focus();
    return;
  }
  localStorage.setItem(STORE.name, name);
  setNotice($('join-error'), null);
  setJoinBusy(true);
  const conn = new RoomConnection({ roomId: state.roomId, name, stream: state.stream });
  state.conn = conn;
  for (const [type, handler] of Object.entries(connHandlers)) {
    conn.addEventListener(type, (e) => {
      if (conn === state.conn) handler(/** @type {CustomEvent} */ (e).detail);
    });
  }
  conn.connect();
}

/** @param {boolean} busy */
function setJoinBusy(busy) {
  $('join-btn').disabled = busy;
  $('join-btn').textContent = busy ? 'Joining…' : 'Join';
}

/** One handler per {@link RoomConnection} event. @type {Record<string, (detail: any) => void>} */
const connHandlers = {
  joined: onJoined,
  'join-failed': onJoinFailed,
  status: renderStatus,
  'participant-joined': (/** @type {ParticipantInfo} */ p) => addPerson(p),
  'participant-updated': (/** @type {ParticipantInfo} */ p) => updatePerson(p),
  'participant-left': ({ id }) => removePerson(id),
  'track-published': () => {},
  'track-unpublished': ({ id, participant }) => dropTrack(participant, id),
  track: (/** @type {RemoteTrack} */ t) => attachTrack(t),
  'track-removed': (/** @type {RemoteTrack} */ t) => dropTrack(t.participantId, t.track.id),
  chat: (/** @type {ChatMessage} */ m) => appendChat(m),
  'server-error': ({ code, message }) => showToast(message || `Server error: ${code}`),
  closed: onConnectionLost,
};

/** @param {JoinedMsg} msg */
function onJoined(msg) {
  state.you = msg.you;
  state.roomTitle = msg.room.title;
  state.stopMeter();
  setJoinBusy(false);
  resetCall();
  $('call-title').textContent = msg.room.title;
  document.title = `${msg.room.title} · Roundtable`;
  for (const p of msg.participants) addPerson(p);
  for (const m of msg.chat) appendChat(m);
  showScreen('call');
  renderToggles();
  state.conn?.sendMediaState(audioLive(), videoLive());
  layoutGrid();
}

/** @param {RoundtableError} err */
function onJoinFailed(err) {
  state.conn = null;
  setJoinBusy(false);
  if (err.code === 'room_not_found') {
    stopLocalMedia();
    showProblem('This room does not exist', 'Check the link you were given: it may be mistyped, or the room may have been removed.');
    return;
  }
  const texts = {
    room_full: `This room is full${state.capacity ? ` (${state.capacity} people)` : ''}. Try again when someone leaves.`,
    bad_name: `That name can't be used. Please use 1 to ${MAX_NAME_CHARS} characters.`,
    unsupported_version: 'This page is out of date. Reload it to join.',
  };
  showScreen('prejoin');
  setNotice($('join-error'), texts[/** @type {keyof texts} */ (err.code)] ?? err.message);
}

/** @param {ConnectionStatus} status */
function renderStatus(status) {
  if (status === 'left') return;
  $('status').dataset.state = status;
  $('status-text').textContent = STATUS_TEXT[status];
}

function onConnectionLost() {
  for (const id of [...state.people.keys()]) if (id !== state.you) removePerson(id);
  $('call-banner-text').textContent = 'Connection lost. Check your network, then rejoin.';
  $('call-banner').hidden = false;
}

function leave() {
  state.conn?.leave();
  state.conn = null;
  stopLocalMedia();
  resetCall();
  $('left-text').textContent = state.roomTitle ? `You left “${state.roomTitle}”. See you next time!` : 'See you next time!';
  showScreen('left');
  $('rejoin-btn').focus();
}

async function rejoin() {
  state.conn?.leave();
  state.conn = null;
  resetCall();
  showScreen('prejoin');
  setJoinBusy(true);
  if (!state.stream.getTracks().some((t) => t.readyState === 'live')) await startPreview();
  join();
}

function resetCall() {
  $('grid').replaceChildren();
  $('chat-log').replaceChildren();
  $('call-banner').hidden = true;
  state.people.clear();
  state.earlyTracks = [];
  state.lastChatSeq = -Infinity;
  setUnread(0);
  renderStatus('connecting');
}

// ---- tiles --------------------------------------------------------------------------------

/** @param {ParticipantInfo} info */
function addPerson(info) {
  if (state.people.has(info.id)) return updatePerson(info);
  const tile = /** @type {HTMLElement} */ ($('tile-template').content.firstElementChild.cloneNode(true));
  tile.dataset.participantId = info.id;
  const video = /** @type {HTMLVideoElement} */ (tile.querySelector('video'));
  const self = info.id === state.you;
  tile.classList.toggle('self', self);
  tile.querySelector('.initials').textContent = initials(info.name);
  tile.style.setProperty('--avatar', avatarColor(info.id));
  const nameEl = tile.querySelector('.tile-name');
  nameEl.textContent = info.name;
  if (self) {
    nameEl.append(el('span', 'you', ' (you)'));
    video.muted = true;
    video.srcObject = hasVideo() ? new MediaStream(state.stream.getVideoTracks()) : null;
  }
  /** @type {Person} */
  const person = { info, tile, video, tracks: new Map() };
  state.people.set(info.id, person);
  $('grid').append(tile);
  const early = state.earlyTracks.filter((t) => t.participantId === info.id);
  state.earlyTracks = state.earlyTracks.filter((t) => t.participantId !== info.id);
  for (const t of early) person.tracks.set(t.kind, t.track);
  if (early.length) playRemote(person);
  renderPerson(person);
  renderCount();
  layoutGrid();
}

/** @param {ParticipantInfo} info */
function updatePerson(info) {
  const person = state.people.get(info.id);
  if (!person) return addPerson(info);
  person.info = info;
  renderPerson(person);
}

/** @param {Person} person */
function renderPerson(person) {
  const self = person.info.id === state.you;
  const audio = self ? audioLive() : person.info.audio;
  const video = self ? videoLive() : person.info.video && person.tracks.has('video');
  person.tile.classList.toggle('muted', !audio);
  person.tile.classList.toggle('no-video', !video);
}

/** @param {string} id */
function removePerson(id) {
  const person = state.people.get(id);
  if (!person || id === state.you) return;
  person.video.srcObject = null;
  person.tile.remove();
  state.people.delete(id);
  renderCount();
  layoutGrid();
}

/** @param {RemoteTrack} t */
function attachTrack(t) {
  const person = state.people.get(t.participantId);
  if (!person) {
    state.earlyTracks.push(t);
    return;
  }
  person.tracks.set(t.kind, t.track);
  playRemote(person);
}

/** @param {string} participantId @param {string} trackId */
function dropTrack(participantId, trackId) {
  const person = state.people.get(participantId);
  if (!person) return;
  for (const [kind, track] of person.tracks) if (track.id === trackId) person.tracks.delete(kind);
  playRemote(person);
}

/** One stream per participant: its audio and video play from the tile's own video element. @param {Person} person */
function playRemote(person) {
  person.video.srcObject = person.tracks.size ? new MediaStream([...person.tracks.values()]) : null;
  renderPerson(person);
  if (person.tracks.size) person.video.play().catch(onAutoplayBlocked);
}

/** @param {Error} err */
function onAutoplayBlocked(err) {
  if (err.name !== 'NotAllowedError') return;
  showToast('Your browser paused the sound. Click anywhere to hear the others.');
  document.addEventListener('click', () => state.people.forEach((p) => p.video.play().catch(() => {})), { once: true });
}

function renderCount() {
  const n = state.people.size;
  $('people-count').textContent = `${n} ${n === 1 ? 'person' : 'people'}`;
}

/** Size tiles so that all of them fit the grid at 16:9, as large as possible. */
function layoutGrid() {
  const grid = $('grid');
  const n = grid.children.length;
  if (!n || grid.clientWidth === 0) return;
  const style = getComputedStyle(grid);
  const gap = parseFloat(style.columnGap) || 0;
  const width = grid.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  const height = grid.clientHeight - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom);
  let best = 0;
  for (let cols = 1; cols <= n; cols++) {
    const rows = Math.ceil(n / cols);
    const w = Math.min((width - gap * (cols - 1)) / cols, ((height - gap * (rows - 1)) / rows) * (16 / 9));
    best = Math.max(best, w);
  }
  grid.style.setProperty('--tile-w', `${Math.max(120, Math.floor(best - 1))}px`);
}

// ---- chat ---------------------------------------------------------------------------------

/** @param {ChatMessage} m */
function appendChat(m) {
  if (m.seq <= state.lastChatSeq) return;
  state.lastChatSeq = m.seq;
  const item = el('li', m.from === state.you ? 'chat-msg mine' : 'chat-msg');
  const meta = el('div', 'chat-meta');
  meta.append(el('span', 'chat-from', m.from === state.you ? `${m.name} (you)` : m.name), el('time', 'chat-time', clock(m.ts)));
  item.append(meta, el('p', 'chat-text', m.text));
  const log = $('chat-log');
  log.append(item);
  log.scrollTop = log.scrollHeight;
  if ($('chat').hidden && m.from !== state.you) setUnread(state.unread + 1);
}

/** @param {SubmitEvent} e */
function sendChat(e) {
  e.preventDefault();
  const input = $('chat-input');
  const text = input.value.trim();
  if (!text || !state.conn) return;
  if ([...text].length > MAX_CHAT_CHARS) {
    showToast(`Chat messages can be at most ${MAX_CHAT_CHARS} characters.`);
    return;
  }
  state.conn.sendChat(text);
  input.value = '';
}

function toggleChat() {
  const chat = $('chat');
  chat.hidden = !chat.hidden;
  $('chat-toggle').setAttribute('aria-pressed', String(!chat.hidden));
  if (!chat.hidden) {
    setUnread(0);
    $('chat-input').focus();
  }
  layoutGrid();
}

/** @param {number} n */
function setUnread(n) {
  state.unread = n;
  $('chat-unread').hidden = n === 0;
  $('chat-unread').textContent = String(n);
}

// ---- wiring -------------------------------------------------------------------------------

function wire() {
  $('join-form').addEventListener('submit', (/** @type {SubmitEvent} */ e) => {
    e.preventDefault();
    join();
  });
  $('home-form').addEventListener('submit', (/** @type {SubmitEvent} */ e) => {
    e.preventDefault();
    const raw = $('home-room').value.trim();
    const id = raw.includes('/r/') ? raw.split('/r/')[1].split(/[/?#]/)[0] : raw;
    if (id) location.assign(`/r/${encodeURIComponent(id)}`);
  });
  for (const id of ['pre-mute', 'mute-btn']) $(id).addEventListener('click', () => setAudio(!state.audioOn));
  for (const id of ['pre-camera', 'camera-btn']) $(id).addEventListener('click', () => setVideo(!state.videoOn));
  $('camera-select').addEventListener('change', () => switchDevice('video', $('camera-select').value));
  $('mic-select').addEventListener('change', () => switchDevice('audio', $('mic-select').value));
  $('chat-form').addEventListener('submit', sendChat);
  $('chat-input').maxLength = MAX_CHAT_CHARS;
  $('chat-toggle').addEventListener('click', toggleChat);
  $('leave-btn').addEventListener('click', leave);
  $('rejoin-btn').addEventListener('click', rejoin);
  $('banner-rejoin').addEventListener('click', rejoin);
  new ResizeObserver(layoutGrid).observe($('grid'));
  window.addEventListener('pagehide', () => state.conn?.leave());
}

wire();
boot();
