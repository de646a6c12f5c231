// @ts-check
/**
 * Recording, as the page shows it. Everyone: the "Record me" switch (in the lobby it goes
 * with `join`; in the call it sends `consent`), and while the room records, a banner that
 * names whom it records and says whether we are among them. Tiles and the People list mark
 * each recorded person ({@link isRecorded}). Facilitators: Start recording and Stop recording,
 * with "Record presentations only", in the Agenda panel, under the agenda's own controls:
 * the panel a facilitator's page opens on.
 *
 * The server decides who is recorded. This module draws `recording` as it comes, and our
 * own consent as the roster says; a click only asks.
 */
import { nameList } from '/assets/floor.js';
import { state } from '/assets/state.js';
import { $, announce, on } from '/assets/ui.js';

/** @typedef {import('/assets/protocol.js').ParticipantInfo} ParticipantInfo */
/** @typedef {import('/assets/protocol.js').RecordingView} RecordingView */

/** No recording: what the server says before it says anything. @type {RecordingView} */
export const NOT_RECORDING = { on: false, presentation_only: false, recorded: [] };

const rec = {
  /** Everyone in the call, in join order, as call.js last said. @type {ParticipantInfo[]} */
  roster: [],
  /** A facilitator's Start or Stop was sent and not yet answered. */
  busy: false,
  /** A Record me click was sent and our consent has not changed yet. */
  asking: false,
};

/** Whether the room records `id` now. @param {string} id */
export const isRecorded = (id) => state.recording.on && state.recording.recorded.includes(id);

/** Whether we agree to be recorded, as the server last said. */
const ownConsent = () => rec.roster.find((p) => p.id === state.you)?.consent ?? state.consent;

// ---- the lobby ----------------------------------------------------------------------------

/** The lobby's Record me switch: what `join` says. Off unless the person turned it on; an observer's lobby has none. */
export function lobbyConsent() {
  return !$('consent-field').hidden && $('consent-switch', HTMLInputElement).checked;
}

// ---- the call -----------------------------------------------------------------------------

/**
 * The recording, from `joined` (`initial`) or a `recording` message. Screen readers hear of
 * a start and a stop, and of our own change; the banner shows the rest.
 * @param {RecordingView} view @param {boolean} [initial]
 */
export function showRecording(view, initial = false) {
  const before = initial ? NOT_RECORDING : state.recording;
  state.recording = view;
  rec.busy = false;
  renderRecording();
  const news = recordingNews(before, view);
  if (news) announce(news);
}

/** What changed, in words; null when nothing worth saying did. @param {RecordingView} before @param {RecordingView} now */
function recordingNews(before, now) {
  const me = (/** @type {RecordingView} */ v) => v.on && v.recorded.includes(state.you);
  if (!before.on && now.on) {
    const mode = now.presentation_only ? 'Presentations are being recorded' : 'This call is being recorded';
    return `${mode}. ${me(now) ? 'You are recorded.' : 'You are not recorded.'}`;
  }
  if (before.on && !now.on) return 'Recording stopped.';
  if (me(before) !== me(now)) return me(now) ? 'You are now recorded.' : 'You are no longer recorded.';
  return null;
}

/** The people in the call changed: names and our own consent follow. @param {ParticipantInfo[]} roster */
export function recordingRosterChanged(roster) {
  const before = ownConsent();
  rec.roster = roster;
  state.consent = ownConsent();
  if (before !== state.consent) rec.asking = false;
  // A rejoin from this tab says again what the person last chose.
  $('consent-switch', HTMLInputElement).checked = state.consent;
  renderRecording();
}

/** Forget the room's recording for the next call. */
export function resetRecording() {
  state.recording = NOT_RECORDING;
  rec.roster = [];
  rec.busy = false;
  rec.asking = false;
  renderRecording();
}

/**
 * The server refused a recording request: the controls take clicks again. The caller shows
 * the words for `code`.
 * @param {string} code
 */
export function recordingRefused(code) {
  if (code === 'recording_state' || code === 'forbidden') rec.busy = false;
  if (code === 'rate_limited') rec.asking = false;
  renderRecording();
}

/** Draw everything from `state.recording` and the roster. */
export function renderRecording() {
  renderBanner();
  renderSwitch();
  renderControls();
}

function renderBanner() {
  const view = state.recording;
  $('rec-banner').hidden = !view.on;
  const names = view.recorded.map((id) => rec.roster.find((p) => p.id === id)?.name ?? 'Someone');
  $('rec-text').textContent = !view.on ? 'Not recording'
    : names.length ? `Recording: ${nameList(names)}` : 'Recording is on: nobody is recorded now';
  $('rec-mode').hidden = !view.presentation_only;
  const self = $('rec-self');
  const recorded = isRecorded(state.you);
  self.hidden = state.role === 'observer';
  self.dataset.recorded = String(recorded);
  self.textContent = recorded ? 'You are recorded'
    : ownConsent() ? 'You are not recorded now' : 'You are not recorded';
}

/** The toolbar's Record me: our consent, and whether it is being recorded now. */
function renderSwitch() {
  const button = $('record-me');
  const consent = ownConsent();
  button.hidden = state.role === 'observer';
  button.setAttribute('aria-checked', String(consent));
  button.dataset.live = String(isRecorded(state.you));
  button.setAttribute('aria-busy', String(rec.asking));
  $('record-me-state').textContent = !state.recording.on
    ? consent ? 'If this call is recorded, you will be.' : 'If this call is recorded, you will not be.'
    : isRecorded(state.you) ? 'You are recorded.' : 'You are not recorded.';
}

/** A facilitator's Start or Stop, the presentations-only choice, and who agrees. */
function renderControls() {
  const view = state.recording;
  $('rec-section').hidden = state.role !== 'facilitator';
  const toggle = $('rec-toggle', HTMLButtonElement);
  toggle.textContent = view.on ? 'Stop recording' : 'Start recording';
  toggle.classList.toggle('btn-primary', !view.on);
  toggle.classList.toggle('btn-quiet-danger', view.on);
  toggle.setAttribute('aria-disabled', String(rec.busy));
  const only = $('rec-presentations', HTMLInputElement);
  // A session keeps its choice: to change it, stop and start again.
  only.disabled = view.on;
  if (view.on) only.checked = view.presentation_only;
  const publishing = rec.roster.filter((p) => p.role !== 'observer');
  const agree = publishing.filter((p) => p.consent).length;
  $('rec-summary').textContent = `Agree to be recorded: ${agree} of ${publishing.length}.`;
}

// ---- wiring -------------------------------------------------------------------------------

export function wireRecording() {
  on('record-me', 'click', () => {
    if (!state.conn) return;
    rec.asking = true;
    state.conn.setConsent(!ownConsent());
    renderSwitch();
  });
  on('rec-toggle', 'click', () => {
    if (!state.conn || rec.busy) return;
    rec.busy = true;
    state.conn.setRecording(!state.recording.on, $('rec-presentations', HTMLInputElement).checked);
    renderControls();
  });
}
