// @ts-check
/**
 * The call screen: the header with its status, the grid of tiles (one per participant), the
 * toolbar, and the side panel beside the grid: the agenda (agenda.js), chat (chat.js) or
 * people (people.js), one at a time. This module owns who is in the call; people.js draws
 * the same roster as a list, and agenda.js and recording.js name people from it.
 */
import { agendaRosterChanged, isAgendaOpen, resetAgenda, setAgendaOpen, showAgenda } from '/assets/agenda.js';
import { appendChat, isChatOpen, resetChat, setChatOpen } from '/assets/chat.js';
import { audioLive, hasVideo, renderToggles, setMedia, stopLocalMedia, videoLive } from '/assets/media.js';
import { openPersonMenu, renderOwnModeration, resetModeration } from '/assets/moderation.js';
import { isPeopleOpen, renderPeople, renderQueue, setPeopleOpen } from '/assets/people.js';
import { NOT_RECORDING, isRecorded, recordingRosterChanged, resetRecording, showRecording } from '/assets/recording.js';
import { state } from '/assets/state.js';
import { $, avatarColor, el, icon, initials, on, plural, showScreen, showToast } from '/assets/ui.js';
import { ROLE_LABEL } from '/assets/words.js';

/** @typedef {import('/assets/protocol.js').ParticipantInfo} ParticipantInfo */
/** @typedef {import('/assets/protocol.js').JoinedMsg} JoinedMsg */
/** @typedef {import('/assets/protocol.js').RemoteMedia} RemoteMedia */
/** @typedef {import('/assets/protocol.js').ConnectionStatus} ConnectionStatus */
/** @typedef {{info: ParticipantInfo, tile: HTMLElement, video: HTMLVideoElement, tracks: MediaStreamTrack[]}} Person */

const STATUS_TEXT = { connecting: 'Connecting…', connected: 'Connected', reconnecting: 'Reconnecting…', disconnected: 'Disconnected' };

/** Everyone in the call, ourselves included, by participant id, in join order. @type {Map<string, Person>} */
const people = new Map();

/** Everyone in the call, in join order. */
export const roster = () => [...people.values()].map((p) => p.info);

/** A participant's name, if they are in the call. @param {string} id */
export const nameOf = (id) => people.get(id)?.info.name;

// ---- the screen ---------------------------------------------------------------------------

/** Show the call that was just joined. @param {JoinedMsg} msg */
export function enterCall(msg) {
  state.you = msg.you;
  state.role = msg.role;
  state.roomTitle = msg.room.title;
  resetCall();
  state.hands = msg.hands;
  state.locked = msg.locked;
  state.waiting = msg.waiting;
  const self = msg.participants.find((p) => p.id === msg.you);
  state.audioAllowed = self?.audio_allowed ?? true;
  state.videoAllowed = self?.video_allowed ?? true;
  if (!state.audioAllowed) setMedia('audio', false);
  if (!state.videoAllowed) setMedia('video', false);
  // Observers never publish: what the lobby may have opened is let go.
  if (msg.role === 'observer') stopLocalMedia();
  for (const id of ['mute-btn', 'camera-btn', 'hand-btn']) $(id).hidden = msg.role === 'observer';
  $('call-title').textContent = msg.room.title;
  document.title = `${msg.room.title} · Roundtable`;
  const recording = msg.recording ?? NOT_RECORDING;
  state.recording = recording; // the tiles mark whom it records
  for (const p of msg.participants) addPerson(p);
  for (const m of msg.chat) appendChat(m);
  showAgenda(msg.agenda ?? null, null);
  showRecording(recording, true);
  showScreen('call');
  // On phones a panel covers the videos. A facilitator runs the agenda; the others see its chip.
  const panel = state.role === 'facilitator' ? 'agenda' : 'chat';
  openPanel(matchMedia('(max-width: 860px)').matches ? null : panel, false);
  renderToggles();
  renderOwnModeration();
  renderLock();
  renderHands();
  renderQueue([]); // a facilitator hears of whoever already waits
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
  state.hands = [];
  state.waiting = [];
  state.locked = false;
  resetChat();
  resetModeration();
  resetAgenda();
  resetRecording();
  renderPeople(roster());
  renderStatus('connecting');
}

/** The room was locked or unlocked. */
export function renderLock() {
  $('locked-pill').hidden = !state.locked;
  $('lock-btn').hidden = state.role !== 'facilitator';
  $('lock-text').textContent = state.locked ? 'Unlock room' : 'Lock room';
  $('lock-btn').querySelector('use')?.setAttribute('href', state.locked ? '#i-unlock' : '#i-lock');
}

// ---- side panels --------------------------------------------------------------------------

/**
 * Show one side panel, or none. They share the space beside the grid.
 * @param {'agenda' | 'chat' | 'people' | null} panel @param {boolean} [focus] move focus into it
 */
export function openPanel(panel, focus = true) {
  setAgendaOpen(panel === 'agenda', focus);
  setChatOpen(panel === 'chat', focus);
  setPeopleOpen(panel === 'people', focus);
  layoutGrid();
}

// ---- tiles --------------------------------------------------------------------------------

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
    if (state.role === 'facilitator') tile.append(tileMenuButton(person));
  }
  renderPerson(person);
  renderCount();
  layoutGrid();
}

/** A facilitator's menu on the tile too, where a noisy person is seen. @param {Person} person */
function tileMenuButton(person) {
  const button = /** @type {HTMLButtonElement} */ (el('button', 'icon-btn tile-menu-btn'));
  button.type = 'button';
  button.setAttribute('aria-haspopup', 'menu');
  button.setAttribute('aria-expanded', 'false');
  button.setAttribute('aria-controls', 'person-menu');
  button.append(icon('i-more'));
  button.addEventListener('click', () => openPersonMenu(button, person.info));
  return button;
}

/** @param {ParticipantInfo} info @returns {void} */
export function updatePerson(info) {
  const person = people.get(info.id);
  if (!person) return addPerson(info);
  person.info = info;
  renderPerson(person);
  renderPeople(roster());
  agendaRosterChanged(roster());
  recordingRosterChanged(roster());
}

/**
 * A muted or stopped person shows as such whether they did it or a facilitator did: the
 * server forwards nothing then, and a stopped video would freeze on its last frame.
 * @param {Person} person
 */
function renderPerson(person) {
  const { info, tile } = person;
  const self = info.id === state.you;
  const audio = self ? audioLive() : info.audio && info.audio_allowed;
  const video = self ? videoLive() : info.video && info.video_allowed && person.tracks.some((t) => t.kind === 'video');
  tile.classList.toggle('audio-off', !audio); // not `muted`: that class greys text (style.css)
  tile.classList.toggle('no-video', !video);
  tile.classList.toggle('observer', info.role === 'observer');
  const badge = /** @type {HTMLElement} */ (tile.querySelector('.tile-role'));
  badge.hidden = info.role === 'participant';
  badge.textContent = ROLE_LABEL[info.role];
  badge.dataset.role = info.role;
  /** @type {HTMLElement} */ (tile.querySelector('.tile-rec')).hidden = !isRecorded(info.id);
  tile.querySelector('.tile-menu-btn')?.setAttribute('aria-label', `Actions for ${info.name}`);
}

/** Our own tile and row follow the Mute and Camera toggles. */
export function renderSelf() {
  const self = people.get(state.you);
  if (self) renderPerson(self);
  renderPeople(roster());
}

/** Recording started or stopped, or whom it records changed: every tile and row follows. */
export function renderRecorded() {
  for (const person of people.values()) renderPerson(person);
  renderPeople(roster());
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

/** Raised hands, in order: a numbered hand on each tile, the list, and our own button. */
export function renderHands() {
  for (const [id, { tile }] of people) {
    const at = state.hands.indexOf(id);
    const hand = /** @type {HTMLElement} */ (tile.querySelector('.tile-hand'));
    hand.hidden = at < 0;
    hand.setAttribute('aria-label', `Hand raised, number ${at + 1} in line`);
    /** @type {HTMLElement} */ (hand.querySelector('.tile-hand-pos')).textContent = String(at + 1);
  }
  const mine = state.hands.indexOf(state.you);
  $('hand-text').textContent = mine < 0 ? 'Raise hand' : 'Lower hand';
  $('hand-btn').classList.toggle('raised', mine >= 0);
  $('hand-position').hidden = mine < 0;
  $('hand-position').textContent = String(mine + 1);
  renderPeople(roster());
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
  renderPeople(roster());
  agendaRosterChanged(roster());
  recordingRosterChanged(roster());
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
  on('hand-btn', 'click', () => {
    if (state.hands.includes(state.you)) state.conn?.lowerHand();
    else state.conn?.raiseHand();
  });
  on('chat-toggle', 'click', () => openPanel(isChatOpen() ? null : 'chat'));
  on('people-toggle', 'click', () => openPanel(isPeopleOpen() ? null : 'people'));
  on('agenda-toggle', 'click', () => openPanel(isAgendaOpen() ? null : 'agenda'));
  on('agenda-chip', 'click', () => openPanel('agenda'));
  new ResizeObserver(layoutGrid).observe($('grid'));
}
