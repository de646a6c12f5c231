// @ts-check
/**
 * The screens before a call: home (no room in the address), the lobby (the room's title, a
 * preview, the name and the devices; called `prejoin` in index.html) and the problem screen
 * (no such room). Joining itself is app.js's: it moves on to the call screen.
 */
import { fetchRoom, isUsableName, MAX_NAME_CHARS } from '/assets/protocol.js';
import { setMedia, startPreview, stopLocalMedia, switchDevice } from '/assets/media.js';
import { STORE, state } from '/assets/state.js';
import { $, on, plural, setNotice, showScreen } from '/assets/ui.js';

/** @typedef {import('/assets/protocol.js').RoundtableError} RoundtableError */

/** Show the lobby of `state.roomId`; settles once the room and the media are known. */
export async function openLobby() {
  $('name', HTMLInputElement).value = localStorage.getItem(STORE.name) ?? '';
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

// ---- joining ------------------------------------------------------------------------------

/** The name typed in, remembered for the next visit; null, with a notice, when it cannot be used. @returns {string | null} */
export function readName() {
  const input = $('name', HTMLInputElement);
  const name = input.value.trim();
  if (!isUsableName(name)) {
    setJoinBusy(false);
    input.focus();
    setNotice($('join-error'), `Please enter your name (up to ${MAX_NAME_CHARS} characters, no control characters).`);
    return null;
  }
  localStorage.setItem(STORE.name, name);
  setNotice($('join-error'), null);
  return name;
}

/** @param {boolean} busy */
export function setJoinBusy(busy) {
  const button = $('join-btn', HTMLButtonElement);
  button.disabled = busy;
  button.textContent = busy ? 'Joining…' : 'Join';
}

/** @param {RoundtableError} err */
export function onJoinFailed(err) {
  state.conn = null;
  setJoinBusy(false);
  if (err.code === 'room_not_found') {
    stopLocalMedia();
    return showNoSuchRoom();
  }
  /** @type {Record<string, string>} */
  const texts = {
    room_full: `This room is full${state.capacity ? `: it holds ${plural(state.capacity, 'person', 'people')}` : ''}. Try again when someone leaves.`,
    bad_name: `That name can't be used. Please use 1 to ${MAX_NAME_CHARS} characters, with no control characters.`,
    unsupported_version: 'This page is out of date. Reload it to join.',
  };
  showScreen('prejoin');
  setNotice($('join-error'), texts[err.code] ?? err.message);
}

// ---- wiring -------------------------------------------------------------------------------

/** The home form and the lobby's media controls; the join form is app.js's. */
export function wireLobby() {
  on('home-form', 'submit', (e) => {
    e.preventDefault();
    const raw = $('home-room', HTMLInputElement).value.trim();
    const id = raw.includes('/r/') ? raw.split('/r/')[1].split(/[/?#]/)[0] : raw;
    if (id) location.assign(`/r/${encodeURIComponent(id)}`);
  });
  on('pre-mute', 'click', () => setMedia('audio', !state.audioOn));
  on('pre-camera', 'click', () => setMedia('video', !state.videoOn));
  on('camera-select', 'change', () => switchDevice('video', $('camera-select', HTMLSelectElement).value));
  on('mic-select', 'change', () => switchDevice('audio', $('mic-select', HTMLSelectElement).value));
}
