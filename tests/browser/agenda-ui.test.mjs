// The agenda's screens in real Chromium against a scripted server (scripted.mjs): the panel
// in each state, the warning and over-time countdowns, the floor notice in each mode, what
// each facilitator control sends, the Give floor items, and the editor (add, reorder,
// remove, change a duration, a refusal in words). agenda.test.mjs shows the real server
// doing its part.
//
// Screenshots go to $SHOTS (default target/screenshots), to be looked at.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { launchBrowser } from './harness.mjs';
import * as scripted from './scripted.mjs';
import { WAIT, joined, person, sent, shoot } from './scripted.mjs';

let context;
let userDataDir;

const ROSTER = [
  person('p1', 'Fran Okafor', 'facilitator'),
  person('p2', 'Pat Rivera', 'participant'),
  person('p3', 'Ada Lovelace', 'advocate'),
];
const IDS = ROSTER.map((p) => p.id);
const segs = (org, tactic, talk) => [
  { kind: 'organisation', duration_s: org * 60 },
  { kind: 'tactic', duration_s: tactic * 60 },
  { kind: 'conversation', duration_s: talk * 60 },
];
const PLAN = {
  tactics: [
    { title: 'Rent strikes', organisation: 'Tenants United', advocate: { by: 'participant', id: 'p3' }, segments: segs(5, 5, 15) },
    { title: 'Eviction defence', organisation: 'Housing Justice League', advocate: { by: 'invite', id: 'i7' }, segments: segs(5, 5, 15) },
    { title: 'Phone banking', organisation: '', advocate: null, segments: segs(3, 5, 10) },
  ],
  time_up: 'warn',
  grace_s: 30,
  warn_at_s: [60],
  hand_raise: false,
};

/** An agenda view on the test's clock (the scripted pongs carry it too). */
function view(over = {}) {
  return {
    plan: PLAN, phase: 'ready', tactic: 0, segment: 0, started_at: Date.now(), deadline: null, remaining_ms: null,
    extended_s: 0, time_up: false, overrun: false, floor: { mode: 'open', speakers: IDS, given: [] },
    server_time: Date.now(), ...over,
  };
}

/** Ada presents Rent strikes, with `leftMs` to go. */
const adaPresents = (leftMs, over = {}) => view({
  phase: 'running', segment: 1, deadline: Date.now() + leftMs,
  floor: { mode: 'presentation', speakers: ['p1', 'p3'], given: [] }, ...over,
});

const agendaMsg = (agenda, event) => (event ? { type: 'agenda', agenda, event } : { type: 'agenda', agenda });

const panel = (page) => page.getByRole('complementary', { name: 'Agenda' });
const timer = (page) => page.getByRole('timer', { name: /Time left/ });
const announced = (page, text) => page.waitForFunction(
  (t) => document.querySelector('#announcer')?.textContent?.includes(t),
  text,
  { timeout: WAIT },
).catch((e) => {
  throw new Error(`the announcer did not say "${text}": ${e.message}`);
});

/** Join as `roster[0]`, in `role`, to a call whose agenda is `agenda`; resolve once in it. */
async function joinWith(role, roster, agenda, extra = {}) {
  const { page, server } = await scripted.openPage(context, `/r/skill${role === 'facilitator' ? '#invite=facilitator' : ''}`, (join, s) => {
    s.send(joined(role, roster, { agenda, ...extra }));
  });
  await page.getByLabel('Your name').fill(roster[0].name);
  await page.getByRole('button', { name: 'Join', exact: true }).click();
  await page.locator(`[data-participant-id="${roster[0].id}"]`).waitFor({ timeout: WAIT });
  return { page, server };
}

describe('the agenda in the page (scripted server)', { timeout: 300_000 }, () => {
  before(async () => {
    userDataDir = mkdtempSync(path.join(tmpdir(), 'roundtable-agenda-ui-'));
    context = await launchBrowser(userDataDir);
  });

  after(async () => {
    await context?.close().catch(() => {});
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  });

  it('gives a facilitator controls that send what the phase allows, and keeps focus on them', async () => {
    const { page, server } = await joinWith('facilitator', ROSTER, view());
    const agenda = panel(page);
    await agenda.getByText('3 tactics · 1 h 8 min').waitFor({ timeout: WAIT });
    for (const name of ['Pause', 'Resume', 'Next segment', 'End agenda']) {
      assert.equal(await agenda.getByRole('button', { name, exact: true }).isVisible(), false, `no ${name} before the start`);
    }
    await agenda.getByRole('button', { name: 'Start agenda' }).click();
    assert.deepEqual(await sent(page, server, (m) => m.type === 'agenda_control', 'start'), { type: 'agenda_control', action: 'start' });
    server.send(agendaMsg(adaPresents(272_400), { kind: 'segment_started' }));
    await agenda.getByText('by Ada Lovelace').waitFor({ timeout: WAIT });
    await agenda.getByText('Ada Lovelace has the floor.', { exact: false }).waitFor();
    assert.match(await timer(page).textContent(), /^4:3[123]$/);
    await announced(page, 'Now: Tactic presentation, Rent strikes, by Ada Lovelace. 5 minutes.');
    assert.equal(await timer(page).getAttribute('aria-live'), 'off', 'the timer itself is silent');
    await agenda.getByText('Open conversation').first().waitFor();
    await shoot(page, 'agenda-ui-running-facilitator');

    // Each control, and what it sends.
    const press = async (name, action, answer, extra = {}) => {
      server.sent.length = 0;
      await agenda.getByRole('button', { name, exact: true }).click();
      assert.deepEqual(await sent(page, server, (m) => m.type === 'agenda_control', action), { type: 'agenda_control', action, ...extra });
      server.send(agendaMsg(answer));
    };
    await press('Pause', 'pause', view({ ...adaPresents(0), phase: 'paused', deadline: null, remaining_ms: 200_000 }));
    await agenda.getByRole('button', { name: 'Resume' }).waitFor();
    assert.equal(await page.evaluate(() => document.activeElement?.textContent?.trim()), 'Resume', 'focus moved from Pause to Resume');
    assert.equal(await timer(page).textContent(), '3:20');
    await agenda.getByText('Paused', { exact: true }).waitFor();
    await press('Resume', 'resume', adaPresents(200_000));
    await press('Next segment', 'next', adaPresents(200_000));
    await press('Previous segment', 'previous', adaPresents(200_000));
    await press('Skip tactic', 'skip_tactic', adaPresents(200_000));
    await agenda.getByLabel('Extend by').selectOption('300');
    await press('Extend', 'extend', adaPresents(500_000, { extended_s: 300 }), { seconds: 300 });
    await agenda.getByText('of 10 min, 5 min added').waitFor();
    // Ending asks first.
    server.sent.length = 0;
    await agenda.getByRole('button', { name: 'End agenda' }).click();
    const confirm = page.getByRole('dialog', { name: 'End the agenda?' });
    await confirm.getByRole('button', { name: 'Keep going' }).click();
    await agenda.getByRole('button', { name: 'End agenda' }).click();
    await shoot(page, 'agenda-ui-end-dialog');
    await confirm.getByRole('button', { name: 'End agenda' }).click();
    assert.deepEqual(await sent(page, server, (m) => m.type === 'agenda_control', 'end'), { type: 'agenda_control', action: 'end' });
    // One socket keeps order: had "Keep going" sent anything, it would have come first.
    assert.equal(server.sent.filter((m) => m.type === 'agenda_control').length, 1, 'Keep going sends nothing');
    server.send(agendaMsg(view({ phase: 'ended' }), { kind: 'ended' }));
    await agenda.getByText('The agenda has ended').waitFor({ timeout: WAIT });
    await announced(page, 'The agenda has ended.');
    assert.equal(await page.evaluate(() => document.activeElement?.textContent?.trim()), 'Start agenda', 'focus went to Start agenda');
    // A refused control is said in words.
    server.send({ type: 'error', code: 'agenda_state', message: 'the agenda has ended' });
    await page.getByRole('alert').filter({ hasText: 'The agenda cannot do that now' }).waitFor({ timeout: WAIT });
    await page.close();
  });

  it('counts down in a warning, then over time; says why a participant is not heard, without muting them', async () => {
    const pat = [ROSTER[1], ROSTER[0], ROSTER[2]];
    const { page, server } = await joinWith('participant', pat, adaPresents(45_000));
    const notice = page.locator('#floor-notice');
    await notice.getByText('Ada Lovelace is presenting the tactic. You can speak in the open conversation.').waitFor({ timeout: WAIT });
    assert.equal(await page.locator('#mute-btn').getAttribute('aria-pressed'), 'false', 'the microphone stays on');
    assert.equal(await page.locator('#mute-btn').isDisabled(), false, 'and its button works');
    // The agenda panel is closed: the header's chip keeps the countdown in sight.
    const chip = page.getByRole('button', { name: 'Show the agenda' });
    await chip.waitFor({ timeout: WAIT });
    assert.equal(await chip.getAttribute('data-mood'), 'warning');
    server.send(agendaMsg(adaPresents(44_000), { kind: 'warning', left_s: 60 }));
    await announced(page, '1 minute left in this segment.');
    await shoot(page, 'agenda-ui-warning-participant-chip');
    await chip.click();
    await panel(page).waitFor();
    assert.equal(await page.locator('#agenda-countdown').getAttribute('data-mood'), 'warning');
    await shoot(page, 'agenda-ui-warning-participant');

    server.send(agendaMsg(adaPresents(-12_300, { time_up: true }), { kind: 'time_up' }));
    await announced(page, 'Time is up for this segment.');
    assert.match(await timer(page).textContent(), /^\+0:1[23] over$/);
    assert.equal(await page.locator('#agenda-countdown').getAttribute('data-mood'), 'over');
    await shoot(page, 'agenda-ui-over-participant');

    // Hand-raise conversation: raise a hand, get the floor, give it back.
    const talk = (given) => view({
      phase: 'running', segment: 2, deadline: Date.now() + 600_000, plan: { ...PLAN, hand_raise: true },
      floor: { mode: 'hand_raise', speakers: ['p1', ...given], given },
    });
    server.send(agendaMsg(talk([]), { kind: 'segment_started' }));
    await notice.getByText('Raise your hand; a facilitator gives the floor.').waitFor({ timeout: WAIT });
    await announced(page, 'Now: Open conversation, Rent strikes. 15 minutes. Raise your hand');
    server.send({ type: 'hands', queue: ['p2'] });
    await notice.getByText('Your hand is up: you can speak once a facilitator gives you the floor.').waitFor({ timeout: WAIT });
    server.send(agendaMsg(talk(['p2'])));
    await notice.getByText('You have the floor: everyone hears you.').waitFor({ timeout: WAIT });
    await announced(page, 'A facilitator gave you the floor');
    assert.equal(await page.locator('#mute-btn').getAttribute('class'), 'ctl', 'the Mute button is no longer dimmed');
    await shoot(page, 'agenda-ui-floor-given-participant');
    await notice.getByRole('button', { name: 'Give the floor back' }).click();
    assert.deepEqual(await sent(page, server, (m) => m.type === 'yield_floor', 'yield_floor'), { type: 'yield_floor' });
    await page.close();
  });

  it('lets a facilitator give the floor from a person\'s menu and from the raised hands, and take it back', async () => {
    const talk = (given) => view({
      phase: 'running', segment: 2, deadline: Date.now() + 600_000, plan: { ...PLAN, hand_raise: true },
      floor: { mode: 'hand_raise', speakers: ['p1', ...given], given },
    });
    const { page, server } = await joinWith('facilitator', ROSTER, talk([]), { hands: ['p2'] });
    await page.getByRole('button', { name: 'People' }).click();
    const people = page.getByRole('complementary', { name: 'People' });
    await people.getByRole('button', { name: 'Actions for Pat Rivera' }).click();
    const menu = page.getByRole('menu', { name: 'Actions for Pat Rivera' });
    assert.deepEqual(await menu.getByRole('menuitem').allInnerTexts(), ['Lower hand', 'Give floor', 'Mute', 'Stop camera', 'Remove']);
    await menu.getByRole('menuitem', { name: 'Give floor' }).click();
    assert.deepEqual(await sent(page, server, (m) => m.type === 'give_floor', 'give_floor'), { type: 'give_floor', participant: 'p2' });
    server.sent.length = 0;

    await page.getByRole('button', { name: 'Agenda', exact: true }).click();
    const agenda = panel(page);
    await agenda.getByText('Raise your hand to speak: a facilitator gives the floor.').waitFor({ timeout: WAIT });
    await agenda.getByRole('button', { name: 'Give floor to Pat Rivera' }).click();
    assert.deepEqual(await sent(page, server, (m) => m.type === 'give_floor', 'give_floor'), { type: 'give_floor', participant: 'p2' });
    server.send({ type: 'hands', queue: [] });
    server.send(agendaMsg(talk(['p2'])));
    await agenda.getByText('Given the floor: Pat Rivera').waitFor({ timeout: WAIT });
    await shoot(page, 'agenda-ui-floor-given-facilitator');
    server.sent.length = 0;
    await agenda.getByRole('button', { name: 'Take back floor from Pat Rivera' }).click();
    assert.deepEqual(await sent(page, server, (m) => m.type === 'take_floor', 'take_floor'), { type: 'take_floor', participant: 'p2' });

    await page.getByRole('button', { name: 'People' }).click();
    await people.getByText('Has the floor').waitFor({ timeout: WAIT });
    await shoot(page, 'agenda-ui-people-floor');
    await people.getByRole('button', { name: 'Actions for Pat Rivera' }).click();
    assert.deepEqual(await menu.getByRole('menuitem').allInnerTexts(), ['Take back floor', 'Mute', 'Stop camera', 'Remove']);
    await page.keyboard.press('Escape');
    await page.close();
  });

  it('edits the agenda: adds, reorders and removes tactics, changes a duration, and shows a refusal in words', async () => {
    const { page, server } = await joinWith('facilitator', ROSTER, view());
    await panel(page).getByRole('button', { name: 'Edit agenda' }).click();
    const editor = page.getByRole('dialog', { name: 'Edit agenda' });
    await editor.waitFor();
    await editor.getByText('3 tactics · 1 h 8 min planned').waitFor();
    const tactic = (n) => editor.getByRole('group', { name: `Tactic ${n}`, exact: true });
    assert.equal(await tactic(1).getByLabel('Title').inputValue(), 'Rent strikes');
    assert.equal(await tactic(1).getByLabel('Advocate').inputValue(), 'participant:p3');
    assert.equal(await tactic(2).getByLabel('Advocate').locator('option:checked').innerText(), 'Whoever joins with their advocate invite');
    await shoot(page, 'agenda-ui-editor');
    // Someone joins meanwhile: they can be chosen.
    server.send({ type: 'participant_joined', participant: person('p6', 'Wes Adeyemi', 'advocate') });
    await tactic(3).getByLabel('Advocate').locator('option', { hasText: 'Wes Adeyemi (Advocate)' }).waitFor({ state: 'attached', timeout: WAIT });

    // Add: a Skill Share-shaped tactic, its title ready to type over.
    await editor.getByRole('button', { name: 'Add tactic' }).click();
    await tactic(4).waitFor();
    assert.equal(await page.evaluate(() => document.activeElement?.id), await tactic(4).getByLabel('Title').getAttribute('id'));
    await page.keyboard.type('Tool libraries');
    await editor.getByText('4 tactics · 1 h 33 min planned').waitFor();
    // Reorder: focus stays on the arrow, which now names the new place.
    await editor.getByRole('button', { name: 'Move Tactic 4 up' }).click();
    assert.equal(await tactic(3).getByLabel('Title').inputValue(), 'Tool libraries');
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('aria-label')), 'Move Tactic 3 up');
    await announced(page, 'Tool libraries is now tactic 3 of 4.');
    await editor.getByRole('button', { name: 'Move Tactic 1 down' }).click();
    await editor.getByRole('button', { name: 'Move Tactic 2 up' }).click();
    assert.equal(await tactic(1).getByLabel('Title').inputValue(), 'Rent strikes');
    assert.equal(await editor.getByRole('button', { name: 'Move Tactic 1 up' }).isDisabled(), true);
    // Remove the second; change the first's conversation; assign Pat to the new one.
    await editor.getByRole('button', { name: 'Remove Tactic 2' }).click();
    assert.deepEqual(await editor.getByLabel('Title').evaluateAll((inputs) => inputs.map((i) => i.value)), ['Rent strikes', 'Tool libraries', 'Phone banking']);
    await tactic(1).getByLabel('Open conversation, minutes').fill('20');
    await tactic(2).getByLabel('Organisation', { exact: true }).fill('  Share Shed ');
    await tactic(2).getByLabel('Advocate').selectOption({ label: 'Pat Rivera (Participant)' });
    await editor.getByLabel('When a segment’s time is up').selectOption('advance');
    await editor.getByLabel('Hand-raise conversations').check();

    // A missing title is caught before anything is sent.
    await tactic(3).getByLabel('Title').fill('  ');
    await editor.getByRole('button', { name: 'Save agenda' }).click();
    await editor.getByRole('alert').getByText('Tactic 3 needs a title.').waitFor();
    assert.equal(await tactic(3).getByLabel('Title').getAttribute('aria-invalid'), 'true');
    assert.equal(server.sent.filter((m) => m.type === 'agenda_set').length, 0);
    await tactic(3).getByLabel('Title').fill('Phone banking');
    assert.equal(await editor.getByRole('alert').isVisible(), false, 'the complaint went once the title was fixed');
    await shoot(page, 'agenda-ui-editor-edited');

    await editor.getByRole('button', { name: 'Save agenda' }).click();
    const set = await sent(page, server, (m) => m.type === 'agenda_set', 'agenda_set');
    const want = {
      ...PLAN,
      time_up: 'advance',
      hand_raise: true,
      tactics: [
        { ...PLAN.tactics[0], segments: segs(5, 5, 20) },
        { title: 'Tool libraries', organisation: 'Share Shed', advocate: { by: 'participant', id: 'p2' }, segments: segs(5, 5, 15) },
        PLAN.tactics[2],
      ],
    };
    assert.deepEqual(set, { type: 'agenda_set', plan: want });
    // Refused: the dialog stays, and says why in words.
    server.send({ type: 'error', code: 'agenda_state', message: 'the tactic under way cannot be removed or renamed; skip it first' });
    await editor.getByRole('alert').getByText('The tactic under way must stay in the agenda', { exact: false }).waitFor({ timeout: WAIT });
    await shoot(page, 'agenda-ui-editor-refused');
    // Saved: the dialog closes once the server's agenda carries the plan.
    server.sent.length = 0;
    await editor.getByRole('button', { name: 'Save agenda' }).click();
    await sent(page, server, (m) => m.type === 'agenda_set', 'agenda_set again');
    server.send(agendaMsg(view({ plan: want })));
    await editor.waitFor({ state: 'hidden', timeout: WAIT });
    await panel(page).getByText('Tool libraries').waitFor();
    await announced(page, 'Agenda saved.');
    assert.equal(await page.evaluate(() => document.activeElement?.textContent?.trim()), 'Edit agenda', 'focus is back on Edit agenda');
    await page.close();
  });

  it('keeps the tactic under way while editing during the call', async () => {
    const { page, server } = await joinWith('facilitator', ROSTER, adaPresents(200_000));
    await panel(page).getByRole('button', { name: 'Edit agenda' }).click();
    const editor = page.getByRole('dialog', { name: 'Edit agenda' });
    const first = editor.getByRole('group', { name: 'Tactic 1', exact: true });
    await first.getByText('Under way').waitFor();
    assert.equal(await first.getByLabel('Title').getAttribute('readonly'), '');
    assert.equal(await editor.getByRole('button', { name: 'Remove Tactic 1' }).isDisabled(), true);
    await editor.getByText('The agenda is under way.', { exact: false }).waitFor();
    // Another facilitator's edit comes in meanwhile.
    server.send(agendaMsg(adaPresents(200_000, { plan: { ...PLAN, grace_s: 60 } })));
    await editor.getByText('Another facilitator changed the agenda', { exact: false }).waitFor({ timeout: WAIT });
    await editor.getByRole('button', { name: 'Start over from theirs' }).click();
    assert.equal(await editor.getByLabel('Grace period, in seconds').inputValue(), '60');
    await page.close();
  });
});
