// @ts-check
/**
 * Roundtable web client, the entry point: picks the first screen from the address, and moves
 * between screens as the person joins, leaves and rejoins and as {@link RoomConnection} events come.
 * All wire-protocol and peer-connection work lives in protocol.js, the HTTP API in api.js,
 * asking for the camera and microphone in devices.js.
 *
 * One module per screen: lobby.js (home, the lobby and the problem screen), waiting.js (the
 * waiting room), call.js (the call, with agenda.js, chat.js and people.js for its side panels
 * and moderation.js for a facilitator's actions and their effect on the person moderated; it
 * also draws the "removed" screen), and the "left" screen here. recording.js has the Record
 * me switch (lobby and call), the recording banner and a facilitator's Start recording. agenda.js has the agenda
 * editor (agenda-editor.js), its countdown (countdown.js) and floor.js, which says who may
 * speak and why we may not. media.js holds the camera and microphone, clock.js the server's
 * clock, state.js what the screens share, words.js what the page says about roles, segments
 * and error codes, ui.js the DOM helpers.
 *
 * A new screen gets its markup in index.html
 * as a `.screen` element, its id in SCREENS (ui.js), a module of its own that exports what
 * shows it and a `wire…()` for its controls, and its routes below: the connection events it
 * shows in `connHandlers`, its `wire…()` call in `wire()`. Every module must also be listed in
 * ASSETS in server/src/http.rs, or the server will not serve it.
 */
import { RoomConnection } from '/assets/protocol.js';
import {
  addPerson, enterCall, nameOf, onConnectionLost, removePerson, renderHands, renderLock, renderRecorded, renderSelf, renderStatus,
  resetCall, showRemoteMedia, updatePerson, wireCall,
} from '/assets/call.js';
import { agendaRefused, renderAgenda, showAgenda, wireAgenda } from '/assets/agenda.js';
import { appendChat, chatRefused, wireChat } from '/assets/chat.js';
import { tick as redrawCountdown } from '/assets/countdown.js';
import { onJoinFailed, openLobby, readName, setJoinBusy, wireLobby } from '/assets/lobby.js';
import { startPreview, stopLocalMedia } from '/assets/media.js';
import { onModerated, showRemoved, wireModeration } from '/assets/moderation.js';
import { renderQueue, wirePeople } from '/assets/people.js';
import { lobbyConsent, recordingRefused, showRecording, wireRecording } from '/assets/recording.js';
import { state } from '/assets/state.js';
import { $, announce, on, showScreen, showToast } from '/assets/ui.js';
import { showDeclined, showWaiting } from '/assets/waiting.js';
import { describeError } from '/assets/words.js';

/** @typedef {import('/assets/protocol.js').RoomEvents} RoomEvents */

async function boot() {
  const match = location.pathname.match(/^\/r\/([^/]+)\/?$/);
  if (!match) return showScreen('home');
  state.roomId = decodeURIComponent(match[1]);
  await openLobby();
}

// ---- joining and leaving ------------------------------------------------------------------

async function join() {
  const name = readName();
  if (name === null) return;
  setJoinBusy(true);
  await state.mediaReady; // a click during the permission prompt joins with the media that follows
  state.consent = lobbyConsent();
  const conn = new RoomConnection({ roomId: state.roomId, name, invite: state.invite, consent: state.consent, stream: state.stream });
  state.conn = conn;
  for (const [type, handler] of Object.entries(connHandlers)) {
    conn.addEventListener(type, (e) => {
      if (conn === state.conn) handler(/** @type {CustomEvent} */ (e).detail);
    });
  }
  conn.connect();
}

/**
 * One handler per {@link RoomConnection} event that a screen shows; the screens learn of
 * published tracks through `media`.
 * @type {{[K in Exclude<keyof RoomEvents, 'track-published' | 'track-unpublished'>]: (detail: RoomEvents[K]) => void}}
 */
const connHandlers = {
  joined: (msg) => {
    setJoinBusy(false);
    enterCall(msg);
  },
  waiting: ({ position }) => {
    setJoinBusy(false);
    showWaiting(position);
  },
  declined: () => {
    endConnection();
    showDeclined();
  },
  removed: (m) => {
    endConnection();
    showRemoved(m);
  },
  'join-failed': onJoinFailed,
  status: renderStatus,
  'participant-joined': addPerson,
  'participant-updated': updatePerson,
  'participant-left': ({ id, reason }) => {
    const name = nameOf(id);
    removePerson(id);
    if (reason === 'removed' && name) announce(`${name} was removed from the call.`);
  },
  media: showRemoteMedia,
  chat: appendChat,
  queue: (waiting) => {
    const before = state.waiting;
    state.waiting = waiting;
    renderQueue(before);
  },
  hands: (queue) => {
    const raised = queue.filter((id) => !state.hands.includes(id) && id !== state.you);
    state.hands = queue;
    renderHands();
    renderAgenda();
    // Facilitators see it come up; for the others it is news, not a call to act.
    for (const id of raised) {
      const text = `${nameOf(id) ?? 'Someone'} raised their hand.`;
      if (state.role === 'facilitator') showToast(text, 'info');
      else announce(text);
    }
  },
  'room-locked': ({ locked, by }) => {
    state.locked = locked;
    renderLock();
    const who = by === state.you ? 'You' : nameOf(by) ?? 'A facilitator';
    const text = locked ? `${who} locked the room: nobody new can join.` : `${who} unlocked the room.`;
    if (by === state.you) announce(text);
    else showToast(text, 'info');
  },
  moderated: (m) => {
    onModerated(m);
    renderSelf();
    renderAgenda();
  },
  agenda: ({ agenda, event }) => {
    showAgenda(agenda, event);
    renderSelf(); // the people list marks who has the floor
  },
  clock: redrawCountdown,
  recording: (view) => {
    showRecording(view);
    renderRecorded();
  },
  'server-error': ({ code, message }) => {
    chatRefused(code);
    recordingRefused(code);
    if (agendaRefused(code)) return;
    showToast(describeError(code, message || `Server error: ${code}`, true));
  },
  closed: onConnectionLost,
};

/** The server ended our place in the room: let the camera and microphone go. */
function endConnection() {
  state.conn = null;
  stopLocalMedia();
  resetCall();
}

/** The "left" screen: the call (or the line to join it) is over until the person rejoins. */
function leave() {
  const waited = !$('waiting').hidden;
  state.conn?.leave();
  state.conn = null;
  stopLocalMedia();
  resetCall();
  const title = state.roomTitle ? `“${state.roomTitle}”` : 'the call';
  $('left-title').textContent = waited ? 'You left the line' : 'You left the call';
  $('left-text').textContent = waited ? `You are no longer waiting to join ${title}.`
    : state.roomTitle ? `You left “${state.roomTitle}”. See you next time!` : 'See you next time!';
  showScreen('left');
  $('rejoin-btn').focus();
}

async function rejoin() {
  state.conn?.leave();
  state.conn = null;
  resetCall();
  showScreen('prejoin');
  setJoinBusy(true);
  const live = state.stream.getTracks().some((t) => t.readyState === 'live');
  if (!live && state.role !== 'observer') state.mediaReady = startPreview();
  join();
}

// ---- wiring -------------------------------------------------------------------------------

function wire() {
  wireLobby(join);
  wireCall();
  wireChat();
  wirePeople();
  wireModeration();
  wireAgenda();
  wireRecording();
  on('join-form', 'submit', (e) => {
    e.preventDefault();
    join();
  });
  on('leave-btn', 'click', leave);
  on('waiting-leave', 'click', leave);
  on('rejoin-btn', 'click', rejoin);
  on('banner-rejoin', 'click', rejoin);
  window.addEventListener('pagehide', () => state.conn?.leave());
}

wire();
boot();
