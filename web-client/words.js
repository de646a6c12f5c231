// @ts-check
/**
 * What the page says about the protocol's values: roles, and what the server's error codes
 * mean in words a participant understands. The lobby shows an error when a join is refused;
 * the call screen when a request is refused. The server's own `message` is for developers: it
 * is shown only for a code not listed here.
 */
import { MAX_NAME_CHARS } from '/assets/protocol.js';
import { state } from '/assets/state.js';
import { plural } from '/assets/ui.js';

/** @typedef {import('/assets/protocol.js').Role} Role */
/** @typedef {import('/assets/protocol.js').SegmentKind} SegmentKind */
/** @typedef {import('/assets/protocol.js').TimeUpPolicy} TimeUpPolicy */

/** @type {Record<Role, string>} */
export const ROLE_LABEL = { facilitator: 'Facilitator', advocate: 'Advocate', participant: 'Participant', observer: 'Observer' };

/** A segment, by what it is for. @type {Record<SegmentKind, string>} */
export const SEGMENT_LABEL = {
  organisation: 'Organisation presentation',
  tactic: 'Tactic presentation',
  conversation: 'Open conversation',
};

/** The same, short, where space is tight. @type {Record<SegmentKind, string>} */
export const SEGMENT_SHORT = { organisation: 'Organisation', tactic: 'Tactic', conversation: 'Conversation' };

/** @type {Record<TimeUpPolicy, string>} */
export const TIME_UP_LABEL = {
  warn: 'Only say so',
  advance: 'Move on to the next segment',
  mute: 'Close the presenter’s floor',
};

/**
 * A planned length in words: "5 min", "1 h 15 min", "90 s".
 * @param {number} seconds
 */
export function duration(seconds) {
  if (seconds < 60) return `${seconds} s`;
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  const parts = [h ? `${h} h` : '', m ? `${m} min` : '', s ? `${s} s` : ''];
  return parts.filter(Boolean).join(' ');
}

/**
 * Spoken time: "1 minute", "1 minute 30 seconds", "30 seconds".
 * @param {number} seconds
 */
export function spokenDuration(seconds) {
  const m = Math.floor(seconds / 60);
  const s = seconds % 60;
  const parts = [m ? plural(m, 'minute', 'minutes') : '', s ? plural(s, 'second', 'seconds') : ''];
  return parts.filter(Boolean).join(' ') || '0 seconds';
}

const ASK = 'Ask the facilitator for a new link.';

/** @type {Record<string, string | (() => string)>} */
const TEXTS = {
  room_full: () => `This room is full${state.capacity ? `: it holds ${plural(state.capacity, 'person', 'people')}` : ''}. Try again when someone leaves.`,
  role_full: 'All the seats for your role are taken. Try again when someone leaves, or ask the facilitator.',
  room_locked: 'The facilitator has locked this room: nobody new can join right now.',
  bad_name: `That name can't be used. Please use 1 to ${MAX_NAME_CHARS} characters, with no control characters.`,
  unsupported_version: 'This page is out of date. Reload it to join.',
  invite_invalid: `This invitation link is not valid. Check that you copied all of it, or ${ASK.toLowerCase()}`,
  invite_expired: `This invitation has expired. ${ASK}`,
  invite_used_up: `This invitation has already been used as often as it allows. ${ASK}`,
  invite_revoked: `This invitation was withdrawn. ${ASK}`,
  invite_wrong_room: `This invitation is for another room. Check that you opened the link you were sent, or ${ASK.toLowerCase()}`,
  invite_required: 'This room is by invitation only. Ask the facilitator for your link.',
  unavailable: 'The room closed, or the server is restarting. Try again in a moment.',
  forbidden: 'Your role in this room does not allow that.',
  participant_not_found: 'That person has already left the call.',
  waiter_not_found: 'That person is no longer waiting: they left, or another facilitator let them in or turned them away.',
  not_barrable: 'That person joined with the room’s open link, so there is no invitation to bar. Nobody was removed: choose Remove again without barring.',
  agenda_state: 'The agenda cannot do that now: it may just have moved on. Check the agenda and try again.',
  bad_agenda: 'The agenda does not take that value. A segment can be extended by 1 second to 1 hour at a time.',
  recording_state: 'Recording was already started or stopped, perhaps by another facilitator. The banner above the videos shows whether it is on.',
  not_joined: 'You are not in the call yet, so that cannot be done now.',
  rate_limited: 'That was too fast: wait a moment, then try again.',
};

/** A refusal in the call means something else than at the door: a facilitator's admit found no seat. */
/** @type {Record<string, string>} */
const IN_CALL = {
  room_full: 'There is no free seat to admit them to. Someone has to leave first.',
  role_full: 'All the seats for their role are taken. Someone in that role has to leave first.',
};

/** Codes that mean the invite itself is no good: joining with it again cannot work. */
export const INVITE_ERRORS = ['invite_invalid', 'invite_expired', 'invite_used_up', 'invite_revoked', 'invite_wrong_room'];

/**
 * The readable text for a code, or `fallback` (the server's message) for one not listed.
 * @param {string} code @param {string} fallback @param {boolean} [inCall] refused a request in the call, not a join
 */
export function describeError(code, fallback, inCall = false) {
  const text = (inCall && IN_CALL[code]) || TEXTS[code];
  if (typeof text === 'function') return text();
  return text ?? fallback;
}
