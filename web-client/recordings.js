// @ts-check
/**
 * The admin page (`/admin`): recording sessions, their files and consent ledger; play,
 * download, delete, purge a speaker, rebuild the mixdown. Everything goes through the
 * admin API with the admin token, which is kept in `sessionStorage` only (this tab, until
 * it closes). A media element cannot send the token, so playing and downloading use signed
 * links that the API mints for one file: the token never goes into a URL.
 */
import { $, el } from '/assets/ui.js';

const TOKEN_KEY = 'roundtable.adminToken';

/**
 * @typedef {{ files: number, bytes: number, speakers: number }} Totals
 * @typedef {{ id: string, room: string, started_at: number, ended_at: number | null,
 *   presentation_only: boolean, cut_off: boolean, totals: Totals }} Session
 * @typedef {{ id: string, kind: 'audio' | 'video' | 'mixdown' | 'chapters',
 *   speaker: string | null, speaker_name: string | null, track: string | null,
 *   duration_ms: number | null, size: number, content_type: string, file_name: string }} FileEntry
 * @typedef {{ participant: string, name: string, invite: string | null, granted: boolean,
 *   ts: number, session: string | null }} LedgerEntry
 * @typedef {{ session: Session, files: FileEntry[], ledger: LedgerEntry[] }} Detail
 * @typedef {{ url: string, download_url: string, expires_at: number }} Link
 */

/** A refusal from the API, with its stable code. */
class ApiError extends Error {
  /** @param {string} code @param {string} message @param {number} status */
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

/** @type {Detail | null} the session on show */
let shown = null;

/**
 * One admin API call with the token; a refusal throws an {@link ApiError}.
 * @param {string} method @param {string} path @param {unknown} [body]
 * @returns {Promise<any>}
 */
async function api(method, path, body) {
  /** @type {Record<string, string>} */
  const headers = { accept: 'application/json', authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) ?? ''}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError('network', 'Could not reach the server.', 0);
  }
  const reply = await res.json().catch(() => null);
  if (res.ok) return reply;
  throw new ApiError(reply?.error?.code ?? 'http_error', reply?.error?.message ?? `The server answered ${res.status}.`, res.status);
}

/** @param {string} text */
function say(text) {
  $('status').textContent = text;
}

/** @param {unknown} e */
function fail(e) {
  if (e instanceof ApiError && e.status === 401) {
    signOut('The admin token was refused. Sign in again.');
    return;
  }
  const box = $('error');
  box.textContent = e instanceof Error ? e.message : String(e);
  box.hidden = false;
}

function clearError() {
  $('error').hidden = true;
}

/** @param {string} [why] */
function signOut(why) {
  sessionStorage.removeItem(TOKEN_KEY);
  stopPlayer();
  shown = null;
  $('sessions-panel').hidden = true;
  $('detail').hidden = true;
  $('sign-out').hidden = true;
  $('signin').hidden = false;
  const box = $('error');
  box.hidden = !why;
  box.textContent = why ?? '';
  $('token', HTMLInputElement).focus();
}

// ---- formatting ---------------------------------------------------------------------------

/** @param {number} ms */
const when = (ms) => new Date(ms).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/** @param {number | null} ms */
function length(ms) {
  if (ms === null) return '—';
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** @param {number} bytes */
function size(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** @param {FileEntry} f */
function fileLabel(f) {
  switch (f.kind) {
    case 'audio': return `Audio ${f.track ?? ''}`.trim();
    case 'video': return `Video ${f.track ?? ''}`.trim();
    case 'mixdown': return 'Mixdown';
    default: return f.content_type.startsWith('text/vtt') ? 'Chapters (WebVTT)' : 'Chapters (JSON)';
  }
}

/** @param {FileEntry} f */
function speakerOf(f) {
  if (f.speaker) return `${f.speaker_name ?? 'Unknown'} (${f.speaker})`;
  return f.kind === 'mixdown' ? 'Everyone recorded' : 'The session';
}

/** @param {Session} s */
function sessionState(s) {
  if (s.ended_at === null) return 'recording now';
  const parts = [`${length(s.ended_at - s.started_at)} long`];
  if (s.cut_off) parts.push('cut off by a crash');
  if (s.presentation_only) parts.push('presentations only');
  return parts.join(' · ');
}

// ---- sessions -----------------------------------------------------------------------------

async function loadSessions() {
  const room = $('room-filter', HTMLInputElement).value.trim();
  const query = room ? `?room=${encodeURIComponent(room)}` : '';
  /** @type {{ sessions: Session[] }} */
  const { sessions } = await api('GET', `/api/admin/recordings${query}`);
  const list = $('sessions');
  list.replaceChildren(...sessions.map(sessionItem));
  $('sessions-empty').hidden = sessions.length > 0;
  say(`${sessions.length} recording session${sessions.length === 1 ? '' : 's'}.`);
}

/** @param {Session} s */
function sessionItem(s) {
  const item = el('li', 'admin-item');
  const text = el('div', 'admin-item-text');
  text.append(
    el('strong', '', when(s.started_at)),
    el('span', 'muted', `Room ${s.room} · ${sessionState(s)}`),
    el('span', 'muted', `${s.totals.speakers} speaker${s.totals.speakers === 1 ? '' : 's'} · ${s.totals.files} file${s.totals.files === 1 ? '' : 's'} · ${size(s.totals.bytes)}`),
  );
  const open = el('button', 'btn btn-secondary btn-small', 'Open');
  open.setAttribute('type', 'button');
  open.setAttribute('aria-label', `Open the session of ${when(s.started_at)} in room ${s.room}`);
  open.addEventListener('click', () => openSession(s.id).catch(fail));
  item.append(text, open);
  return item;
}

// ---- one session --------------------------------------------------------------------------

/** @param {string} id */
async function openSession(id) {
  clearError();
  stopPlayer();
  /** @type {Detail} */
  const detail = await api('GET', `/api/admin/recordings/${encodeURIComponent(id)}`);
  shown = detail;
  const s = detail.session;
  $('detail-title').textContent = `Session of ${when(s.started_at)}`;
  $('detail-meta').textContent = `Room ${s.room} · ${sessionState(s)} · ${size(s.totals.bytes)}`;
  const running = s.ended_at === null;
  $('rebuild', HTMLButtonElement).disabled = running;
  $('delete-session', HTMLButtonElement).disabled = running;

  const rows = $('files').querySelector('tbody');
  rows?.replaceChildren(...detail.files.map(fileRow));
  $('files-empty').hidden = detail.files.length > 0;

  /** @type {Map<string, { name: string, files: number }>} */
  const speakers = new Map();
  for (const f of detail.files) {
    if (!f.speaker) continue;
    const known = speakers.get(f.speaker) ?? { name: f.speaker_name ?? 'Unknown', files: 0 };
    known.files += 1;
    speakers.set(f.speaker, known);
  }
  $('speakers').replaceChildren(...[...speakers].map(([id, who]) => speakerItem(id, who.name, who.files, running)));
  $('speakers-empty').hidden = speakers.size > 0;

  const ledger = $('ledger').querySelector('tbody');
  ledger?.replaceChildren(...detail.ledger.map(ledgerRow));
  $('ledger-empty').hidden = detail.ledger.length > 0;

  $('detail').hidden = false;
  $('detail-title').focus();
  say(`Session of ${when(s.started_at)}: ${detail.files.length} files.`);
}

/** @param {FileEntry} f */
function fileRow(f) {
  const row = el('tr');
  const label = `${fileLabel(f)} of ${speakerOf(f)}`;
  const cell = el('td');
  const actions = el('div', 'admin-row-actions');
  cell.append(actions);
  if (f.kind !== 'chapters') {
    const play = el('button', 'btn btn-secondary btn-small', 'Play');
    play.setAttribute('type', 'button');
    play.setAttribute('aria-label', `Play ${label}`);
    play.addEventListener('click', () => playFile(f, label).catch(fail));
    actions.append(play);
  }
  const save = el('button', 'btn btn-secondary btn-small', 'Download');
  save.setAttribute('type', 'button');
  save.setAttribute('aria-label', `Download ${label}`);
  save.addEventListener('click', () => download(f).catch(fail));
  actions.append(save);
  row.append(
    el('td', '', fileLabel(f)),
    el('td', '', speakerOf(f)),
    el('td', '', length(f.duration_ms)),
    el('td', '', size(f.size)),
    cell,
  );
  return row;
}

/** @param {string} id @param {string} name @param {number} files @param {boolean} running */
function speakerItem(id, name, files, running) {
  const item = el('li', 'admin-item');
  const text = el('div', 'admin-item-text');
  text.append(el('strong', '', name), el('span', 'muted', `${id} · ${files} file${files === 1 ? '' : 's'}`));
  const purge = el('button', 'btn btn-quiet-danger btn-small', 'Purge');
  purge.setAttribute('type', 'button');
  purge.setAttribute('aria-label', `Purge ${name} (${id}) from this session`);
  /** @type {HTMLButtonElement} */ (purge).disabled = running;
  purge.addEventListener('click', () => purgeSpeaker(id, name).catch(fail));
  item.append(text, purge);
  return item;
}

/** @param {LedgerEntry} e */
function ledgerRow(e) {
  const row = el('tr');
  const note = e.session ? '' : ' (before the session)';
  row.append(
    el('td', '', when(e.ts)),
    el('td', '', `${e.name} (${e.participant})`),
    el('td', e.granted ? 'admin-granted' : 'admin-withdrawn', `${e.granted ? 'Granted' : 'Withdrawn'}${note}`),
  );
  return row;
}

/**
 * A signed link to one file of the session on show.
 * @param {FileEntry} f @returns {Promise<Link>}
 */
function link(f) {
  const id = shown?.session.id ?? '';
  return api('POST', `/api/admin/recordings/${encodeURIComponent(id)}/links`, { file: f.id });
}

/** @param {FileEntry} f @param {string} label */
async function playFile(f, label) {
  const { url } = await link(f);
  stopPlayer();
  const video = f.kind === 'video';
  const player = video ? $('video-player', HTMLVideoElement) : $('audio-player', HTMLAudioElement);
  player.setAttribute('aria-label', `Player: ${label}`);
  player.src = url;
  player.hidden = false;
  $('player-label').textContent = `Playing ${label}`;
  $('player-box').hidden = false;
  await player.play().catch(() => say('Press play to listen.'));
}

function stopPlayer() {
  for (const id of ['audio-player', 'video-player']) {
    const player = $(id, HTMLMediaElement);
    player.pause();
    player.removeAttribute('src');
    player.load();
    player.hidden = true;
  }
  $('player-box').hidden = true;
}

/** @param {FileEntry} f */
async function download(f) {
  const { download_url } = await link(f);
  const a = el('a');
  a.setAttribute('href', download_url);
  a.setAttribute('download', f.file_name);
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  say(`Downloading ${f.file_name}.`);
}

/**
 * Ask before something that cannot be undone.
 * @param {string} title @param {string} text @param {string} action the button's words
 * @returns {Promise<boolean>}
 */
function confirmed(title, text, action) {
  const dialog = $('confirm', HTMLDialogElement);
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = action;
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
  });
}

async function deleteSession() {
  if (!shown) return;
  const s = shown.session;
  const sure = await confirmed(
    'Delete this session?',
    `Every file of the session of ${when(s.started_at)} is deleted for good. The consent ledger stays.`,
    'Delete session',
  );
  if (!sure) return;
  await api('DELETE', `/api/admin/recordings/${encodeURIComponent(s.id)}`);
  stopPlayer();
  shown = null;
  $('detail').hidden = true;
  await loadSessions();
  say('The session was deleted.');
}

/** @param {string} id @param {string} name */
async function purgeSpeaker(id, name) {
  if (!shown) return;
  const session = shown.session.id;
  const sure = await confirmed(
    `Purge ${name}?`,
    `${name}'s files in this session are deleted, the mixdown is rebuilt without them, and their withdrawal is recorded.`,
    `Purge ${name}`,
  );
  if (!sure) return;
  await api('DELETE', `/api/admin/recordings/${encodeURIComponent(session)}/speakers/${encodeURIComponent(id)}`);
  await openSession(session);
  await loadSessions();
  say(`${name} was purged from the session.`);
}

async function rebuild() {
  if (!shown) return;
  const session = shown.session.id;
  await api('POST', `/api/admin/recordings/${encodeURIComponent(session)}/mixdown`);
  await openSession(session);
  say('The mixdown was rebuilt.');
}

// ---- start --------------------------------------------------------------------------------

async function signedIn() {
  $('signin').hidden = true;
  $('sign-out').hidden = false;
  $('sessions-panel').hidden = false;
  await loadSessions();
}

$('signin-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = $('token', HTMLInputElement);
  sessionStorage.setItem(TOKEN_KEY, input.value.trim());
  input.value = '';
  clearError();
  signedIn().catch(fail);
});
$('filter-form').addEventListener('submit', (e) => {
  e.preventDefault();
  clearError();
  loadSessions().catch(fail);
});
$('sign-out').addEventListener('click', () => signOut());
$('delete-session').addEventListener('click', () => deleteSession().catch(fail));
$('rebuild').addEventListener('click', () => rebuild().catch(fail));

if (sessionStorage.getItem(TOKEN_KEY)) signedIn().catch(fail);
