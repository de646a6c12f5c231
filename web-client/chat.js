// @ts-check
/**
 * The chat panel of the call screen: the log, the message form and the unread badge.
 * Opening or closing the panel resizes the grid; the caller lays the tiles out again.
 */
import { MAX_CHAT_CHARS } from '/assets/protocol.js';
import { state } from '/assets/state.js';
import { $, el, on, showToast } from '/assets/ui.js';

/** @typedef {import('/assets/protocol.js').ChatMessage} ChatMessage */

const chat = {
  /** The last message shown: history and live messages may overlap. */
  lastSeq: -Infinity,
  unread: 0,
  /**
   * What was sent and not yet echoed, oldest first. The server answers chat in order, with
   * the echo or a refusal; a refused text goes back to the input.
   * @type {string[]}
   */
  unconfirmed: [],
};

/** The panel is shown (`hidden` may also be "until-found", which counts as hidden). */
export const isChatOpen = () => !$('chat').hidden;

/** Render what the server sent (history and live messages alike), once each. @param {ChatMessage} m */
export function appendChat(m) {
  if (m.seq <= chat.lastSeq) return;
  chat.lastSeq = m.seq;
  const mine = m.from === state.you;
  if (mine && m.text === chat.unconfirmed[0]) chat.unconfirmed.shift();
  const item = el('li', mine ? 'chat-msg mine' : 'chat-msg');
  const meta = el('div', 'chat-meta');
  const time = el('time', 'chat-time', new Date(m.ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }));
  time.setAttribute('datetime', new Date(m.ts).toISOString());
  meta.append(el('span', 'chat-from', mine ? `${m.name} (you)` : m.name), time);
  item.append(meta, el('p', 'chat-text', m.text));
  const log = $('chat-log');
  log.append(item);
  log.scrollTop = log.scrollHeight;
  if (!isChatOpen() && !mine) setUnread(chat.unread + 1);
}

/** @param {SubmitEvent} e */
function sendChat(e) {
  e.preventDefault();
  const input = $('chat-input', HTMLInputElement);
  const text = input.value.trim();
  if (!text || !state.conn) return;
  if ([...text].length > MAX_CHAT_CHARS) return showToast(`Chat messages can be at most ${MAX_CHAT_CHARS} characters.`);
  state.conn.sendChat(text);
  chat.unconfirmed.push(text);
  input.value = '';
}

/**
 * The server refused a message still waiting for its echo: put its text back in the input,
 * if that is empty, so the person can send it again. `storage_unavailable` is about the
 * oldest (commits go in order); `rate_limited` about the newest (the room refuses it at once,
 * while older ones may still wait for their commit). A `rate_limited` can also be about
 * another message; with none waiting, nothing happens.
 * @param {string} code
 */
export function chatRefused(code) {
  if (code !== 'storage_unavailable' && code !== 'rate_limited') return;
  const text = code === 'rate_limited' ? chat.unconfirmed.pop() : chat.unconfirmed.shift();
  const input = $('chat-input', HTMLInputElement);
  if (text !== undefined && !input.value) input.value = text;
}

/** @param {boolean} open @param {boolean} [focus] */
export function setChatOpen(open, focus = true) {
  $('chat').hidden = !open;
  $('chat-toggle').setAttribute('aria-pressed', String(open));
  if (open) setUnread(0);
  if (open && focus) $('chat-input').focus();
}

/** Empty the log for the next call. */
export function resetChat() {
  $('chat-log').replaceChildren();
  chat.lastSeq = -Infinity;
  chat.unconfirmed = [];
  setUnread(0);
}

/** @param {number} n */
function setUnread(n) {
  chat.unread = n;
  $('chat-unread').hidden = n === 0;
  $('chat-unread').textContent = String(n);
}

export function wireChat() {
  on('chat-form', 'submit', sendChat);
  $('chat-input', HTMLInputElement).maxLength = MAX_CHAT_CHARS;
}
