// The tactic agenda in real Chromium against the real server (issue 19): a facilitator page,
// joined through its invite, and a participant page whose clock runs 7 minutes fast. The
// facilitator starts the agenda: both pages show the same segment, and their countdowns turn
// over within half a second of each other, because both count on the server's clock. "Next
// segment" moves both. The floor is judged by what the facilitator's page received
// (getStats), not by what the UI claims: the participant is not heard during a
// presentation, and the page says why; a facilitator can give them the floor; in the open
// conversation they are heard.
//
// Run (as root, inside a network namespace that holds only loopback):
//   unshare --net sh -c 'ip link set lo up && ROUNDTABLE_BIN=target/debug/roundtable node --test tests/browser/agenda.test.mjs'
// Screenshots go to $SHOTS (default target/screenshots).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as h from './harness.mjs';
import { TEST_TIMEOUT, WAIT, expectMediaFrom, joinAs, tiles } from './harness.mjs';

const SHOTS = process.env.SHOTS ?? h.SHOTS;
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
/** How far the participant's clock is off. */
const SHIFT_MS = 7 * 60_000;
/** Countdowns on two pages must turn over closer together than this. */
const AGREE_MS = 500;

const env = {
  bin: '', dataDir: '', userDataDir: '', base: '',
  /** @type {import('node:child_process').ChildProcess | null} */
  server: null,
  /** @type {import('playwright-core').BrowserContext | null} */
  context: null,
  facilitatorPath: '',
  openPath: '',
};
/** @type {Record<string, import('playwright-core').Page>} */
const pages = {};


/** Runs in the participant's page first: its wall clock is 7 minutes fast (Date.now and new Date()). */
function fastClock() {
  const shift = 7 * 60_000;
  const RealDate = Date;
  const realNow = RealDate.now.bind(RealDate);
  class FastDate extends RealDate {
    constructor(...args) {
      if (args.length) super(...args);
      else super(realNow() + shift);
    }
    static now() {
      return realNow() + shift;
    }
  }
  window.Date = FastDate;
}

const panel = (page) => page.getByRole('complementary', { name: 'Agenda' });
const timer = (page) => page.getByRole('timer', { name: /Time left/ });
/** The notice above the grid that says why we are not heard. */
const floorNotice = (page) => page.locator('#floor-notice');

/** Open the agenda panel if it is closed. */
async function openAgenda(page) {
  if (!(await panel(page).isVisible())) await page.getByRole('button', { name: 'Agenda', exact: true }).click();
  await panel(page).waitFor({ timeout: WAIT });
}

/** Wait until both pages' agenda panels say `text`. */
async function bothShow(text) {
  for (const name of ['Fran', 'Pat']) {
    await panel(pages[name]).getByText(text, { exact: false }).first().waitFor({ timeout: WAIT }).catch((e) => {
      throw new Error(`${name}'s agenda panel does not show "${text}": ${e.message}`);
    });
  }
}

/** The agenda panel's card for the segment under way, as text. */
const nowText = (page) => page.locator('#agenda-now').innerText();

/** Record, in the page, each change of the countdown's text with the machine's real time. */
const recordTurns = (page) => page.evaluate(() => {
  const node = document.querySelector('[role="timer"]');
  window.__turns = [];
  new MutationObserver(() => {
    window.__turns.push([node.textContent, performance.timeOrigin + performance.now()]);
  }).observe(node, { childList: true, characterData: true, subtree: true });
});

/** Screenshots of `page` at desktop and phone widths into $SHOTS. */
async function shoot(page, name) {
  await page.setViewportSize(DESKTOP);
  await page.screenshot({ path: path.join(SHOTS, `${name}-desktop.png`) });
  await page.setViewportSize(PHONE);
  await page.screenshot({ path: path.join(SHOTS, `${name}-phone.png`) });
  await page.setViewportSize(DESKTOP);
}

// ---- what Fran receives of Pat (getStats, per tile) ----------------------------------------

const inbound = (page, id, kind) => page.evaluate(([p, k]) => window.__roundtableTileInbound(p, k), [id, kind]);

async function grows(page, id, kind, field, by, what) {
  const target = (await inbound(page, id, kind))[field] + by;
  await page.waitForFunction(
    ([p, k, f, t]) => (window.__roundtableTileNow[p]?.[k]?.[f] ?? -1) >= t,
    [id, kind, field, target],
    { timeout: WAIT },
  ).catch((e) => {
    throw new Error(`${what}: ${field} did not grow by ${by} in ${WAIT} ms: ${e.message}`);
  });
}

/** Whether Fran hears Pat: over two seconds of Pat's video, Pat's audio grows, or stays flat. */
async function franHearsPat(pat, heard, what) {
  // What was in flight when the floor changed arrives first.
  await grows(pages.Fran, pat, 'video', 'framesDecoded', 10, `${what}: video before`);
  const start = await inbound(pages.Fran, pat, 'audio');
  await grows(pages.Fran, pat, 'video', 'framesDecoded', 60, `${what}: two seconds of video`);
  const end = await inbound(pages.Fran, pat, 'audio');
  const got = end.packetsReceived - start.packetsReceived;
  if (heard) assert.ok(got >= 25, `${what}: Fran should hear Pat, but received only ${got} audio packets in two seconds`);
  else assert.equal(got, 0, `${what}: Fran should not hear Pat, but received ${got} audio packets`);
}

describe('the agenda in real Chromium: one clock, a floor the media plane enforces', { timeout: TEST_TIMEOUT * 6 }, () => {
  before(async () => {
    env.bin = h.requireBinary();
    env.dataDir = mkdtempSync(path.join(tmpdir(), 'roundtable-data-'));
    env.userDataDir = mkdtempSync(path.join(tmpdir(), 'roundtable-chromium-'));
    const room = h.cli(env.bin, env.dataDir, ['room', 'create', '--title', 'Skill Share: tenant organising', '--json']);
    for (const key of ['facilitator_url', 'open_url']) assert.ok(room[key], `room create JSON lacks "${key}": ${JSON.stringify(room)}`);
    env.facilitatorPath = h.pathOf(room.facilitator_url);
    env.openPath = h.pathOf(room.open_url);
    await h.startSuite(env, 'agenda-server.log', SHOTS);
  });

  after(() => h.endSuite(env));

  it('seats a facilitator, and a participant whose clock is 7 minutes fast', { timeout: TEST_TIMEOUT }, async () => {
    pages.Fran = await h.openPage(env.context, env.base, 'Fran', env.facilitatorPath);
    await joinAs(pages.Fran, 'Fran Okafor');
    pages.Pat = await h.openPage(env.context, env.base, 'Pat', env.openPath, [fastClock]);
    await joinAs(pages.Pat, 'Pat Rivera');
    await expectMediaFrom(pages.Fran, 1, 'Fran');
    await expectMediaFrom(pages.Pat, 1, 'Pat');
    const [fran, pat] = await Promise.all([pages.Fran, pages.Pat].map((p) => p.evaluate(() => Date.now())));
    assert.ok(Math.abs(pat - fran - SHIFT_MS) < 5000, `Pat's clock is 7 minutes fast (it is ${pat - fran} ms ahead)`);
    // A new room starts with the Skill Share template: three tactics, ready to start.
    await panel(pages.Fran).getByText('3 tactics · 1 h 15 min').waitFor({ timeout: WAIT });
    await openAgenda(pages.Pat);
    await panel(pages.Pat).getByText('The facilitator starts the agenda.', { exact: false }).waitFor({ timeout: WAIT });
    assert.equal(await panel(pages.Pat).getByRole('button', { name: 'Start agenda' }).count(), 0, 'no controls for a participant');
    await shoot(pages.Fran, 'agenda-ready-facilitator');
    await shoot(pages.Pat, 'agenda-ready-participant');
  });

  it('starts: both pages show the same segment, and their countdowns agree within half a second', { timeout: TEST_TIMEOUT }, async () => {
    await panel(pages.Fran).getByRole('button', { name: 'Start agenda' }).click();
    await bothShow('Organisation presentation');
    await bothShow('Tactic 1 of 3 · Segment 1 of 3');
    assert.equal(await nowText(pages.Fran), await nowText(pages.Pat), 'both pages describe the segment alike');

    await Promise.all([pages.Fran, pages.Pat].map(recordTurns));
    // Wait for the countdowns to turn over four times on both pages.
    await Promise.all([pages.Fran, pages.Pat].map((p) => p.waitForFunction(() => window.__turns.length >= 4, null, { timeout: WAIT })));
    const [fran, pat] = await Promise.all([pages.Fran, pages.Pat].map((p) => p.evaluate(() => window.__turns)));
    const patAt = new Map(pat);
    const gaps = fran.filter(([text]) => patAt.has(text)).map(([text, at]) => ({ text, ms: Math.round(patAt.get(text) - at) }));
    assert.ok(gaps.length >= 2, `both countdowns turned over to the same values at least twice (Fran ${JSON.stringify(fran)}, Pat ${JSON.stringify(pat)})`);
    for (const { text, ms } of gaps) {
      assert.ok(Math.abs(ms) < AGREE_MS, `the countdowns reached ${text} ${ms} ms apart`);
    }
    console.log(`# countdowns turned over ${gaps.map((g) => `${g.text} ${g.ms} ms`).join(', ')} apart (Pat minus Fran)`);
    // Read at the same moment, they show the same time, give or take a turn in flight.
    const secs = (t) => t.split(':').reduce((s, x) => s * 60 + Number(x), 0);
    for (let i = 0; i < 5; i++) {
      const [a, b] = await Promise.all([pages.Fran, pages.Pat].map((p) => timer(p).textContent()));
      assert.ok(Math.abs(secs(a) - secs(b)) <= 1, `Fran's ${a} and Pat's ${b}`);
      assert.ok(secs(a) > 280 && secs(a) <= 300, `a 5-minute segment just started: ${a}`);
      // The next reading after Fran's countdown turns over once more.
      const seen = await pages.Fran.evaluate(() => window.__turns.length);
      await pages.Fran.waitForFunction((n) => window.__turns.length > n, seen, { timeout: WAIT });
    }
  });

  it('does not forward the participant\'s audio during the organisation\'s presentation, and says why', { timeout: TEST_TIMEOUT }, async () => {
    const pat = await tiles(pages.Fran).filter({ hasText: 'Pat Rivera' }).getAttribute('data-participant-id');
    await pages.Fran.evaluate((p) => window.__roundtableWatchTile(p), pat);
    await floorNotice(pages.Pat).getByText('Fran Okafor is presenting the organisation. You can speak in the open conversation.').waitFor({ timeout: WAIT });
    await franHearsPat(pat, false, 'organisation presentation');
    // Not a mute: Pat's microphone stays on, and Pat is heard again as soon as the floor opens.
    assert.equal(await pages.Pat.getByRole('button', { name: 'Mute', exact: true }).getAttribute('aria-pressed'), 'false');
    await panel(pages.Fran).getByText('Fran Okafor has the floor.', { exact: false }).waitFor({ timeout: WAIT });
    await shoot(pages.Fran, 'agenda-running-facilitator');
    await shoot(pages.Pat, 'agenda-running-participant');
  });

  it('moves both pages on "Next segment"; a facilitator gives the floor and takes it back', { timeout: TEST_TIMEOUT }, async () => {
    const pat = await tiles(pages.Fran).filter({ hasText: 'Pat Rivera' }).getAttribute('data-participant-id');
    await panel(pages.Fran).getByRole('button', { name: 'Next segment' }).click();
    await bothShow('Tactic presentation');
    await bothShow('Tactic 1 of 3 · Segment 2 of 3');
    await floorNotice(pages.Pat).getByText('No advocate presents this tactic', { exact: false }).waitFor({ timeout: WAIT });

    // The facilitator's menu on Pat's tile gives the floor.
    const tile = tiles(pages.Fran).filter({ hasText: 'Pat Rivera' });
    await tile.hover();
    await tile.getByRole('button', { name: 'Actions for Pat Rivera' }).click();
    await pages.Fran.getByRole('menu', { name: 'Actions for Pat Rivera' }).getByRole('menuitem', { name: 'Give floor' }).click();
    await floorNotice(pages.Pat).getByText('You have the floor: everyone hears you.').waitFor({ timeout: WAIT });
    await panel(pages.Fran).getByText('Given the floor: Pat Rivera').waitFor({ timeout: WAIT });
    await franHearsPat(pat, true, 'floor given');
    await shoot(pages.Pat, 'agenda-floor-given-participant');

    await tile.hover();
    await tile.getByRole('button', { name: 'Actions for Pat Rivera' }).click();
    await pages.Fran.getByRole('menu', { name: 'Actions for Pat Rivera' }).getByRole('menuitem', { name: 'Take back floor' }).click();
    await floorNotice(pages.Pat).getByText('No advocate presents this tactic', { exact: false }).waitFor({ timeout: WAIT });
    await franHearsPat(pat, false, 'floor taken back');
  });

  it('opens the floor in the conversation: the participant is heard', { timeout: TEST_TIMEOUT }, async () => {
    const pat = await tiles(pages.Fran).filter({ hasText: 'Pat Rivera' }).getAttribute('data-participant-id');
    await panel(pages.Fran).getByRole('button', { name: 'Next segment' }).click();
    await bothShow('Open conversation');
    await bothShow('Tactic 1 of 3 · Segment 3 of 3');
    await bothShow('Open floor: everyone can speak.');
    await floorNotice(pages.Pat).waitFor({ state: 'hidden', timeout: WAIT });
    await franHearsPat(pat, true, 'open conversation');
    // The next segment is a new tactic's.
    await panel(pages.Pat).getByText('Tactic 2: Tactic 2').waitFor({ timeout: WAIT });
  });

  it('takes an edit under way: Pat, made the advocate of the next tactic, is heard presenting it', { timeout: TEST_TIMEOUT }, async () => {
    const pat = await tiles(pages.Fran).filter({ hasText: 'Pat Rivera' }).getAttribute('data-participant-id');
    await panel(pages.Fran).getByRole('button', { name: 'Edit agenda' }).click();
    const editor = pages.Fran.getByRole('dialog', { name: 'Edit agenda' });
    const second = editor.getByRole('group', { name: 'Tactic 2' });
    await second.getByLabel('Title').fill('Rent strikes');
    await second.getByLabel('Organisation', { exact: true }).fill('Tenants United');
    await second.getByLabel('Advocate').selectOption({ label: 'Pat Rivera (Participant)' });
    await second.getByLabel('Tactic presentation, minutes').fill('4');
    // The tactic under way stays under its title.
    assert.equal(await editor.getByRole('group', { name: 'Tactic 1' }).getByLabel('Title').getAttribute('readonly'), '');
    await shoot(pages.Fran, 'agenda-editor-live');
    await editor.getByRole('button', { name: 'Save agenda' }).click();
    await editor.waitFor({ state: 'hidden', timeout: WAIT });
    await bothShow('Tactic 2: Rent strikes');

    await panel(pages.Fran).getByRole('button', { name: 'Next segment' }).click();
    await bothShow('Tactic 2 of 3 · Segment 1 of 3');
    await panel(pages.Fran).getByRole('button', { name: 'Next segment' }).click();
    await bothShow('Tactic 2 of 3 · Segment 2 of 3');
    await bothShow('by Pat Rivera');
    await panel(pages.Fran).getByText('Pat Rivera has the floor.', { exact: false }).waitFor({ timeout: WAIT });
    await floorNotice(pages.Pat).waitFor({ state: 'hidden', timeout: WAIT });
    const left = await timer(pages.Pat).textContent();
    assert.match(left, /^[34]:\d\d$/, `a 4-minute presentation: ${left}`);
    await franHearsPat(pat, true, "Pat presents the tactic");
  });

  it('pauses, extends, resumes and ends, on both pages', { timeout: TEST_TIMEOUT }, async () => {
    const fran = panel(pages.Fran);
    await fran.getByRole('button', { name: 'Pause' }).click();
    await panel(pages.Pat).getByText('Paused', { exact: true }).waitFor({ timeout: WAIT });
    const paused = await timer(pages.Pat).textContent();
    await fran.getByLabel('Extend by').selectOption('120');
    await fran.getByRole('button', { name: 'Extend' }).click();
    await bothShow('2 min added');
    const secs = (t) => t.split(':').reduce((s, x) => s * 60 + Number(x), 0);
    assert.equal(secs(await timer(pages.Pat).textContent()), secs(paused) + 120, 'two minutes more, the clock stopped');
    await shoot(pages.Fran, 'agenda-paused-facilitator');
    await fran.getByRole('button', { name: 'Resume' }).click();
    await panel(pages.Pat).getByText('Paused', { exact: true }).waitFor({ state: 'hidden', timeout: WAIT });
    await fran.getByRole('button', { name: 'End agenda' }).click();
    await pages.Fran.getByRole('dialog', { name: 'End the agenda?' }).getByRole('button', { name: 'End agenda' }).click();
    await bothShow('The agenda has ended');
    await fran.getByRole('button', { name: 'Start agenda' }).waitFor({ timeout: WAIT });
    await shoot(pages.Pat, 'agenda-ended-participant');
  });
});
