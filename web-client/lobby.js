// @ts-check
/**
 * The screens before a call: home (no room in the address), the lobby (the room's title, a
 * preview, the name and the devices; called `prejoin` in index.html) and the problem screen
 * (no such room). Joining itself is app.js's: it moves on to the waiting or the call screen.
 *
 * An invite link is `/r/{room}#invite={secret}`. The lobby takes the secret out of the address
 * bar (so it is not shown, shared or bookmarked by accident), keeps it for this tab, and asks
 * the server what it admits as: the role, and maybe a fixed name.
 */
import { checkInvite, fetchRoom } from '/assets/api.js';
import { isUsableName, MAX_NAME_CHARS } from '/assets/protocol.js';
import { describeError, INVITE_ERRORS, ROLE_LABEL } from '/assets/words.js';
import { setMedia, startPreview, stopLocalMedia, switchDevice } from '/assets/media.js';
import { STORE, state } from '/assets/state.js';
import { $, on, plural, setNotice, showScreen } from '/assets/ui.js';

/** @typedef {import('/assets/protocol.js').RoundtableError} RoundtableError */
/** @typedef {import('/assets/protocol.js').Role} Role */
/** @typedef {import('/assets/protocol.js').RoomSummary} RoomSummary */

/** What the lobby says about each role an invite gives. */
const ROLE_TEXT = {
  facilitator: 'You are invited to run this call: you let people in, and can mute or remove them.',
  advocate: 'You are invited to present a tactic.',
  participant: 'You are invited to take part.',
  observer: 'You are invited to watch, listen and chat. Your camera and microphone stay off.',
};

/** Show the lobby of `state.roomId`; settles once the room, the invite and the media are known. */
export async function openLobby() {
  $('name', HTMLInputElement).value = localStorage.getItem(STORE.name) ?? '';
  showScreen('prejoin');
  state.invite = takeInvite();
  const roomLoaded = loadRoom();
  const usable = state.invite ? await loadInvite(state.invite) : true;
  // An observer never publishes: do not even ask for the camera and microphone.
  if (state.role === 'observer') showObserverPreview();
  else state.mediaReady = startPreview();
  await state.mediaReady;
  const room = await roomLoaded;
  if (!room) return stopLocalMedia();
  if (!state.invite && room.open_link === false) {
    refuseInLobby(describeError('invite_required', ''), false);
  } else if (!usable) {
    $('join-open-btn').hidden = room.open_link === false;
  }
}

/**
 * The invite secret: from the address (then removed from it, and kept for this tab), or from
 * an earlier visit of this tab. Null for the open link.
 * @returns {string | null}
 */
function takeInvite() {
  const key = `roundtable.invite.${state.roomId}`;
  const fromHash = new URLSearchParams(location.hash.slice(1)).get('invite');
  if (fromHash) {
    sessionStorage.setItem(key, fromHash);
    history.replaceState(history.state, '', location.pathname + location.search);
    return fromHash;
  }
  return sessionStorage.getItem(key);
}

/** Drop the invite: this tab joins through the open link from now on. */
function forgetInvite() {
  sessionStorage.removeItem(`roundtable.invite.${state.roomId}`);
  state.invite = null;
  state.role = 'participant';
  $('invite-info').hidden = true;
  setFixedName(null);
}

/**
 * Ask what the invite admits as, and say it. False when the invite cannot be used.
 * @param {string} invite
 */
async function loadInvite(invite) {
  try {
    const check = await checkInvite(state.roomId, invite);
    state.role = check.role;
    $('invite-role').textContent = ROLE_LABEL[check.role];
    $('invite-role').dataset.role = check.role;
    $('invite-text').textContent = ROLE_TEXT[check.role];
    $('invite-info').hidden = false;
    setFixedName(check.name);
    return true;
  } catch (e) {
    const err = /** @type {RoundtableError} */ (e);
    if (!INVITE_ERRORS.includes(err.code)) return true; // the join will tell
    refuseInLobby(describeError(err.code, err.message), true);
    return false;
  }
}

/** An invite that fixes the name: show it, and lock the field. @param {string | null} name */
function setFixedName(name) {
  const input = $('name', HTMLInputElement);
  input.readOnly = name !== null;
  if (name !== null) input.value = name;
  $('name-fixed').hidden = name === null;
  if (name !== null) input.setAttribute('aria-describedby', 'name-fixed');
  else input.removeAttribute('aria-describedby');
}

/** A join that cannot work: say why, and take the Join button away. @param {string} text @param {boolean} badInvite */
function refuseInLobby(text, badInvite) {
  setNotice($('join-error'), text);
  $('join-btn').hidden = true;
  $('join-open-btn').hidden = !badInvite;
}

/** What an observer's lobby leaves out: an observer is never recorded either. */
const PUBLISH_CONTROLS = ['pre-mute', 'pre-camera', 'device-fields', 'consent-field'];

/** The observer's lobby: no preview, no device choice. */
function showObserverPreview() {
  for (const id of PUBLISH_CONTROLS) $(id).hidden = true;
  $('preview-off').hidden = false;
  $('preview-off-text').textContent = 'You will watch and listen. Nobody sees or hears you.';
  $('preview-off').querySelector('use')?.setAttribute('href', '#i-eye');
}

/** @returns {Promise<RoomSummary | null>} null when the room does not exist */
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
    return room;
  } catch (e) {
    const err = /** @type {RoundtableError} */ (e);
    if (err.code === 'room_not_found') {
      showNoSuchRoom();
      return null;
    }
    $('room-title').textContent = 'Skill Share';
    setNotice($('join-error'), `Could not load the room details: ${err.message}`);
    return { id: state.roomId, title: '', capacity: 0, participants: 0 };
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
  if (!input.readOnly) localStorage.setItem(STORE.name, name);
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
  showScreen('prejoin');
  const text = describeError(err.code, err.message);
  if (INVITE_ERRORS.includes(err.code)) refuseInLobby(text, true);
  else setNotice($('join-error'), text);
}

// ---- wiring -------------------------------------------------------------------------------

/**
 * The home form and the lobby's media controls; the join form is app.js's.
 * @param {() => void} join joins as the form now says
 */
export function wireLobby(join) {
  on('home-form', 'submit', (e) => {
    e.preventDefault();
    const raw = $('home-room', HTMLInputElement).value.trim();
    const id = raw.includes('/r/') ? raw.split('/r/')[1].split(/[/?#]/)[0] : raw;
    const hash = raw.includes('#') ? raw.slice(raw.indexOf('#')) : '';
    if (id) location.assign(`/r/${encodeURIComponent(id)}${hash}`);
  });
  on('pre-mute', 'click', () => setMedia('audio', !state.audioOn));
  on('pre-camera', 'click', () => setMedia('video', !state.videoOn));
  on('camera-select', 'change', () => switchDevice('video', $('camera-select', HTMLSelectElement).value));
  on('mic-select', 'change', () => switchDevice('audio', $('mic-select', HTMLSelectElement).value));
  on('join-open-btn', 'click', async () => {
    const wasObserver = state.role === 'observer';
    forgetInvite();
    $('join-open-btn').hidden = true;
    $('join-btn').hidden = false;
    setNotice($('join-error'), null);
    if (wasObserver) {
      for (const id of PUBLISH_CONTROLS) $(id).hidden = false;
      $('preview-off').querySelector('use')?.setAttribute('href', '#i-cam-off');
      state.mediaReady = startPreview();
    }
    join();
  });
}
