// @ts-check
/**
 * Roundtable web client UI: draws the screens and reacts to {@link RoomConnection} events.
 * All wire-protocol and peer-connection work lives in protocol.js.
 */
import {
  RoomConnection, fetchRoom, acquireMedia, describeMediaError, getUserMedia, trackConstraints, MAX_CHAT_CHARS, MAX_NAME_CHARS,
} from '/assets/protocol.js';

/** @typedef {import('/assets/protocol.js').ParticipantInfo} ParticipantInfo */
/** @typedef {import('/assets/protocol.js').ChatMessage} ChatMessage */
/** @typedef {import('/assets/protocol.js').JoinedMsg} JoinedMsg */
/** @typedef {import('/assets/protocol.js').RemoteMedia} RemoteMedia */
/** @typedef {import('/assets/protocol.js').RoundtableError} RoundtableError */
/** @typedef {import('/assets/protocol.js').ConnectionStatus} ConnectionStatus */
/** @typedef {{info: ParticipantInfo, tile: HTMLElement, video: HTMLVideoElement, tracks: MediaStreamTrack[]}} Person */

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
  lastChatSeq: -Infinity,
  unread: 0,
  /** Settles once the camera and microphone were asked for; joining waits for it. @type {Promise<void>} */
  mediaReady: Promise.resolve(),
};

// ---- small helpers ------------------------------------------------------------------------

/** @param {string} name */
function showScreen(name) {
  for (const s of SCREENS) $(s).hidden = s !== name;
}

/** @param {string} tag @param {string} [className] @param {string} [text] */
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

/** A stable colour per participant; the golden angle keeps similar ids apart. @param {string} key */
function avatarColor(key) {
  let h = 7;
  for (const ch of key) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return `hsl(${Math.round((h * 137.508) % 360)} 45% 42%)`;
}

/** @param {number} n @param {string} one @param {string} many */
const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;

// ---- start-up and the room ----------------------------------------------------------------

async function boot() {
  const match = location.pathname.match(/^\/r\/([^/]+)\/?$/);
  if (!match) return showScreen('home');
  state.roomId = decodeURIComponent(match[1]);
  $('name').value = localStorage.getItem(STORE.name) ?? '';
  showScreen('prejoin');
  const roomExists = loadRoom();
  state.mediaReady = startPreview();
  await state.mediaReady;
  if (!(await roomExists)) stopLocalMedia();
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
    $('room-meta').textContent = n >= room.capacity ? 'The room is full right now.'
      : n ? `${plural(n, 'person is', 'people are')} in the call` : 'Nobody is here yet. Be the first!';
    return true;
  } catch (e) {
    const err = /** @type {RoundtableError} */ (e);
    if (err.code === 'room_not_found') {
      showNoSuchRoom();
      return false;
    }
    $('room-title').textContent = 'Skill Share';
    setNotice($('join-error'), `Could not load the room details: ${err.message}`);
    return true;
  }
}

function showNoSuchRoom() {
  $('problem-title').textContent = 'This room does not exist';
  $('problem-text').textContent = 'Check the link you were given: it may be mistyped, or the room may have been removed.';
  document.title = 'Room not found · Roundtable';
  showScreen('problem');
}

// ---- local media --------------------------------------------------------------------------

async function startPreview() {
  const { stream, error } = await acquireMedia(localStorage.getItem(STORE.audio), localStorage.getItem(STORE.video));
  state.stream = stream;
  for (const t of stream.getTracks()) t.enabled = t.kind === 'audio' ? state.audioOn : state.videoOn;
  showPreview();
  setNotice($('media-error'), error ? describeMediaError(error, stream) : null);
  renderToggles();
  await fillDeviceSelects();
}

function stopLocalMedia() {
  for (const t of state.stream.getTracks()) t.stop();
  state.stream = new MediaStream();
  showPreview();
}

/** Attach only real tracks: an empty stream in a media element would hold the page's load event forever. */
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

/** Use another camera or microphone (in a call: `replaceTrack`, no renegotiation). @param {'audio' | 'video'} kind @param {string} deviceId */
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
    await state.conn?.setTrack(track);
  } catch (e) {
    showToast(`Could not switch ${kind === 'audio' ? 'microphone' : 'camera'}: ${/** @type {Error} */ (e).message}`);
  }
}

// ---- microphone and camera toggles --------------------------------------------------------

const hasAudio = () => state.stream.getAudioTracks().length > 0;
const hasVideo = () => state.stream.getVideoTracks().length > 0;
const audioLive = () => hasAudio() && state.audioOn;
const videoLive = () => hasVideo() && state.videoOn;

/** Toggle with `track.enabled` (no renegotiation) and tell the room. @param {'audio' | 'video'} kind @param {boolean} on */
function setMedia(kind, on) {
  if (kind === 'audio') state.audioOn = on;
  else state.videoOn = on;
  for (const t of state.stream.getTracks()) if (t.kind === kind) t.enabled = on;
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

// ---- joining and leaving ------------------------------------------------------------------

async function join() {
  const name = $('name').value.trim();
  if (!name || [...name].length > MAX_NAME_CHARS) {
    setJoinBusy(false);
    $('name').focus();
    return setNotice($('join-error'), `Please enter your name (up to ${MAX_NAME_CHARS} characters).`);
  }
  localStorage.setItem(STORE.name, name);
  setNotice($('join-error'), null);
  setJoinBusy(true);
  await state.mediaReady; // a click during the permission prompt joins with the media that follows
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
  'participant-joined': addPerson,
  'participant-updated': updatePerson,
  'participant-left': ({ id }) => removePerson(id),
  media: showRemoteMedia,
  chat: appendChat,
  'server-error': ({ code, message }) => showToast(message || `Server error: ${code}`),
  closed: onConnectionLost,
};

/** @param {JoinedMsg} msg */
function onJoined(msg) {
  state.you = msg.you;
  state.roomTitle = msg.room.title;
  setJoinBusy(false);
  resetCall();
  $('call-title').textContent = msg.room.title;
  document.title = `${msg.room.title} · Roundtable`;
  for (const p of msg.participants) addPerson(p);
  for (const m of msg.chat) appendChat(m);
  showScreen('call');
  setChatOpen(!matchMedia('(max-width: 860px)').matches, false); // on phones the chat covers the videos
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
    return showNoSuchRoom();
  }
  /** @type {Record<string, string>} */
  const texts = {
    room_full: `This room is full${state.capacity ? `: it holds ${plural(state.capacity, 'person', 'people')}` : ''}. Try again when someone leaves.`,
    bad_name: `That name can't be used. Please use 1 to ${MAX_NAME_CHARS} characters.`,
    unsupported_version: 'This page is out of date. Reload it to join.',
  };
  showScreen('prejoin');
  setNotice($('join-error'), texts[err.code] ?? err.message);
}

/** @param {ConnectionStatus} status */
function renderStatus(status) {
  if (status === 'left') return;
  $('status').dataset.state = status;
  $('status-text').textContent = STATUS_TEXT[status];
}

function onConnectionLost() {
  for (const id of [...state.people.keys()]) removePerson(id);
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
  if (!state.stream.getTracks().some((t) => t.readyState === 'live')) state.mediaReady = startPreview();
  join();
}

function resetCall() {
  $('grid').replaceChildren();
  $('chat-log').replaceChildren();
  $('call-banner').hidden = true;
  state.people.clear();
  state.lastChatSeq = -Infinity;
  setUnread(0);
  renderStatus('connecting');
}

// ---- tiles --------------------------------------------------------------------------------

/** @param {ParticipantInfo} info @returns {void} */
function addPerson(info) {
  if (state.people.has(info.id)) return updatePerson(info);
  const tile = /** @type {HTMLElement} */ ($('tile-template').content.firstElementChild.cloneNode(true));
  /** @param {string} sel */
  const part = (sel) => /** @type {HTMLElement} */ (tile.querySelector(sel));
  const video = /** @type {HTMLVideoElement} */ (part('video'));
  const self = info.id === state.you;
  tile.dataset.participantId = info.id;
  tile.classList.toggle('self', self);
  tile.style.setProperty('--avatar', avatarColor(info.name + info.id));
  part('.initials').textContent = initials(info.name);
  const nameEl = part('.tile-name');
  nameEl.textContent = info.name;
  /** @type {Person} */
  const person = { info, tile, video, tracks: [] };
  state.people.set(info.id, person);
  $('grid').append(tile);
  if (self) {
    nameEl.append(el('span', 'you', ' (you)'));
    video.muted = true;
    video.srcObject = hasVideo() ? new MediaStream(state.stream.getVideoTracks()) : null;
  } else {
    showRemoteMedia({ participantId: info.id, tracks: state.conn?.remoteTracks(info.id) ?? [] });
  }
  renderPerson(person);
  renderCount();
  layoutGrid();
}

/** @param {ParticipantInfo} info @returns {void} */
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
  const video = self ? videoLive() : person.info.video && person.tracks.some((t) => t.kind === 'video');
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

/** One stream per participant: its audio and video play from the tile's own video element. @param {RemoteMedia} media */
function showRemoteMedia({ participantId, tracks }) {
  const person = state.people.get(participantId);
  if (!person) return; // addPerson picks the tracks up
  person.tracks = tracks;
  person.video.srcObject = tracks.length ? new MediaStream(tracks) : null;
  renderPerson(person);
  if (tracks.length) person.video.play().catch(onAutoplayBlocked);
}

/** @param {Error} err */
function onAutoplayBlocked(err) {
  if (err.name !== 'NotAllowedError') return;
  showToast('Your browser paused the sound. Click anywhere to hear the others.');
  document.addEventListener('click', () => state.people.forEach((p) => p.video.play().catch(() => {})), { once: true });
}

function renderCount() {
  $('people-count').textContent = plural(state.people.size, 'person', 'people');
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
    best = Math.max(best, Math.min((width - gap * (cols - 1)) / cols, ((height - gap * (rows - 1)) / rows) * (16 / 9)));
  }
  grid.style.setProperty('--tile-w', `${Math.max(120, Math.floor(best - 1))}px`);
}

// ---- chat ---------------------------------------------------------------------------------

/** Render what the server sent (history and live messages alike), once each. @param {ChatMessage} m */
function appendChat(m) {
  if (m.seq <= state.lastChatSeq) return;
  state.lastChatSeq = m.seq;
  const mine = m.from === state.you;
  const item = el('li', mine ? 'chat-msg mine' : 'chat-msg');
  const meta = el('div', 'chat-meta');
  const time = el('time', 'chat-time', new Date(m.ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }));
  time.setAttribute('datetime', new Date(m.ts).toISOString());
  meta.append(el('span', 'chat-from', mine ? `${m.name} (you)` : m.name), time);
  item.append(meta, el('p', 'chat-text', m.text));
  const log = $('chat-log');
  log.append(item);
  log.scrollTop = log.scrollHeight;
  if ($('chat').hidden && !mine) setUnread(state.unread + 1);
}

/** @param {SubmitEvent} e */
function sendChat(e) {
  e.preventDefault();
  const input = $('chat-input');
  const text = input.value.trim();
  if (!text || !state.conn) return;
  if ([...text].length > MAX_CHAT_CHARS) return showToast(`Chat messages can be at most ${MAX_CHAT_CHARS} characters.`);
  state.conn.sendChat(text);
  input.value = '';
}

/** @param {boolean} open @param {boolean} [focus] */
function setChatOpen(open, focus = true) {
  $('chat').hidden = !open;
  $('chat-toggle').setAttribute('aria-pressed', String(open));
  if (open) setUnread(0);
  if (open && focus) $('chat-input').focus();
  layoutGrid();
}

/** @param {number} n */
function setUnread(n) {
  state.unread = n;
  $('chat-unread').hidden = n === 0;
  $('chat-unread').textContent = String(n);
}

// ---- wiring -------------------------------------------------------------------------------

/** @param {string} id @param {string} type @param {(e: any) => void} fn */
const on = (id, type, fn) => $(id).addEventListener(type, fn);

function wire() {
  on('join-form', 'submit', (e) => {
    e.preventDefault();
    join();
  });
  on('home-form', 'submit', (e) => {
    e.preventDefault();
    const raw = $('home-room').value.trim();
    const id = raw.includes('/r/') ? raw.split('/r/')[1].split(/[/?#]/)[0] : raw;
    if (id) location.assign(`/r/${encodeURIComponent(id)}`);
  });
  for (const id of ['pre-mute', 'mute-btn']) on(id, 'click', () => setMedia('audio', !state.audioOn));
  for (const id of ['pre-camera', 'camera-btn']) on(id, 'click', () => setMedia('video', !state.videoOn));
  on('camera-select', 'change', () => switchDevice('video', $('camera-select').value));
  on('mic-select', 'change', () => switchDevice('audio', $('mic-select').value));
  on('chat-form', 'submit', sendChat);
  on('chat-toggle', 'click', () => setChatOpen($('chat').hidden));
  on('leave-btn', 'click', leave);
  on('rejoin-btn', 'click', rejoin);
  on('banner-rejoin', 'click', rejoin);
  $('chat-input').maxLength = MAX_CHAT_CHARS;
  new ResizeObserver(layoutGrid).observe($('grid'));
  window.addEventListener('pagehide', () => state.conn?.leave());
}

wire();
boot();
