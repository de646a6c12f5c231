// @ts-check
/**
 * The floor: who may speak now, as the agenda and the facilitators decide. The server enforces
 * it: it does not forward the audio of someone off the floor. This module says so on the page.
 * A notice above the grid tells the person why they are not heard and how they get the floor.
 * The Mute button dims, but the microphone stays as the person left it: the floor is not a
 * mute, and they are heard again as soon as it opens.
 *
 * The agenda panel (agenda.js) shows who holds the floor; a facilitator's menu on each person
 * (moderation.js) gives and takes it.
 */
import { state } from '/assets/state.js';
import { $, el, icon } from '/assets/ui.js';

/** @typedef {import('/assets/protocol.js').AgendaView} AgendaView */
/** @typedef {import('/assets/protocol.js').ParticipantInfo} ParticipantInfo */

/** Whether the agenda is under way, so that the floor follows it. @param {AgendaView | null} view */
export const isLive = (view) => view?.phase === 'running' || view?.phase === 'paused';

/** The segment under way, if any. @param {AgendaView | null} view */
export function current(view) {
  if (!view || !isLive(view)) return null;
  const tactic = view.plan.tactics[view.tactic];
  const segment = tactic?.segments[view.segment];
  return tactic && segment ? { tactic, segment } : null;
}

/** Whether `id` is heard, as far as the floor goes (a mute aside). @param {AgendaView | null} view @param {string} id */
export function onFloor(view, id) {
  if (!view || !isLive(view) || view.floor.mode === 'open') return true;
  return view.floor.speakers.includes(id);
}

/** "Ada", "Ada and Bo", "Ada, Bo and Cy". @param {string[]} names */
export function nameList(names) {
  if (names.length < 2) return names.join('');
  return `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
}

/**
 * Who presents the segment under way: the facilitators for an organisation, the advocate for
 * a tactic (whoever the server lets speak, beyond facilitators and whom it was given).
 * @param {AgendaView | null} view @param {ParticipantInfo[]} roster
 */
export function presenters(view, roster) {
  const now = current(view);
  if (!view || !now) return [];
  if (now.segment.kind === 'organisation') return roster.filter((p) => p.role === 'facilitator');
  if (now.segment.kind !== 'tactic') return [];
  const speaking = roster.filter((p) => view.floor.speakers.includes(p.id)
    && p.role !== 'facilitator' && !view.floor.given.includes(p.id));
  if (speaking.length) return speaking;
  // Time is up under the `mute` policy: the advocate is no longer a speaker, but still presents.
  return roster.filter((p) => isAdvocate(now.tactic.advocate, p));
}

/**
 * Whether `person` is the one `advocate` names: by participant id, or by the invite they
 * joined with.
 * @param {import('/assets/protocol.js').Advocate | null | undefined} advocate
 * @param {import('/assets/protocol.js').ParticipantInfo} person
 */
export function isAdvocate(advocate, person) {
  if (!advocate) return false;
  return advocate.by === 'participant' ? advocate.id === person.id : person.invite === advocate.id;
}

/**
 * What the rest of the segment holds for someone off the floor.
 * @param {AgendaView} view
 */
function whenNext(view) {
  const tactic = view.plan.tactics[view.tactic];
  const talk = tactic?.segments.slice(view.segment + 1).some((s) => s.kind === 'conversation');
  if (!talk) return 'You can speak when the floor opens.';
  return view.plan.hand_raise ? 'In the conversation, raise your hand to speak.' : 'You can speak in the open conversation.';
}

/**
 * Why we are not heard now, in words; null while we are.
 * @param {AgendaView | null} view @param {ParticipantInfo[]} roster
 */
export function whyNotHeard(view, roster) {
  const now = current(view);
  if (!view || !now || onFloor(view, state.you)) return null;
  const presenting = presenters(view, roster);
  const names = presenting.map((p) => p.name);
  const verb = names.length > 1 ? 'are' : 'is';
  switch (view.floor.mode) {
    case 'presentation':
      if (now.segment.kind === 'organisation') {
        return `${nameList(names) || 'The facilitator'} ${verb} presenting the organisation. ${whenNext(view)}`;
      }
      if (!names.length) return `No advocate presents this tactic, so only the facilitators are heard. ${whenNext(view)}`;
      return `${nameList(names)} ${verb} presenting the tactic. ${whenNext(view)}`;
    case 'hand_raise':
      return state.hands.includes(state.you)
        ? 'Your hand is up: you can speak once a facilitator gives you the floor.'
        : 'Raise your hand; a facilitator gives the floor.';
    case 'closed':
      if (presenting.some((p) => p.id === state.you)) {
        return 'Your time is up: the others no longer hear you. A facilitator can give you the floor again.';
      }
      return `Time is up for the presenter. ${whenNext(view)}`;
    default:
      return null;
  }
}

/** Whether a facilitator gave us the floor. */
export const floorGivenToUs = () => Boolean(state.agenda && isLive(state.agenda) && state.agenda.floor.given.includes(state.you));

/**
 * The notice above the grid, and the Mute button's look. A facilitator's mute has its own
 * notice (moderation.js), which says enough.
 * @param {ParticipantInfo[]} roster
 */
export function renderFloorNotice(roster) {
  const speaks = state.role !== 'observer' && state.role !== 'facilitator';
  const why = speaks && state.audioAllowed ? whyNotHeard(state.agenda, roster) : null;
  const given = speaks && floorGivenToUs();
  const notice = $('floor-notice');
  notice.hidden = !why && !given;
  notice.classList.toggle('banner-ok', given);
  if (given) {
    const back = el('button', 'btn btn-small btn-secondary', 'Give the floor back');
    back.setAttribute('type', 'button');
    back.addEventListener('click', () => state.conn?.yieldFloor());
    notice.replaceChildren(icon('i-mic'), el('span', '', 'You have the floor: everyone hears you.'), back);
  } else if (why) {
    notice.replaceChildren(icon('i-mic-off'), el('span', '', why));
  } else {
    notice.replaceChildren();
  }
  const mute = $('mute-btn');
  mute.classList.toggle('off-floor', Boolean(why));
  mute.title = why ? 'The others do not hear you until you have the floor. Your microphone stays as you set it.' : '';
}

/**
 * A facilitator's floor items in the menu on `p`: give it to someone who does not hold it,
 * take it back from someone it was given to. None before the start or after the end, when
 * everyone may speak, nor for facilitators (they always may) or observers (they never do).
 * @param {ParticipantInfo} p @returns {{label: string, icon: string, run: () => void}[]}
 */
export function floorMenuItems(p) {
  const view = state.agenda;
  if (!view || !isLive(view) || p.role === 'observer' || p.role === 'facilitator') return [];
  if (view.floor.given.includes(p.id)) {
    return [{ label: 'Take back floor', icon: 'i-mic-off', run: () => state.conn?.takeFloor(p.id) }];
  }
  if (view.floor.speakers.includes(p.id)) return [];
  return [{ label: 'Give floor', icon: 'i-mic', run: () => state.conn?.giveFloor(p.id) }];
}
