// @ts-check
/**
 * The people panel of the call screen: who is in the call with their roles, raised hands
 * first and numbered in the order they went up, and for facilitators the waiting room's
 * queue (Admit, Decline), the Lock room button and a menu on each person (moderation.js).
 * call.js owns the roster; this module draws it.
 */
import { isLive, presenters } from '/assets/floor.js';
import { menuPersonChanged, openPersonMenu } from '/assets/moderation.js';
import { isRecorded } from '/assets/recording.js';
import { state } from '/assets/state.js';
import { $, announce, avatarColor, el, icon, initials, on, showToast, syncList } from '/assets/ui.js';
import { ROLE_LABEL } from '/assets/words.js';

/** @typedef {import('/assets/protocol.js').ParticipantInfo} ParticipantInfo */
/** @typedef {import('/assets/protocol.js').WaiterInfo} WaiterInfo */

export const isPeopleOpen = () => !$('people').hidden;

/** @param {boolean} open @param {boolean} [focus] */
export function setPeopleOpen(open, focus = true) {
  $('people').hidden = !open;
  $('people-toggle').setAttribute('aria-pressed', String(open));
  if (open && focus) $('people-heading').focus();
}

// ---- the list -----------------------------------------------------------------------------

/**
 * Raised hands first, in the order they went up; then everyone else in join order.
 * @param {ParticipantInfo[]} roster everyone, in join order
 */
export function renderPeople(roster) {
  const hand = (/** @type {ParticipantInfo} */ p) => state.hands.indexOf(p.id);
  const up = roster.filter((p) => hand(p) >= 0).sort((a, b) => hand(a) - hand(b));
  const ordered = [...up, ...roster.filter((p) => hand(p) < 0)];
  floorHolders = new Set(floorMarked(roster));
  currentInfo.clear();
  syncList($('people-list'), ordered, (p) => p.id, makePersonRow, updatePersonRow);
  $('in-call-count').textContent = String(roster.length);
  menuPersonChanged(currentInfo);
}

/** @param {ParticipantInfo} info */
function makePersonRow(info) {
  const row = el('li', 'person');
  const avatar = el('span', 'avatar-sm');
  avatar.setAttribute('aria-hidden', 'true');
  const text = el('span', 'person-text');
  text.append(el('span', 'person-name'), el('span', 'person-sub'));
  const marks = el('span', 'person-marks');
  row.append(avatar, text, marks);
  if (info.id !== state.you && state.role === 'facilitator') {
    const button = el('button', 'icon-btn person-menu-btn');
    button.setAttribute('type', 'button');
    button.setAttribute('aria-haspopup', 'menu');
    button.setAttribute('aria-expanded', 'false');
    button.setAttribute('aria-controls', 'person-menu');
    button.append(icon('i-more'));
    button.addEventListener('click', () => {
      const person = currentInfo.get(info.id);
      if (person) openPersonMenu(/** @type {HTMLButtonElement} */ (button), person);
    });
    row.append(button);
  }
  return row;
}

/** The latest info of each listed person, for a menu opened later. @type {Map<string, ParticipantInfo>} */
const currentInfo = new Map();

/** Who the list marks as holding the floor. @type {Set<string>} */
let floorHolders = new Set();

/**
 * While the floor is not open to all: the presenters and whom a facilitator gave it
 * (facilitators always have it, so they are not marked).
 * @param {ParticipantInfo[]} roster
 */
function floorMarked(roster) {
  const view = state.agenda;
  if (!view || !isLive(view) || view.floor.mode === 'open') return [];
  const presenting = presenters(view, roster)
    .filter((p) => p.role !== 'facilitator' && view.floor.speakers.includes(p.id)).map((p) => p.id);
  return [...presenting, ...view.floor.given];
}

/** @param {HTMLElement} row @param {ParticipantInfo} info */
function updatePersonRow(row, info) {
  currentInfo.set(info.id, info);
  const self = info.id === state.you;
  const avatar = /** @type {HTMLElement} */ (row.querySelector('.avatar-sm'));
  avatar.textContent = initials(info.name);
  avatar.style.setProperty('--avatar', avatarColor(info.name + info.id));
  const name = /** @type {HTMLElement} */ (row.querySelector('.person-name'));
  name.textContent = info.name;
  if (self) name.append(el('span', 'you', ' (you)'));
  const sub = /** @type {HTMLElement} */ (row.querySelector('.person-sub'));
  const badge = el('span', 'role-badge', ROLE_LABEL[info.role]);
  badge.dataset.role = info.role;
  sub.replaceChildren(badge);
  row.querySelector('.person-menu-btn')?.setAttribute('aria-label', `Actions for ${info.name}`);
  row.querySelector('.person-marks')?.replaceChildren(...marks(info));
}

/**
 * What the row shows beside the name: the hand and its place, the floor, whether they are
 * recorded (or agree to be), a muted microphone, a stopped camera.
 * @param {ParticipantInfo} info
 */
function marks(info) {
  const out = [];
  const at = state.hands.indexOf(info.id);
  if (at >= 0) {
    const chip = el('span', 'hand-chip');
    chip.setAttribute('role', 'img');
    chip.setAttribute('aria-label', `Hand raised, number ${at + 1} in line`);
    chip.append(icon('i-hand'), el('span', '', String(at + 1)));
    out.push(chip);
  }
  if (floorHolders.has(info.id)) {
    const chip = el('span', 'floor-chip', 'Has the floor');
    out.push(chip);
  }
  if (info.role === 'observer') return out;
  if (isRecorded(info.id)) out.push(recMark('Recorded', true));
  else if (info.consent) out.push(recMark('Agrees to be recorded', false));
  const self = info.id === state.you;
  const audioOff = self ? !state.audioOn || !state.audioAllowed : !info.audio || !info.audio_allowed;
  const videoOff = self ? !state.videoOn || !state.videoAllowed : !info.video || !info.video_allowed;
  if (audioOff) out.push(mark('i-mic-off', info.audio_allowed ? 'Microphone off' : 'Muted by a facilitator', !info.audio_allowed));
  if (videoOff) out.push(mark('i-cam-off', info.video_allowed ? 'Camera off' : 'Camera stopped by a facilitator', !info.video_allowed));
  return out;
}

/** @param {string} id @param {string} label @param {boolean} held a facilitator holds it off */
function mark(id, label, held) {
  const span = el('span', held ? 'mark held' : 'mark');
  span.setAttribute('role', 'img');
  span.setAttribute('aria-label', label);
  span.title = label;
  span.append(icon(id));
  return span;
}

/** A dot: red while recorded, a ring while they only agree. @param {string} label @param {boolean} live */
function recMark(label, live) {
  const span = el('span', live ? 'mark rec-mark live' : 'mark rec-mark');
  span.setAttribute('role', 'img');
  span.setAttribute('aria-label', label);
  span.title = label;
  span.append(el('span', 'rec-dot'));
  return span;
}

// ---- the waiting room's queue (facilitators) ----------------------------------------------

/**
 * Draw `state.waiting`, first first. A facilitator with the panel closed hears of each new
 * arrival, and the People button counts who waits.
 * @param {WaiterInfo[]} [before] the queue as it was, to tell who is new
 */
export function renderQueue(before) {
  const waiting = state.role === 'facilitator' ? state.waiting : [];
  $('queue').hidden = waiting.length === 0;
  $('queue-count').textContent = String(waiting.length);
  syncList($('queue-list'), waiting, (w) => w.id, makeWaiterRow, updateWaiterRow);
  $('people-badge').hidden = waiting.length === 0;
  $('people-badge').textContent = String(waiting.length);
  const known = new Set((before ?? waiting).map((w) => w.id));
  const arrived = waiting.filter((w) => !known.has(w.id));
  if (!arrived.length) return;
  const text = arrived.length === 1 ? `${arrived[0].name} is waiting to join.` : `${arrived.length} people are waiting to join.`;
  if (isPeopleOpen()) announce(text);
  else showToast(`${text} Open People to let them in.`, 'info');
}

/** @param {WaiterInfo} w */
function makeWaiterRow(w) {
  const row = el('li', 'waiter');
  const pos = el('span', 'queue-pos');
  pos.setAttribute('aria-hidden', 'true');
  const text = el('span', 'person-text');
  text.append(el('span', 'person-name'), el('span', 'person-sub'));
  const actions = el('span', 'waiter-actions');
  const admit = el('button', 'btn btn-small btn-primary waiter-admit');
  const decline = el('button', 'btn btn-small btn-secondary waiter-decline');
  for (const b of [admit, decline]) b.setAttribute('type', 'button');
  admit.addEventListener('click', () => state.conn?.admit(w.id));
  decline.addEventListener('click', () => state.conn?.decline(w.id));
  actions.append(admit, decline);
  row.append(pos, text, actions);
  return row;
}

/** The buttons read "Admit" and "Decline"; their names add whom. @param {HTMLElement} row @param {WaiterInfo} w @param {number} i */
function updateWaiterRow(row, w, i) {
  /** @param {string} sel */
  const part = (sel) => /** @type {HTMLElement} */ (row.querySelector(sel));
  part('.queue-pos').textContent = String(i + 1);
  part('.person-name').textContent = w.name;
  const since = new Date(w.since).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  part('.person-sub').textContent = `${ROLE_LABEL[w.role]} · waiting since ${since}`;
  for (const [sel, verb] of [['.waiter-admit', 'Admit'], ['.waiter-decline', 'Decline']]) {
    part(sel).replaceChildren(verb, el('span', 'visually-hidden', ` ${w.name}`));
  }
}

// ---- wiring -------------------------------------------------------------------------------

export function wirePeople() {
  on('lock-btn', 'click', () => state.conn?.lock(!state.locked));
}

