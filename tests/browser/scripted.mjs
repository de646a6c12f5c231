// A scripted server for the web client's screen tests: Playwright answers the page's HTTP
// requests from web-client/ and plays the server's side of the WebSocket. No Roundtable
// binary is needed, so a test checks what the page shows and sends, and how it reacts to
// each message; that the server does the same is the real-server tests' to show.
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SHOTS as DEFAULT_SHOTS } from './harness.mjs';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const WEB = path.join(REPO, 'web-client');
export const SHOTS = process.env.SHOTS ?? DEFAULT_SHOTS;
/** Nothing listens here: every request is answered by the routes below. localhost is a secure context. */
export const BASE = 'http://localhost:5999';
export const WAIT = 15_000;
export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };
const TYPES = { '.js': 'text/javascript', '.css': 'text/css', '.html': 'text/html' };

export const ROOM = { id: 'skill', title: 'Skill Share: tenant organising', capacity: 6 };
export const person = (id, name, role, extra = {}) => ({
  id, name, role, audio: true, video: true, audio_allowed: true, video_allowed: true, ...extra,
});

/** Invite secrets the fake server knows, and what `invite-check` answers for each. */
export const INVITES = {
  fixed: { status: 200, body: { role: 'advocate', name: 'Ada Lovelace', expires_at: null } },
  observer: { status: 200, body: { role: 'observer', name: null, expires_at: null } },
  facilitator: { status: 200, body: { role: 'facilitator', name: null, expires_at: null } },
  expired: { status: 410, body: { error: { code: 'invite_expired', message: 'invite expired' } } },
};

/**
 * A page of `context` at `urlPath`, its server played by `onJoin(join, server)`:
 * `server.send(msg)` sends a message, `server.sent` holds what the page sent (pings left
 * out; they get a `pong` with the time, as the server's do).
 */
export async function openPage(context, urlPath, onJoin, viewport = DESKTOP) {
  const page = await context.newPage();
  await page.setViewportSize(viewport);
  page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
  await page.addInitScript(() => {
    window.__pcs = 0;
    const Native = window.RTCPeerConnection;
    window.RTCPeerConnection = class extends Native {
      constructor(...args) {
        super(...args);
        window.__pcs += 1;
      }
    };
    window.__gumCalls = 0;
    const gum = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
    navigator.mediaDevices.getUserMedia = (c) => {
      window.__gumCalls += 1;
      return gum(c);
    };
  });
  await page.route(`${BASE}/**`, (route) => serve(route));
  const server = {
    sent: [],
    /** Called after each message the page sends. @type {Set<() => void>} */
    listeners: new Set(),
    ws: null,
    send: (m) => server.ws.send(JSON.stringify(m)),
  };
  await page.routeWebSocket(`${BASE.replace('http', 'ws')}/ws`, (ws) => {
    server.ws = ws;
    ws.onMessage((text) => {
      const msg = JSON.parse(String(text));
      if (msg.type === 'ping') return ws.send(JSON.stringify({ type: 'pong', id: msg.id, time: Date.now() }));
      server.sent.push(msg);
      if (msg.type === 'join') onJoin(msg, server);
      for (const listener of server.listeners) listener();
    });
  });
  await page.goto(BASE + urlPath);
  return { page, server };
}

/** The web client's files, the room API and the invite check. */
function serve(route) {
  const url = new URL(route.request().url());
  const json = (status, body) => route.fulfill({ status, contentType: 'application/json', body: JSON.stringify(body) });
  if (url.pathname === `/api/rooms/${ROOM.id}`) return json(200, { ...ROOM, participants: 4, open_link: true });
  if (url.pathname === `/api/rooms/${ROOM.id}/invite-check`) {
    const { invite } = JSON.parse(route.request().postData() ?? '{}');
    const answer = INVITES[invite] ?? { status: 400, body: { error: { code: 'invite_invalid', message: 'no such invite' } } };
    return json(answer.status, answer.body);
  }
  if (url.pathname.startsWith('/assets/')) {
    const file = path.join(WEB, path.basename(url.pathname));
    return route.fulfill({ body: readFileSync(file), contentType: TYPES[path.extname(file)] });
  }
  if (url.pathname.startsWith('/r/') || url.pathname === '/') {
    return route.fulfill({ body: readFileSync(path.join(WEB, 'index.html')), contentType: 'text/html' });
  }
  return route.fulfill({ status: 404, body: 'not found' });
}

/** `joined`, as the server would send it to `you` (the first of `participants`). */
export function joined(role, participants, extra = {}) {
  return {
    type: 'joined', v: 1, you: participants[0].id, role, room: ROOM, participants, tracks: [], chat: [],
    ice_servers: [], hands: [], locked: false, waiting: [], ...extra,
  };
}

/** A screenshot of the page at desktop and at phone size, into $SHOTS. */
export async function shoot(page, name) {
  mkdirSync(SHOTS, { recursive: true });
  const size = page.viewportSize();
  await page.setViewportSize(DESKTOP);
  await page.screenshot({ path: path.join(SHOTS, `${name}-desktop.png`) });
  await page.setViewportSize(PHONE);
  await page.screenshot({ path: path.join(SHOTS, `${name}-phone.png`) });
  await page.setViewportSize(size);
}

/** Resolve once the page sent a message matching `pred` (at once if it already has). */
export async function sent(page, server, pred, what) {
  return new Promise((resolve, reject) => {
    const check = () => {
      const m = server.sent.find(pred);
      if (!m) return;
      server.listeners.delete(check);
      clearTimeout(timer);
      resolve(m);
    };
    const timer = setTimeout(() => {
      server.listeners.delete(check);
      reject(new Error(`the page did not send ${what}; it sent ${JSON.stringify(server.sent.map((m) => m.type))}`));
    }, WAIT);
    server.listeners.add(check);
    check();
  });
}
