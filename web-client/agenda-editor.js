// @ts-check
/**
 * The agenda editor: a facilitator's dialog to add, remove, reorder and fill in the tactics
 * (title, organisation, advocate, each segment's minutes) and to set what time up does. It
 * works on a draft and sends the whole plan (`agenda_set`) on Save. The dialog stays open
 * until the server's `agenda` message carries that plan; a refusal shows in the dialog.
 *
 * While the agenda is under way, the tactic under way must stay, under its title: its title
 * is read-only and it cannot be removed. It can still move, and its minutes change.
 */
import { isAdvocate, isLive } from '/assets/floor.js';
import { MAX_TITLE_CHARS, MAX_SEGMENT_MIN, MAX_TACTICS } from '/assets/protocol.js';
import { state } from '/assets/state.js';
import { $, announce, el, icon, on, plural, setNotice, syncList } from '/assets/ui.js';
import { ROLE_LABEL, SEGMENT_LABEL, SEGMENT_SHORT, TIME_UP_LABEL, duration } from '/assets/words.js';

/** @typedef {import('/assets/protocol.js').AgendaView} AgendaView */
/** @typedef {import('/assets/protocol.js').Plan} Plan */
/** @typedef {import('/assets/protocol.js').Advocate} Advocate */
/** @typedef {import('/assets/protocol.js').SegmentKind} SegmentKind */
/** @typedef {import('/assets/protocol.js').TimeUpPolicy} TimeUpPolicy */
/** @typedef {import('/assets/protocol.js').ParticipantInfo} ParticipantInfo */
/**
 * A tactic being edited. Minutes stay text until Save, so that half-typed values are kept.
 * @typedef {{uid: number, title: string, organisation: string, advocate: Advocate | null,
 *   segments: {kind: SegmentKind, minutes: string}[]}} Draft
 */

/** Without an answer to Save in this long, the dialog says so. */
const SAVE_WAIT_MS = 8000;
/** A new tactic's segments: the Skill Share shape. */
const NEW_SEGMENTS = /** @type {const} */ ([['organisation', 5], ['tactic', 5], ['conversation', 15]]);

/** Refusals of a save, in words. @type {Record<string, string>} */
const REFUSED = {
  agenda_state: 'The tactic under way must stay in the agenda, under its title. The agenda may just have moved on to another tactic: check the running order and save again.',
  bad_agenda: `The server did not take this agenda. Each tactic needs a title of 1 to ${MAX_TITLE_CHARS} characters, and each segment lasts at most ${MAX_SEGMENT_MIN} minutes; there can be ${MAX_TACTICS} tactics at most.`,
  forbidden: 'Only facilitators can change the agenda.',
};

const editor = {
  /** @type {Draft[]} */
  tactics: [],
  /** The plan the draft started from. @type {Plan | null} */
  base: null,
  /** The plan sent, until the server confirms or refuses it. @type {Plan | null} */
  saving: null,
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  saveTimer: undefined,
  /** @type {ParticipantInfo[]} */
  roster: [],
  /** The title of the tactic under way, which must stay; null before the start. @type {string | null} */
  locked: null,
  nextUid: 1,
};

const dialog = () => $('agenda-editor', HTMLDialogElement);

/**
 * Open the editor on the agenda as it is now.
 * @param {AgendaView} view @param {ParticipantInfo[]} roster to choose advocates from
 */
export function openEditor(view, roster) {
  editor.roster = roster;
  load(view);
  if (!dialog().open) dialog().showModal();
  const first = /** @type {HTMLInputElement | null} */ ($('editor-tactics').querySelector('input:not([readonly])'));
  (first ?? $('editor-add')).focus();
}

/** @param {AgendaView} view */
function load(view) {
  editor.base = view.plan;
  editor.locked = isLive(view) ? view.plan.tactics[view.tactic]?.title ?? null : null;
  editor.tactics = view.plan.tactics.map((t) => ({
    uid: editor.nextUid++,
    title: t.title,
    organisation: t.organisation,
    advocate: t.advocate,
    segments: t.segments.map((s) => ({ kind: s.kind, minutes: String(Math.round((s.duration_s / 60) * 100) / 100) })),
  }));
  $('editor-time-up', HTMLSelectElement).value = view.plan.time_up;
  $('editor-grace', HTMLInputElement).value = String(view.plan.grace_s);
  $('editor-hand-raise', HTMLInputElement).checked = view.plan.hand_raise;
  $('editor-changed').hidden = true;
  setNotice($('editor-error'), null);
  setSaving(null);
  render();
}

/**
 * Every `agenda` message: the save it confirms closes the dialog; someone else's edit is
 * pointed out; the tactic under way is kept up to date.
 * @param {AgendaView} view
 */
export function agendaEdited(view) {
  if (!dialog().open) return;
  if (editor.saving && samePlan(view.plan, editor.saving)) {
    setSaving(null);
    dialog().close();
    announce('Agenda saved.');
    return;
  }
  editor.locked = isLive(view) ? view.plan.tactics[view.tactic]?.title ?? null : null;
  if (!editor.saving && editor.base && !samePlan(view.plan, editor.base)) {
    $('editor-changed').hidden = false;
    editor.base = view.plan;
  }
  render();
}

/** People joined or left: the advocate choices follow. @param {ParticipantInfo[]} roster */
export function editorRosterChanged(roster) {
  editor.roster = roster;
  if (dialog().open) render();
}

/** A refusal of our save, if one is under way; returns whether it was shown. @param {string} code */
export function editorRefused(code) {
  if (!editor.saving || !dialog().open) return false;
  setSaving(null);
  setNotice($('editor-error'), REFUSED[code] ?? REFUSED.bad_agenda);
  return true;
}

/** Close and forget, for the next call. */
export function resetEditor() {
  setSaving(null);
  if (dialog().open) dialog().close();
}

// ---- drawing ------------------------------------------------------------------------------

function render() {
  syncList($('editor-tactics'), editor.tactics, (t) => String(t.uid), makeCard, updateCard);
  const n = editor.tactics.length;
  $('editor-add', HTMLButtonElement).disabled = n >= MAX_TACTICS;
  const seconds = editor.tactics.flatMap((t) => t.segments).reduce((sum, s) => sum + (toSeconds(s.minutes) ?? 0), 0);
  $('editor-total').textContent = `${plural(n, 'tactic', 'tactics')} · ${duration(seconds)} planned`;
  const live = $('editor-live');
  live.hidden = !editor.locked;
  live.textContent = editor.locked
    ? `The agenda is under way. “${editor.locked}” stays, under its title; its minutes can change, and the countdown follows.`
    : '';
}

/** @param {Draft} t */
function makeCard(t) {
  const uid = t.uid;
  const find = () => editor.tactics.find((d) => d.uid === uid);
  const row = el('li', 'tactic-card');
  const box = el('div', 'tactic-box');
  box.setAttribute('role', 'group');
  box.setAttribute('aria-labelledby', `t${uid}-legend`);
  const legend = el('span', 'tactic-legend');
  legend.id = `t${uid}-legend`;
  const head = el('div', 'tactic-head');
  const badge = el('span', 'pill pill-live', 'Under way');
  const tools = el('div', 'tactic-tools');
  for (const [cls, glyph] of [['move-up', 'i-up'], ['move-down', 'i-down'], ['remove', 'i-trash']]) {
    const b = el('button', `icon-btn ${cls}`);
    b.setAttribute('type', 'button');
    b.append(icon(glyph));
    tools.append(b);
  }
  head.append(legend, badge, tools);
  const fields = el('div', 'field-row');
  fields.append(
    field(`t${uid}-title`, 'Title', textInput(MAX_TITLE_CHARS, (v) => { const d = find(); if (d) d.title = v; })),
    field(`t${uid}-org`, 'Organisation', textInput(MAX_TITLE_CHARS, (v) => { const d = find(); if (d) d.organisation = v; })),
  );
  const advocate = document.createElement('select');
  advocate.className = 'advocate';
  advocate.addEventListener('change', () => {
    const d = find();
    if (d) d.advocate = parseAdvocate(advocate.value);
  });
  const segs = el('div', 'segment-row');
  t.segments.forEach((s, i) => {
    const input = document.createElement('input');
    input.type = 'number';
    input.inputMode = 'decimal';
    input.min = '0.5';
    input.max = String(MAX_SEGMENT_MIN);
    input.step = '0.5';
    input.className = 'minutes';
    input.addEventListener('input', () => {
      const d = find();
      if (d?.segments[i]) d.segments[i].minutes = input.value;
      fixed(input);
      render();
    });
    // The label shows the short kind; the name says it whole ("Tactic presentation, minutes").
    input.setAttribute('aria-label', `${SEGMENT_LABEL[s.kind]}, minutes`);
    segs.append(field(`t${uid}-s${i}`, SEGMENT_SHORT[s.kind], input, s.kind));
  });
  const minutes = el('div', 'segments');
  minutes.append(el('p', 'segments-head', 'Minutes per segment'), segs);
  box.append(head, fields, field(`t${uid}-advocate`, 'Advocate', advocate), minutes);
  row.append(box);
  const [up, down, remove] = tools.children;
  up.addEventListener('click', () => move(uid, -1));
  down.addEventListener('click', () => move(uid, 1));
  remove.addEventListener('click', () => removeTactic(uid));
  return row;
}

/** @param {string} id @param {string} text @param {HTMLElement} control @param {string} [kind] */
function field(id, text, control, kind) {
  const wrap = el('div', 'field');
  const label = el('label', '', text);
  label.setAttribute('for', id);
  if (kind) wrap.dataset.kind = kind;
  control.id = id;
  wrap.append(label, control);
  return wrap;
}

/** @param {number} max @param {(value: string) => void} set */
function textInput(max, set) {
  const input = document.createElement('input');
  input.type = 'text';
  input.maxLength = max;
  input.autocomplete = 'off';
  input.addEventListener('input', () => {
    set(input.value);
    fixed(input);
  });
  return input;
}

/** A field that was refused is being edited: the complaint about it goes. @param {HTMLElement} input */
function fixed(input) {
  if (input.getAttribute('aria-invalid') !== 'true') return;
  input.removeAttribute('aria-invalid');
  setNotice($('editor-error'), null);
}

/** @param {HTMLElement} row @param {Draft} t @param {number} i */
function updateCard(row, t, i) {
  const n = i + 1;
  const last = i === editor.tactics.length - 1;
  const locked = editor.locked !== null && t.title === editor.locked;
  /** @param {string} sel */
  const part = (sel) => /** @type {HTMLElement} */ (row.querySelector(sel));
  part('.tactic-legend').textContent = `Tactic ${n}`;
  part('.pill-live').hidden = !locked;
  row.classList.toggle('locked', locked);
  /** @type {[string, string, boolean][]} */
  const tools = [['.move-up', `Move Tactic ${n} up`, i === 0], ['.move-down', `Move Tactic ${n} down`, last],
    ['.remove', `Remove Tactic ${n}`, locked || editor.tactics.length === 1]];
  for (const [sel, name, off] of tools) {
    const b = /** @type {HTMLButtonElement} */ (part(sel));
    b.setAttribute('aria-label', name);
    b.title = name;
    b.disabled = off;
  }
  const title = /** @type {HTMLInputElement} */ (part(`#t${t.uid}-title`));
  if (title.value !== t.title) title.value = t.title;
  title.readOnly = locked;
  const org = /** @type {HTMLInputElement} */ (part(`#t${t.uid}-org`));
  if (org.value !== t.organisation) org.value = t.organisation;
  fillAdvocates(/** @type {HTMLSelectElement} */ (part('select.advocate')), t.advocate);
  t.segments.forEach((s, j) => {
    const input = /** @type {HTMLInputElement} */ (part(`#t${t.uid}-s${j}`));
    if (input.value !== s.minutes) input.value = s.minutes;
  });
}

/**
 * The people who may present, and whoever the plan already names.
 * @param {HTMLSelectElement} select @param {Advocate | null} chosen
 */
function fillAdvocates(select, chosen) {
  const people = editor.roster.filter((p) => p.role !== 'observer');
  const order = { advocate: 0, participant: 1, facilitator: 2, observer: 3 };
  people.sort((a, b) => order[a.role] - order[b.role]);
  const options = [new Option('Not assigned yet', '')];
  // Someone who came with an invite is named by it, so the choice holds if they reconnect.
  const valueOf = (/** @type {import('/assets/protocol.js').ParticipantInfo} */ p) =>
    (p.invite ? `invite:${p.invite}` : `participant:${p.id}`);
  for (const p of people) options.push(new Option(`${p.name} (${ROLE_LABEL[p.role]})`, valueOf(p)));
  const present = people.some((p) => isAdvocate(chosen, p));
  if (chosen?.by === 'invite' && !present) options.push(new Option('Whoever joins with their advocate invite', `invite:${chosen.id}`));
  if (chosen?.by === 'participant' && !present) {
    options.push(new Option('Someone who has left the call', `participant:${chosen.id}`));
  }
  const value = chosen ? `${chosen.by}:${chosen.id}` : '';
  const key = options.map((o) => `${o.value}=${o.text}`).join('|');
  if (select.dataset.options !== key) {
    select.replaceChildren(...options);
    select.dataset.options = key;
  }
  select.value = value;
}

/** @param {string} value @returns {Advocate | null} */
function parseAdvocate(value) {
  const at = value.indexOf(':');
  if (at < 0) return null;
  const by = value.slice(0, at);
  return by === 'invite' || by === 'participant' ? { by, id: value.slice(at + 1) } : null;
}

// ---- editing ------------------------------------------------------------------------------

/** @param {number} uid @param {number} by -1 up, 1 down */
function move(uid, by) {
  const from = editor.tactics.findIndex((t) => t.uid === uid);
  const to = from + by;
  if (from < 0 || to < 0 || to >= editor.tactics.length) return;
  const [t] = editor.tactics.splice(from, 1);
  editor.tactics.splice(to, 0, t);
  render();
  // At the top or the bottom, this button turns off: its other arrow keeps the focus.
  const row = $('editor-tactics').children[to];
  const same = /** @type {HTMLButtonElement | null} */ (row?.querySelector(by < 0 ? '.move-up' : '.move-down'));
  const other = /** @type {HTMLButtonElement | null} */ (row?.querySelector(by < 0 ? '.move-down' : '.move-up'));
  (same && !same.disabled ? same : other)?.focus();
  announce(`${t.title || 'The tactic'} is now tactic ${to + 1} of ${editor.tactics.length}.`);
}

/** @param {number} uid */
function removeTactic(uid) {
  const at = editor.tactics.findIndex((t) => t.uid === uid);
  if (at < 0 || editor.tactics.length === 1) return;
  const [gone] = editor.tactics.splice(at, 1);
  render();
  const rows = $('editor-tactics').children;
  const next = rows[Math.min(at, rows.length - 1)];
  /** @type {HTMLElement | null} */ (next?.querySelector('input:not([readonly])') ?? next?.querySelector('.move-up'))?.focus();
  announce(`${gone.title || 'The tactic'} removed. ${plural(editor.tactics.length, 'tactic', 'tactics')} left.`);
}

function addTactic() {
  if (editor.tactics.length >= MAX_TACTICS) return;
  const titles = new Set(editor.tactics.map((t) => t.title));
  let n = editor.tactics.length + 1;
  while (titles.has(`Tactic ${n}`)) n += 1;
  const t = {
    uid: editor.nextUid++,
    title: `Tactic ${n}`,
    organisation: '',
    advocate: null,
    segments: NEW_SEGMENTS.map(([kind, m]) => ({ kind, minutes: String(m) })),
  };
  editor.tactics.push(t);
  render();
  const input = $(`t${t.uid}-title`, HTMLInputElement);
  input.focus();
  input.select();
  announce(`Tactic ${editor.tactics.length} added.`);
}

/** Minutes as typed, to whole seconds; null if not a usable length. @param {string} minutes */
function toSeconds(minutes) {
  const m = Number(minutes.replace(',', '.'));
  if (!minutes.trim() || !Number.isFinite(m)) return null;
  const s = Math.round(m * 60);
  return s >= 1 && s <= MAX_SEGMENT_MIN * 60 ? s : null;
}

/**
 * The plan to send, or what is wrong and where.
 * @returns {{plan: Plan} | {error: string, at: HTMLElement}}
 */
function build() {
  const seen = new Set();
  const tactics = [];
  for (const [i, t] of editor.tactics.entries()) {
    const locked = editor.locked !== null && t.title === editor.locked;
    const title = locked ? t.title : t.title.trim();
    const n = i + 1;
    if (!title) return { error: `Tactic ${n} needs a title.`, at: $(`t${t.uid}-title`) };
    if (seen.has(title)) return { error: `Two tactics are called “${title}”. Give each its own title.`, at: $(`t${t.uid}-title`) };
    seen.add(title);
    const segments = [];
    for (const [j, s] of t.segments.entries()) {
      const duration_s = toSeconds(s.minutes);
      if (duration_s === null) {
        return { error: `Tactic ${n}: the ${SEGMENT_LABEL[s.kind].toLowerCase()} needs a length from 0.5 to ${MAX_SEGMENT_MIN} minutes.`, at: $(`t${t.uid}-s${j}`) };
      }
      segments.push({ kind: s.kind, duration_s });
    }
    tactics.push({ title, organisation: t.organisation.trim(), advocate: t.advocate, segments });
  }
  const grace = Number($('editor-grace', HTMLInputElement).value);
  if (!Number.isInteger(grace) || grace < 0 || grace > MAX_SEGMENT_MIN * 60) {
    return { error: `The grace period is a whole number of seconds, up to ${MAX_SEGMENT_MIN * 60}.`, at: $('editor-grace') };
  }
  const base = editor.base;
  return {
    plan: {
      tactics,
      time_up: /** @type {TimeUpPolicy} */ ($('editor-time-up', HTMLSelectElement).value),
      grace_s: grace,
      warn_at_s: base?.warn_at_s ?? [60],
      hand_raise: $('editor-hand-raise', HTMLInputElement).checked,
    },
  };
}

/** @param {SubmitEvent} e */
function save(e) {
  e.preventDefault();
  if (editor.saving) return;
  const built = build();
  if ('error' in built) {
    setNotice($('editor-error'), built.error);
    built.at.setAttribute('aria-invalid', 'true');
    built.at.focus();
    return;
  }
  setNotice($('editor-error'), null);
  if (editor.base && samePlan(built.plan, editor.base)) {
    dialog().close();
    return;
  }
  setSaving(built.plan);
  state.conn?.setAgenda(built.plan);
}

/** @param {Plan | null} plan */
function setSaving(plan) {
  editor.saving = plan;
  clearTimeout(editor.saveTimer);
  const button = $('editor-save');
  button.textContent = plan ? 'Saving…' : 'Save agenda';
  button.setAttribute('aria-disabled', String(Boolean(plan)));
  if (plan) {
    editor.saveTimer = setTimeout(() => {
      setSaving(null);
      setNotice($('editor-error'), 'The server did not answer. Check your connection, then save again.');
    }, SAVE_WAIT_MS);
  }
}

/** Whether two plans say the same, whatever the order of their keys. @param {Plan} a @param {Plan} b */
function samePlan(a, b) {
  /** @param {Plan} p */
  const canon = (p) => JSON.stringify([
    p.tactics.map((t) => [t.title, t.organisation, t.advocate ? [t.advocate.by, t.advocate.id] : null,
      t.segments.map((s) => [s.kind, s.duration_s])]),
    p.time_up, p.grace_s, p.warn_at_s, p.hand_raise,
  ]);
  return canon(a) === canon(b);
}

// ---- wiring -------------------------------------------------------------------------------

export function wireEditor() {
  $('editor-time-up').replaceChildren(...Object.entries(TIME_UP_LABEL).map(([value, text]) => new Option(text, value)));
  on('editor-form', 'submit', save);
  on('editor-add', 'click', addTactic);
  on('editor-grace', 'input', () => fixed($('editor-grace')));
  on('editor-cancel', 'click', () => dialog().close());
  on('editor-close', 'click', () => dialog().close());
  on('editor-reload', 'click', () => {
    if (state.agenda) load(state.agenda);
  });
  on('agenda-editor', 'close', () => {
    setSaving(null);
    const back = $('agenda-edit');
    if (!back.hidden && !back.closest('[hidden]')) back.focus();
  });
}
