// @ts-check
/**
 * The agenda panel of the call screen, beside chat and people: the tactic and segment under
 * way, who presents and who holds the floor, a countdown with its progress, what comes next
 * and the running order. Facilitators also get the controls that run it and the editor
 * (agenda-editor.js). countdown.js draws the countdown, and its chip in the header while the
 * panel is closed. floor.js says why someone is not heard.
 *
 * The countdown is silent for screen readers: the events (segment started, a minute left,
 * time up) go to the polite announcer instead.
 */
import { agendaEdited, editorRefused, editorRosterChanged, openEditor, resetEditor, wireEditor } from '/assets/agenda-editor.js';
import { tick } from '/assets/countdown.js';
import { current, floorGivenToUs, isAdvocate, isLive, nameList, presenters, renderFloorNotice, whyNotHeard } from '/assets/floor.js';
import { state } from '/assets/state.js';
import { $, announce, el, on, plural, syncList } from '/assets/ui.js';
import { SEGMENT_LABEL, duration, spokenDuration } from '/assets/words.js';

/** @typedef {import('/assets/protocol.js').AgendaView} AgendaView */
/** @typedef {import('/assets/protocol.js').AgendaEvent} AgendaEvent */
/** @typedef {import('/assets/protocol.js').AgendaAction} AgendaAction */
/** @typedef {import('/assets/protocol.js').Tactic} Tactic */
/** @typedef {import('/assets/protocol.js').ParticipantInfo} ParticipantInfo */

/** A control sent and not yet answered ignores a second press for this long at most. */
const BUSY_MS = 3000;

const panel = {
  /** Everyone in the call, in join order, as call.js last said. @type {ParticipantInfo[]} */
  roster: [],
  /** A control was sent and its answer has not come: a double click must not skip twice. */
  busy: false,
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  busyTimer: undefined,
};

export const isAgendaOpen = () => !$('agenda').hidden;

/** @param {boolean} open @param {boolean} [focus] */
export function setAgendaOpen(open, focus = true) {
  $('agenda').hidden = !open;
  $('agenda-toggle').setAttribute('aria-pressed', String(open));
  tick();
  if (open && focus) $('agenda-heading').focus();
}

/**
 * The server sent the agenda, and what changed it. Tells screen readers what happened.
 * @param {AgendaView | null} view @param {AgendaEvent | null} event
 */
export function showAgenda(view, event) {
  const before = state.agenda;
  state.agenda = view;
  setBusy(false);
  renderAgenda();
  if (!view) return;
  agendaEdited(view);
  const text = event ? eventText(before, view, event) : floorNews(before, view);
  if (text) announce(text);
}

/** The people in the call changed: names in the panel follow. @param {ParticipantInfo[]} roster */
export function agendaRosterChanged(roster) {
  panel.roster = roster;
  editorRosterChanged(roster);
  renderAgenda();
}

/** Forget the agenda for the next call. */
export function resetAgenda() {
  state.agenda = null;
  panel.roster = [];
  setBusy(false);
  resetEditor();
  const end = $('end-dialog', HTMLDialogElement);
  if (end.open) end.close();
  renderAgenda();
}

/**
 * The server refused an agenda request. The editor shows its own refusals; the rest are
 * the caller's to show. Returns whether it was shown.
 * @param {string} code
 */
export function agendaRefused(code) {
  if (code !== 'agenda_state' && code !== 'bad_agenda' && code !== 'forbidden') return false;
  setBusy(false);
  return editorRefused(code);
}

// ---- drawing ------------------------------------------------------------------------------

/** Draw everything from `state.agenda` (hands, mutes and names feed it too). */
export function renderAgenda() {
  const view = state.agenda;
  const before = document.activeElement;
  $('agenda').dataset.phase = view?.phase ?? 'ready';
  renderIdle(view);
  renderNow(view);
  renderControls(view);
  renderFloor(view);
  renderNext(view);
  renderOrder(view);
  renderFloorNotice(panel.roster);
  keepFocus(before);
  tick();
}

/** Before the start, and after the end. @param {AgendaView | null} view */
function renderIdle(view) {
  const idle = !view || !isLive(view);
  $('agenda-idle').hidden = !idle;
  if (!idle) return;
  const fac = state.role === 'facilitator';
  const tactics = view?.plan.tactics ?? [];
  const ended = view?.phase === 'ended';
  $('agenda-idle-over').textContent = ended ? 'Finished' : 'Not started';
  if (ended) {
    $('agenda-idle-title').textContent = 'The agenda has ended';
    $('agenda-idle-text').textContent = `Everyone can speak.${fac ? ' Start agenda runs it again from the first tactic.' : ''}`;
  } else if (!tactics.length) {
    $('agenda-idle-title').textContent = 'No tactics yet';
    $('agenda-idle-text').textContent = fac ? 'Add the tactics to cover with Edit agenda.' : 'The facilitator is preparing the agenda.';
  } else {
    $('agenda-idle-title').textContent = `${plural(tactics.length, 'tactic', 'tactics')} · ${duration(planned(tactics))}`;
    $('agenda-idle-text').textContent = fac
      ? 'Check the running order, then press Start agenda. Until then, everyone can speak.'
      : 'The facilitator starts the agenda. Until then, everyone can speak.';
  }
}

/** The segment under way. @param {AgendaView | null} view */
function renderNow(view) {
  const now = current(view);
  $('agenda-now').hidden = !now;
  if (!view || !now) return;
  const { tactic, segment } = now;
  $('agenda-now').dataset.kind = segment.kind;
  const count = view.plan.tactics.length;
  $('agenda-where').textContent = `Tactic ${view.tactic + 1} of ${count} · Segment ${view.segment + 1} of ${tactic.segments.length}`;
  $('agenda-title').textContent = tactic.title;
  $('agenda-org').textContent = tactic.organisation;
  $('agenda-org').hidden = !tactic.organisation;
  const kind = $('agenda-kind');
  kind.textContent = SEGMENT_LABEL[segment.kind];
  kind.dataset.kind = segment.kind;
  $('agenda-presenter').textContent = presenterText(view, tactic);
  $('agenda-paused').hidden = view.phase !== 'paused';
}

/** "by Ada Lovelace" for a presentation; nothing for a conversation. @param {AgendaView} view @param {Tactic} tactic */
function presenterText(view, tactic) {
  const kind = tactic.segments[view.segment]?.kind;
  if (kind === 'conversation') return '';
  const names = presenters(view, panel.roster).map((p) => p.name);
  if (names.length) return `by ${nameList(names)}`;
  if (kind === 'organisation') return 'by the facilitator';
  return advocateText(tactic);
}

/** Who presents a tactic, as planned. @param {Tactic} tactic */
function advocateText(tactic) {
  const a = tactic.advocate;
  if (!a) return 'No advocate assigned';
  const who = panel.roster.find((p) => isAdvocate(a, p));
  if (who) return `by ${who.name}`;
  return a.by === 'invite' ? 'by the invited advocate' : 'by an advocate who left';
}

/** The facilitator's buttons, as the phase allows. @param {AgendaView | null} view */
function renderControls(view) {
  const fac = state.role === 'facilitator';
  $('agenda-controls').hidden = !fac;
  $('agenda-edit').hidden = !fac || !view;
  if (!fac) return;
  const live = isLive(view);
  const phase = view?.phase ?? 'ready';
  $('ag-start').hidden = live;
  $('ag-start', HTMLButtonElement).disabled = !view?.plan.tactics.length;
  $('ag-pause').hidden = phase !== 'running';
  $('ag-resume').hidden = phase !== 'paused';
  for (const id of ['ag-next', 'ag-prev', 'ag-skip', 'ag-extend-group', 'ag-end']) $(id).hidden = !live;
  $('ag-prev', HTMLButtonElement).disabled = live && view?.tactic === 0 && view?.segment === 0;
  $('agenda-controls').setAttribute('aria-busy', String(panel.busy));
}

/** Who holds the floor, whom a facilitator gave it, and (facilitators) the raised hands. @param {AgendaView | null} view */
function renderFloor(view) {
  const live = Boolean(view && isLive(view));
  $('agenda-floor').hidden = !live;
  if (!view || !live) return;
  const names = presenters(view, panel.roster).map((p) => p.name);
  /** @type {Record<string, string>} */
  const texts = {
    open: 'Open floor: everyone can speak.',
    presentation: names.length
      ? `${nameList(names)} ${names.length > 1 ? 'have' : 'has'} the floor. Facilitators can always speak.`
      : 'No advocate presents this tactic: the facilitators have the floor.',
    hand_raise: 'Raise your hand to speak: a facilitator gives the floor.',
    closed: 'Time is up for the presenter: only the facilitators have the floor.',
  };
  $('agenda-floor-text').textContent = texts[view.floor.mode];
  const fac = state.role === 'facilitator';
  const given = panel.roster.filter((p) => view.floor.given.includes(p.id));
  syncList($('agenda-given'), given, (p) => p.id, (p) => floorRow(p, 'Take back', () => state.conn?.takeFloor(p.id)), (row, p) => {
    fillFloorRow(row, p, fac, 'Given the floor', 'floor from');
  });
  // In a conversation under hand-raise, or a presentation, the hands are the next speakers.
  const waiting = fac && view.floor.mode !== 'open'
    ? state.hands.map((id) => panel.roster.find((p) => p.id === id)).filter((p) => p && !view.floor.speakers.includes(p.id))
    : [];
  $('agenda-hands').hidden = waiting.length === 0;
  syncList($('agenda-hands-list'), /** @type {ParticipantInfo[]} */ (waiting), (p) => p.id, (p) => floorRow(p, 'Give floor', () => state.conn?.giveFloor(p.id)), (row, p) => {
    fillFloorRow(row, p, true, '', 'to');
  });
}

/** @param {ParticipantInfo} p @param {string} verb @param {() => void} act */
function floorRow(p, verb, act) {
  const row = el('li', 'floor-row');
  const button = el('button', 'btn btn-small btn-secondary');
  button.setAttribute('type', 'button');
  button.addEventListener('click', act);
  button.dataset.verb = verb;
  row.append(el('span', 'floor-name'), button);
  return row;
}

/**
 * The button reads its verb; its name adds whom ("Take back floor from Pat").
 * @param {HTMLElement} row @param {ParticipantInfo} p @param {boolean} act @param {string} prefix @param {string} link
 */
function fillFloorRow(row, p, act, prefix, link) {
  const name = p.id === state.you ? `${p.name} (you)` : p.name;
  /** @type {HTMLElement} */ (row.querySelector('.floor-name')).textContent = prefix ? `${prefix}: ${name}` : name;
  const button = /** @type {HTMLElement} */ (row.querySelector('button'));
  button.hidden = !act;
  const verb = button.dataset.verb ?? '';
  button.replaceChildren(verb, el('span', 'visually-hidden', ` ${link} ${p.name}`));
}

/** What comes after the segment under way. @param {AgendaView | null} view */
function renderNext(view) {
  const now = current(view);
  $('agenda-next').hidden = !now;
  if (!view || !now) return;
  const text = $('agenda-next-text');
  const next = nextSegment(view);
  if (!next) {
    text.replaceChildren('Nothing: this is the last segment. The agenda ends after it.');
    return;
  }
  const { tactic, segment, t } = next;
  const label = el('span', 'seg-chip', SEGMENT_LABEL[segment.kind]);
  label.dataset.kind = segment.kind;
  const parts = [label, el('span', 'muted', ` ${duration(segment.duration_s)}`)];
  if (t !== view.tactic) parts.push(el('span', 'agenda-next-tactic', `Tactic ${t + 1}: ${tactic.title}`));
  text.replaceChildren(...parts);
}

/** @param {AgendaView} view */
function nextSegment(view) {
  const tactics = view.plan.tactics;
  const here = tactics[view.tactic];
  if (here && view.segment + 1 < here.segments.length) return { tactic: here, segment: here.segments[view.segment + 1], t: view.tactic };
  const t = view.tactic + 1;
  const tactic = tactics[t];
  return tactic?.segments[0] ? { tactic, segment: tactic.segments[0], t } : null;
}

/** Every tactic: done, under way or to come. @param {AgendaView | null} view */
function renderOrder(view) {
  const tactics = view?.plan.tactics ?? [];
  $('agenda-total').textContent = tactics.length ? duration(planned(tactics)) : '';
  const items = tactics.map((tactic, i) => ({ tactic, i }));
  syncList($('agenda-order'), items, ({ i }) => String(i), makeOrderRow, (row, { tactic, i }) => {
    // After the end, the view no longer says which tactics ran: none is marked done.
    const live = isLive(view);
    const stateOf = live && view && i < view.tactic ? 'done' : live && view?.tactic === i ? 'current' : 'todo';
    row.dataset.state = stateOf;
    if (stateOf === 'current') row.setAttribute('aria-current', 'step');
    else row.removeAttribute('aria-current');
    /** @param {string} sel */
    const part = (sel) => /** @type {HTMLElement} */ (row.querySelector(sel));
    part('.order-num').textContent = stateOf === 'done' ? '✓' : String(i + 1);
    part('.order-num').setAttribute('aria-label', stateOf === 'done' ? `Tactic ${i + 1}, done` : `Tactic ${i + 1}`);
    part('.order-title').textContent = tactic.title;
    const who = advocateText(tactic).replace(/^by /, '');
    part('.order-sub').textContent = [tactic.organisation, who].filter(Boolean).join(' · ');
    part('.order-time').textContent = duration(planned([tactic]));
    // A bar of the segments, each as long as it lasts; the words are for screen readers.
    const at = stateOf === 'current' && view ? view.segment : stateOf === 'done' ? Infinity : -1;
    part('.order-bar').replaceChildren(...tactic.segments.map((s, j) => {
      const seg = el('span', 'order-seg');
      seg.dataset.kind = s.kind;
      seg.style.flexGrow = String(s.duration_s);
      seg.dataset.state = j < at ? 'done' : j === at ? 'now' : 'todo';
      return seg;
    }));
    part('.order-segs').textContent = tactic.segments.map((s) => `${SEGMENT_LABEL[s.kind]} ${duration(s.duration_s)}`).join(', ');
  });
}

function makeOrderRow() {
  const row = el('li', 'order-item');
  const num = el('span', 'order-num');
  num.setAttribute('role', 'img');
  const text = el('div', 'order-text');
  const bar = el('span', 'order-bar');
  bar.setAttribute('aria-hidden', 'true');
  text.append(el('span', 'order-title'), el('span', 'order-sub'), bar, el('span', 'order-segs visually-hidden'));
  row.append(num, text, el('span', 'order-time'));
  return row;
}

/** @param {Tactic[]} tactics */
const planned = (tactics) => tactics.flatMap((t) => t.segments).reduce((sum, s) => sum + s.duration_s, 0);

// ---- what is said aloud -------------------------------------------------------------------

/**
 * The event in words, for the announcer. A new segment also says why we are not heard.
 * @param {AgendaView | null} before @param {AgendaView} view @param {AgendaEvent} event
 */
function eventText(before, view, event) {
  const now = current(view);
  switch (event.kind) {
    case 'segment_started': {
      if (!now) return null;
      const who = presenterText(view, now.tactic);
      const head = `Now: ${SEGMENT_LABEL[now.segment.kind]}, ${now.tactic.title}${who ? `, ${who}` : ''}.`;
      const why = state.role === 'observer' ? null : whyNotHeard(view, panel.roster);
      return [head, `${spokenDuration(now.segment.duration_s)}.`, why].filter(Boolean).join(' ');
    }
    case 'warning': return `${spokenDuration(event.left_s)} left in this segment.`;
    case 'time_up': return 'Time is up for this segment.';
    case 'overrun': return view.plan.time_up === 'advance' ? null : `This segment is ${spokenDuration(view.plan.grace_s)} over time.`;
    case 'floor_closed': return 'Time is up: the presenter’s floor is closed.';
    case 'paused': return 'The agenda is paused.';
    case 'resumed': return 'The agenda runs again.';
    case 'extended': {
      const same = before && before.tactic === view.tactic && before.segment === view.segment;
      const added = view.extended_s - (same ? before.extended_s : 0);
      return added > 0 ? `${spokenDuration(added)} added to this segment.` : 'This segment got more time.';
    }
    case 'ended': return 'The agenda has ended. Everyone can speak.';
    default: return null;
  }
}

/** A change of floor alone: news only when it is ours. @param {AgendaView | null} before @param {AgendaView} view */
function floorNews(before, view) {
  const had = Boolean(before && isLive(before) && before.floor.given.includes(state.you));
  const has = floorGivenToUs();
  if (has && !had) return 'A facilitator gave you the floor: everyone hears you.';
  if (had && !has && isLive(view)) return 'You no longer have the floor.';
  return null;
}

// ---- the controls -------------------------------------------------------------------------

/** @param {boolean} busy */
function setBusy(busy) {
  panel.busy = busy;
  clearTimeout(panel.busyTimer);
  if (busy) panel.busyTimer = setTimeout(() => setBusy(false), BUSY_MS);
  $('agenda-controls').setAttribute('aria-busy', String(busy));
}

/** @param {AgendaAction} action @param {number} [seconds] */
function control(action, seconds) {
  if (panel.busy || !state.conn) return;
  setBusy(true);
  state.conn.agendaControl(action, seconds);
}

/** Where focus goes when the button it was on hides or turns off. */
const FOCUS_NEXT = /** @type {Record<string, string[]>} */ ({
  'ag-start': ['ag-pause', 'ag-next'],
  'ag-pause': ['ag-resume'],
  'ag-resume': ['ag-pause'],
  'ag-prev': ['ag-next'],
  'ag-next': ['ag-start'],
  'ag-skip': ['ag-next', 'ag-start'],
  'ag-extend': ['ag-start'],
});

/** A control that held focus and is gone: focus its successor, not the page. @param {Element | null} before */
function keepFocus(before) {
  if (!(before instanceof HTMLButtonElement) || !before.id.startsWith('ag-')) return;
  if (before.offsetParent !== null && !before.disabled) return;
  const next = [...(FOCUS_NEXT[before.id] ?? []), 'ag-next', 'ag-start']
    .map((id) => $(id, HTMLButtonElement))
    .find((b) => !b.hidden && !b.disabled && !b.closest('[hidden]'));
  (next ?? $('agenda-heading')).focus();
}

export function wireAgenda() {
  on('ag-start', 'click', () => control('start'));
  on('ag-pause', 'click', () => control('pause'));
  on('ag-resume', 'click', () => control('resume'));
  on('ag-next', 'click', () => control('next'));
  on('ag-prev', 'click', () => control('previous'));
  on('ag-skip', 'click', () => control('skip_tactic'));
  on('ag-extend', 'click', () => control('extend', Number($('ag-extend-by', HTMLSelectElement).value)));
  on('ag-end', 'click', () => $('end-dialog', HTMLDialogElement).showModal());
  on('end-cancel', 'click', () => $('end-dialog', HTMLDialogElement).close());
  on('end-form', 'submit', (e) => {
    e.preventDefault();
    $('end-dialog', HTMLDialogElement).close();
    control('end');
  });
  on('end-dialog', 'close', () => {
    const back = isLive(state.agenda) ? $('ag-end') : $('ag-start');
    if (!back.closest('[hidden]')) back.focus();
  });
  on('agenda-edit', 'click', () => {
    if (state.agenda) openEditor(state.agenda, panel.roster);
  });
  wireEditor();
}
