// @ts-check
/**
 * The HTTP API the pages use before joining: a room's public facts, and what an invite would
 * admit as. No DOM code lives here.
 */
import { RoundtableError } from '/assets/protocol.js';

/** @typedef {import('/assets/protocol.js').RoomSummary} RoomSummary */
/** @typedef {import('/assets/protocol.js').InviteCheck} InviteCheck */

/**
 * `GET /api/rooms/{roomId}`.
 * @param {string} roomId
 * @returns {Promise<RoomSummary>}
 * @throws {RoundtableError} `room_not_found`, `http_error` or `network`
 */
export function fetchRoom(roomId) {
  return api(`/api/rooms/${encodeURIComponent(roomId)}`, { headers: { accept: 'application/json' } });
}

/**
 * `POST /api/rooms/{roomId}/invite-check`: what an invite would admit as, without using it.
 * @param {string} roomId @param {string} invite the secret
 * @returns {Promise<InviteCheck>}
 * @throws {RoundtableError} an `invite_*` code, `room_not_found`, `http_error` or `network`
 */
export function checkInvite(roomId, invite) {
  return api(`/api/rooms/${encodeURIComponent(roomId)}/invite-check`, {
    method: 'POST',
    headers: { accept: 'application/json', 'content-type': 'application/json' },
    body: JSON.stringify({ invite }),
  });
}

/**
 * One JSON request; a refusal becomes a {@link RoundtableError} with the server's code.
 * @param {string} url @param {RequestInit} init
 */
async function api(url, init) {
  let res;
  try {
    res = await fetch(url, init);
  } catch (e) {
    throw new RoundtableError('network', 'Could not reach the server.');
  }
  const body = await res.json().catch(() => null);
  if (res.ok && body) return body;
  const code = body?.error?.code ?? (res.status === 404 ? 'room_not_found' : 'http_error');
  throw new RoundtableError(code, body?.error?.message ?? `The server answered ${res.status}.`);
}
