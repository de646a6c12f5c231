// @ts-check
/**
 * The agenda's countdown: the timer in the agenda panel, its progress bar, and the chip in
 * the call header that keeps it in sight while the panel is closed.
 *
 * It reads the server's clock (clock.js), never Date.now(), so that it agrees across pages
 * even when a page's clock is minutes off. It redraws when its shown second changes, not
 * every 1000 ms from whenever, so all pages turn over together. The timer is silent for
 * screen readers (`aria-live="off"`); agenda.js announces the events.
 */
import { current, isLive } from '/assets/floor.js';
import { state } from '/assets/state.js';
import { $ } from '/assets/ui.js';
import { SEGMENT_SHORT, duration } from '/assets/words.js';

/** @typedef {import('/assets/protocol.js').AgendaView} AgendaView */

const countdown = {
  /** The next redraw. @type {ReturnType<typeof setTimeout> | undefined} */
  timer: undefined,
  /** The segment the progress bar shows: a new one jumps, it does not slide back. */
  barKey: '',
};

/** The server's Unix ms now, as this page estimates it. */
const serverNow = () => state.conn?.clock.now() ?? Date.now();

/** Milliseconds left in the segment (negative over time), or null when no clock runs. @param {AgendaView | null} view */
function remainingMs(view) {
  if (view?.phase === 'running' && view.deadline !== null) return view.deadline - serverNow();
  if (view?.phase === 'paused' && view.remaining_ms !== null) return view.remaining_ms;
  return null;
}

/** "4:05", "1:02:03"; over time "+0:12 over". @param {number} shown whole seconds, negative over time */
export function clockText(shown) {
  const s = Math.abs(shown);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  const text = h ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
  return shown < 0 ? `+${text} over` : text;
}

/** The largest warning mark inside the segment, in seconds, if any. @param {AgendaView} view @param {number} total ms */
function warningMark(view, total) {
  const marks = view.plan.warn_at_s.filter((m) => m * 1000 < total);
  return marks.length ? Math.max(...marks) : null;
}

/** Redraw the countdown from `state.agenda`, then again when its shown second changes. */
export function tick() {
  clearTimeout(countdown.timer);
  const view = state.agenda;
  const left = remainingMs(view);
  const now = current(view);
  if (!view || !now || left === null) {
    renderChip();
    return;
  }
  const total = (now.segment.duration_s + view.extended_s) * 1000;
  // Up: the ceiling, so that 0:00 shows at time up. Over: whole seconds past it.
  const shown = left > 0 ? Math.ceil(left / 1000) : -Math.floor(-left / 1000);
  const mark = warningMark(view, total);
  const mood = left <= 0 ? 'over' : mark !== null && shown <= mark ? 'warning' : 'normal';
  $('agenda-timer').textContent = clockText(shown);
  $('agenda-countdown').dataset.mood = mood;
  const added = view.extended_s ? `, ${duration(view.extended_s)} added` : '';
  $('agenda-timer-sub').textContent = left <= 0 ? `Time is up · planned ${duration(total / 1000)}${added}` : `of ${duration(total / 1000)}${added}`;
  const done = total > 0 ? Math.min(1, Math.max(0, 1 - left / total)) : 1;
  setProgress(done, `${view.tactic}/${view.segment}/${view.started_at}`);
  renderChip(clockText(shown), mood, SEGMENT_SHORT[now.segment.kind]);
  if (view.phase !== 'running') return;
  const untilTurn = left > 0 ? left % 1000 || 1000 : 1000 - (-left % 1000);
  countdown.timer = setTimeout(tick, untilTurn + 5);
}

/** The bar slides within a segment, and jumps to a new one. @param {number} done 0 to 1 @param {string} key */
function setProgress(done, key) {
  const bar = $('agenda-progress');
  const jump = key !== countdown.barKey;
  countdown.barKey = key;
  if (jump) bar.style.transition = 'none';
  bar.style.width = `${(done * 100).toFixed(2)}%`;
  if (jump) {
    void bar.offsetWidth; // apply the width before the transition returns
    bar.style.transition = '';
  }
}

/**
 * The header's chip: the countdown while the panel is closed.
 * @param {string} [time] @param {string} [mood] @param {string} [kind]
 */
function renderChip(time, mood, kind) {
  const chip = $('agenda-chip');
  const view = state.agenda;
  chip.hidden = !time || !isLive(view) || !$('agenda').hidden;
  if (!time) return;
  chip.dataset.mood = view?.phase === 'paused' ? 'paused' : mood ?? 'normal';
  $('agenda-chip-kind').textContent = kind ?? '';
  $('agenda-chip-time').textContent = time;
}
