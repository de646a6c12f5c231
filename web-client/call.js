// @ts-check
/**
 * The call screen: the header with its status, the grid of tiles (one per participant) and
 * the toolbar. The chat panel beside the grid is chat.js.
 */
import { appendChat, isChatOpen, resetChat, setChatOpen } from '/assets/chat.js';
import { audioLive, hasVideo, renderToggles, setMedia, videoLive } from '/assets/media.js';
import { state } from '/assets/state.js';
import { $, el, on, plural, showScreen, showToast } from '/assets/ui.js';

/** @typedef {import('/assets/protocol.js').ParticipantInfo} ParticipantInfo */
/** @typedef {import('/assets/protocol.js').JoinedMsg} JoinedMsg */
/** @typedef {import('/assets/protocol.js').RemoteMedia} RemoteMedia */
/** @typedef {import('/assets/protocol.js').ConnectionStatus} ConnectionStatus */
/** @typedef {{info: ParticipantInfo, tile: HTMLElement, video: HTMLVideoElement, tracks: MediaStreamTrack[]}} Person */

const STATUS_TEXT = { connecting: 'Connecting…', connected: 'Connected', reconnecting: 'Reconnecting…', disconnected: 'Disconnected' };

/** Everyone in the call, ourselves included, by participant id. @type {Map<string, Person>} */
const people = new Map();

// ---- the screen ---------------------------------------------------------------------------

/** Show the call that was just joined. @param {JoinedMsg} msg */
export function enterCall(msg) {
  state.you = msg.you;
  state.roomTitle = msg.room.title;
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

/** @param {ConnectionStatus} status */
export function renderStatus(status) {
  if (status === 'left') return;
  $('status').dataset.state = status;
  $('status-text').textContent = STATUS_TEXT[status];
}

export function onConnectionLost() {
  for (const id of [...people.keys()]) removePerson(id);
  $('call-banner-text').textContent = 'Connection lost. Check your network, then rejoin.';
  $('call-banner').hidden = false;
}

/** Empty the screen for the next call. */
export function resetCall() {
  $('grid').replaceChildren();
  $('call-banner').hidden = true;
  people.clear();
  resetChat();
  renderStatus('connecting');
}

// ---- tiles --------------------------------------------------------------------------------

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

/** @param {ParticipantInfo} info @returns {void} */
export function addPerson(info) {
  if (people.has(info.id)) return updatePerson(info);
  const template = $('tile-template', HTMLTemplateElement);
  const tile = /** @type {HTMLElement} */ (template.content.firstElementChild?.cloneNode(true));
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
  people.set(info.id, person);
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
export function updatePerson(info) {
  const person = people.get(info.id);
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

/** Our own tile follows the Mute and Camera toggles. */
function renderSelf() {
  const self = people.get(state.you);
  if (self) renderPerson(self);
}

/** @param {string} id */
export function removePerson(id) {
  const person = people.get(id);
  if (!person || id === state.you) return;
  person.video.srcObject = null;
  person.tile.remove();
  people.delete(id);
  renderCount();
  layoutGrid();
}

/** One stream per participant: its audio and video play from the tile's own video element. @param {RemoteMedia} media */
export function showRemoteMedia({ participantId, tracks }) {
  const person = people.get(participantId);
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
  document.addEventListener('click', () => people.forEach((p) => p.video.play().catch(() => {})), { once: true });
}

function renderCount() {
  $('people-count').textContent = plural(people.size, 'person', 'people');
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

// ---- wiring -------------------------------------------------------------------------------

/** The toolbar's own buttons; Leave is app.js's, since it changes the screen. */
export function wireCall() {
  on('mute-btn', 'click', () => {
    setMedia('audio', !state.audioOn);
    renderSelf();
  });
  on('camera-btn', 'click', () => {
    setMedia('video', !state.videoOn);
    renderSelf();
  });
  on('chat-toggle', 'click', () => {
    setChatOpen(!isChatOpen());
    layoutGrid();
  });
  new ResizeObserver(layoutGrid).observe($('grid'));
}
