// @ts-check
/**
 * Roundtable web client, the entry point: picks the first screen from the address, and moves
 * between screens as the person joins, leaves and rejoins and as {@link RoomConnection} events come.
 * All wire-protocol and peer-connection work lives in protocol.js.
 *
 * One module per screen: lobby.js (home, the lobby and the problem screen), call.js (the call,
 * with chat.js for its chat panel), and the "left" screen here. media.js holds the camera and
 * microphone, state.js what the screens share, ui.js the DOM helpers.
 *
 * A new screen (the agenda, moderation and consent ones to come) gets its markup in index.html
 * as a `.screen` element, its id in SCREENS (ui.js), a module of its own that exports what
 * shows it and a `wire…()` for its controls, and its routes below: the connection events it
 * shows in `connHandlers`, its `wire…()` call in `wire()`. Every module must also be listed in
 * ASSETS in server/src/http.rs, or the server will not serve it.
 */
import { RoomConnection } from '/assets/protocol.js';
import {
  addPerson, enterCall, onConnectionLost, removePerson, renderStatus, resetCall, showRemoteMedia, updatePerson, wireCall,
} from '/assets/call.js';
import { appendChat, chatRefused, wireChat } from '/assets/chat.js';
import { onJoinFailed, openLobby, readName, setJoinBusy, wireLobby } from '/assets/lobby.js';
import { startPreview, stopLocalMedia } from '/assets/media.js';
import { state } from '/assets/state.js';
import { $, on, showScreen, showToast } from '/assets/ui.js';

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
  const conn = new RoomConnection({ roomId: state.roomId, name, stream: state.stream });
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
  'join-failed': onJoinFailed,
  status: renderStatus,
  'participant-joined': addPerson,
  'participant-updated': updatePerson,
  'participant-left': ({ id }) => removePerson(id),
  media: showRemoteMedia,
  chat: appendChat,
  'server-error': ({ code, message }) => {
    chatRefused(code);
    showToast(message || `Server error: ${code}`);
  },
  closed: onConnectionLost,
};

/** The "left" screen: the call is over until the person rejoins. */
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

// ---- wiring -------------------------------------------------------------------------------

function wire() {
  wireLobby();
  wireCall();
  wireChat();
  on('join-form', 'submit', (e) => {
    e.preventDefault();
    join();
  });
  on('leave-btn', 'click', leave);
  on('rejoin-btn', 'click', rejoin);
  on('banner-rejoin', 'click', rejoin);
  window.addEventListener('pagehide', () => state.conn?.leave());
}

wire();
boot();
