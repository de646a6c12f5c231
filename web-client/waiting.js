// @ts-check
/**
 * The waiting screen: the join found no free seat (or a locked room) and waits in line until a
 * facilitator admits it (then app.js goes on to the call) or declines it (the "removed"
 * screen, which moderation.js also uses, with words of its own). Nobody sees or hears the person meanwhile: there is no media
 * connection until `joined`.
 */
import { state } from '/assets/state.js';
import { $, showScreen } from '/assets/ui.js';

/** Show the screen, or the new place in line. @param {number} position 1 is next */
export function showWaiting(position) {
  $('waiting-room').textContent = state.roomTitle;
  $('waiting-position').textContent = `You are number ${position} in line`;
  document.title = `(${position}) Waiting · ${state.roomTitle || 'Roundtable'}`;
  if ($('waiting').hidden) {
    showScreen('waiting');
    $('waiting-leave').focus();
  }
}

/** A facilitator turned us away. */
export function showDeclined() {
  $('removed-title').textContent = 'You were not let in';
  $('removed-text').textContent = `A facilitator declined your request to join${state.roomTitle ? ` “${state.roomTitle}”` : ''}. Ask them if you think this is a mistake.`;
  document.title = 'Not admitted · Roundtable';
  showScreen('removed');
  $('removed-title').focus();
}
