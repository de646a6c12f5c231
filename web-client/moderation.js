// @ts-check
/**
 * Moderation on the call screen. For facilitators: the menu on each person (lower their hand,
 * give or take back the floor while the agenda runs, mute, stop their camera, remove) and
 * the Remove dialog. For the person moderated: their microphone or camera held off, and a
 * notice that says why. The server checks every action; hiding a control here is only for
 * clarity.
 */
import { floorMenuItems } from '/assets/floor.js';
import { renderToggles, setMedia } from '/assets/media.js';
import { state } from '/assets/state.js';
import { $, el, icon, on, showScreen, showToast } from '/assets/ui.js';

/** @typedef {import('/assets/protocol.js').ParticipantInfo} ParticipantInfo */
/** @typedef {import('/assets/protocol.js').MediaKind} MediaKind */
/** @typedef {{label: string, icon: string, danger?: boolean, run: () => void}} MenuItem */

const menu = {
  /** The button that opened the menu, to give focus back to. @type {HTMLButtonElement | null} */
  button: null,
  /** Whose menu it is. @type {ParticipantInfo | null} */
  person: null,
};

/** Who the Remove dialog is about. @type {ParticipantInfo | null} */
let removing = null;

// ---- the menu on a person -----------------------------------------------------------------

/**
 * Open the menu of `person` under `button`, with focus on its first item.
 * @param {HTMLButtonElement} button @param {ParticipantInfo} person
 */
export function openPersonMenu(button, person) {
  const again = menu.button === button;
  closeMenu(false);
  if (again) return; // a second click closes
  menu.button = button;
  menu.person = person;
  const node = $('person-menu');
  node.setAttribute('aria-label', `Actions for ${person.name}`);
  node.replaceChildren(...menuItems(person).map(menuItem));
  node.hidden = false;
  button.setAttribute('aria-expanded', 'true');
  placeMenu(node, button);
  /** @type {HTMLElement | null} */ (node.querySelector('[role="menuitem"]'))?.focus();
}

/** @param {ParticipantInfo} p @returns {MenuItem[]} */
function menuItems(p) {
  const conn = () => state.conn;
  /** @type {MenuItem[]} */
  const items = [];
  if (state.hands.includes(p.id)) items.push({ label: 'Lower hand', icon: 'i-hand', run: () => conn()?.lowerHand(p.id) });
  items.push(...floorMenuItems(p));
  if (p.role !== 'observer') {
    items.push(p.audio_allowed
      ? { label: 'Mute', icon: 'i-mic-off', run: () => conn()?.moderate(p.id, 'audio', true) }
      : { label: 'Allow microphone', icon: 'i-mic', run: () => conn()?.moderate(p.id, 'audio', false) });
    items.push(p.video_allowed
      ? { label: 'Stop camera', icon: 'i-cam-off', run: () => conn()?.moderate(p.id, 'video', true) }
      : { label: 'Allow camera', icon: 'i-cam', run: () => conn()?.moderate(p.id, 'video', false) });
  }
  items.push({ label: 'Remove', icon: 'i-remove', danger: true, run: () => askRemove(p) });
  return items;
}

/** @param {MenuItem} item */
function menuItem(item) {
  const button = el('button', item.danger ? 'menu-item danger' : 'menu-item');
  button.setAttribute('type', 'button');
  button.setAttribute('role', 'menuitem');
  button.tabIndex = -1;
  button.append(icon(item.icon), el('span', '', item.label));
  button.addEventListener('click', () => {
    const opener = menu.button;
    closeMenu(item.label !== 'Remove');
    item.run();
    if (item.label === 'Remove') removeReturn = opener;
  });
  return button;
}

/** Below the button, or above it when there is no room below; inside the window. @param {HTMLElement} node @param {HTMLElement} button */
function placeMenu(node, button) {
  const r = button.getBoundingClientRect();
  const { offsetWidth: w, offsetHeight: h } = node;
  const left = Math.max(8, Math.min(r.right - w, innerWidth - w - 8));
  const below = r.bottom + 4 + h <= innerHeight - 8;
  node.style.left = `${left}px`;
  node.style.top = `${below ? r.bottom + 4 : Math.max(8, r.top - 4 - h)}px`;
}

/** @param {boolean} [refocus] give focus back to the button that opened it */
function closeMenu(refocus = true) {
  const button = menu.button;
  if (!button) return;
  $('person-menu').hidden = true;
  $('person-menu').replaceChildren();
  button.setAttribute('aria-expanded', 'false');
  menu.button = null;
  menu.person = null;
  if (refocus && button.isConnected) button.focus();
}

/**
 * The list was redrawn: a menu whose person left closes; one whose person changed shows their
 * new state (a Mute that took effect reads Allow microphone).
 * @param {Map<string, ParticipantInfo>} listed
 */
export function menuPersonChanged(listed) {
  const open = menu.person;
  if (open && !listed.has(open.id)) {
    closeMenu(false);
    $('people-heading').focus();
  }
  if (removing && !listed.has(removing.id)) $('remove-dialog', HTMLDialogElement).close();
}

/** Arrow keys move between items; Escape and Tab close and give focus back. @param {KeyboardEvent} e */
function onMenuKey(e) {
  const items = /** @type {HTMLElement[]} */ ([...$('person-menu').querySelectorAll('[role="menuitem"]')]);
  const at = items.indexOf(/** @type {HTMLElement} */ (document.activeElement));
  /** @type {Record<string, number>} */
  const moves = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: items.length - 1 };
  if (e.key in moves) {
    e.preventDefault();
    items[(moves[e.key] + items.length) % items.length]?.focus();
  } else if (e.key === 'Escape' || e.key === 'Tab') {
    e.preventDefault();
    closeMenu();
  }
}

// ---- removing -----------------------------------------------------------------------------

/** Where focus goes once the Remove dialog closes. @type {HTMLButtonElement | null} */
let removeReturn = null;

/** @param {ParticipantInfo} p */
function askRemove(p) {
  removing = p;
  $('remove-title').textContent = `Remove ${p.name}?`;
  $('remove-text').textContent = `${p.name} leaves the call at once.`;
  $('remove-bar', HTMLInputElement).checked = false;
  $('remove-dialog', HTMLDialogElement).showModal();
  $('remove-cancel').focus();
}

function onRemoveClosed() {
  removing = null;
  const back = removeReturn;
  removeReturn = null;
  if (back?.isConnected) back.focus();
  else if (!$('people').hidden) $('people-heading').focus();
}

/** A facilitator removed us from the call. @param {{barred: boolean}} m */
export function showRemoved({ barred }) {
  $('removed-title').textContent = 'You were removed from the call';
  const from = state.roomTitle ? ` “${state.roomTitle}”` : ' the call';
  $('removed-text').textContent = `A facilitator removed you from${from}.${barred ? ' The link you joined with no longer works.' : ''}`;
  document.title = 'Removed · Roundtable';
  showScreen('removed');
  $('removed-title').focus();
}

// ---- our own microphone and camera --------------------------------------------------------

/** Who moderated us, in the notice: the admin token acts as `admin`. */
let moderator = 'A facilitator';

/**
 * A facilitator stopped or allowed our audio or video. Stopped: the track goes off and its
 * button is disabled. Allowed: the button works again, but the person turns it on.
 * @param {{kind: MediaKind, allowed: boolean, by: string}} m
 */
export function onModerated({ kind, allowed, by }) {
  moderator = by === 'admin' ? 'The room’s administrator' : 'A facilitator';
  if (kind === 'audio') state.audioAllowed = allowed;
  else state.videoAllowed = allowed;
  if (!allowed) setMedia(kind, false);
  renderToggles();
  renderOwnModeration();
  if (allowed) {
    showToast(kind === 'audio'
      ? `${moderator} allowed your microphone again. Unmute when you are ready to speak.`
      : `${moderator} allowed your camera again. Turn it on when you are ready.`, 'info');
  }
}

/** The notice above the grid, while a facilitator holds our microphone or camera off. */
export function renderOwnModeration() {
  const { audioAllowed: a, videoAllowed: v } = state;
  const who = moderator;
  const text = !a && !v ? `${who} muted you and stopped your camera. Raise your hand to ask to speak.`
    : !a ? `${who} muted you. Raise your hand to ask to speak.`
      : !v ? `${who} stopped your camera. Raise your hand to ask to turn it back on.` : '';
  const notice = $('moderation-notice');
  notice.hidden = !text;
  notice.replaceChildren(...(text ? [icon(!a ? 'i-mic-off' : 'i-cam-off'), el('span', '', text)] : []));
}

/** Everything back to normal for the next call. */
export function resetModeration() {
  moderator = 'A facilitator';
  state.audioAllowed = true;
  state.videoAllowed = true;
  closeMenu(false);
  const dialog = $('remove-dialog', HTMLDialogElement);
  if (dialog.open) dialog.close();
  renderOwnModeration();
}

// ---- wiring -------------------------------------------------------------------------------

export function wireModeration() {
  $('person-menu').addEventListener('keydown', onMenuKey);
  // A press anywhere else closes the menu; the opener's own click toggles it.
  document.addEventListener('pointerdown', (e) => {
    const target = /** @type {Node} */ (e.target);
    if (menu.button && !$('person-menu').contains(target) && !menu.button.contains(target)) closeMenu(false);
  });
  // A resize or a scroll moves the menu with its button. A scroll that takes the button out
  // of sight closes it. (Closing on any scroll lost the menu to the scroll that brings a row
  // into view as it is clicked.)
  window.addEventListener('resize', () => {
    if (menu.button) placeMenu($('person-menu'), menu.button);
  });
  document.addEventListener('scroll', (e) => {
    const target = /** @type {Node} */ (e.target);
    if (!menu.button || $('person-menu').contains(target)) return;
    const area = target instanceof Element
      ? target.getBoundingClientRect()
      : { top: 0, bottom: window.innerHeight };
    const at = menu.button.getBoundingClientRect();
    if (at.bottom <= area.top || at.top >= area.bottom) closeMenu(false);
    else placeMenu($('person-menu'), menu.button);
  }, true);
  on('remove-form', 'submit', (e) => {
    e.preventDefault();
    if (removing) state.conn?.remove(removing.id, $('remove-bar', HTMLInputElement).checked);
    $('remove-dialog', HTMLDialogElement).close();
  });
  on('remove-cancel', 'click', () => $('remove-dialog', HTMLDialogElement).close());
  on('remove-dialog', 'close', onRemoveClosed);
}
