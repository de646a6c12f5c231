// The recording controls in the page, against a scripted server (scripted.mjs): what the
// Record me switch and a facilitator's Start and Stop send, and how the page draws each
// `recording` and `participant_updated`. That the server records only those who agree is
// record.test.mjs's to show, with the real binary.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { launchBrowser } from './harness.mjs';
import * as scripted from './scripted.mjs';
import { ROOM, SHOTS, WAIT, joined, person, sent, shoot } from './scripted.mjs';

let context;
let userDataDir;

const openPage = (urlPath, onJoin) => scripted.openPage(context, urlPath, onJoin);

const FRAN = person('p1', 'Fran Okafor', 'facilitator', { consent: true });
const PAT = person('p2', 'Pat Rivera', 'participant', { consent: false });
const SESSION = 'skill-1767207880000-1';

const banner = (page) => page.getByRole('status').filter({ hasText: /^Recording/ });
const recordMe = (page) => page.getByRole('switch', { name: 'Record me', exact: true });

describe('recording controls in the page (scripted server)', { timeout: 120_000 }, () => {
  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    userDataDir = mkdtempSync(path.join(tmpdir(), 'roundtable-record-ui-'));
    context = await launchBrowser(userDataDir);
  });

  after(async () => {
    await context?.close().catch(() => {});
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  });

  it('sends the lobby\'s choice in join, and a facilitator\'s start with presentations only', async () => {
    const { page, server } = await openPage(`/r/${ROOM.id}#invite=facilitator`, (join, s) => {
      s.send(joined('facilitator', [FRAN, PAT]));
    });
    await page.getByLabel('Your name').fill('Fran Okafor');
    await recordMe(page).check();
    await page.getByRole('button', { name: 'Join', exact: true }).click();
    const join = await sent(page, server, (m) => m.type === 'join', 'join');
    assert.equal(join.consent, true, 'join carries the consent the person gave');
    await page.locator('[data-participant-id="p1"]').waitFor({ timeout: WAIT });
    assert.equal(await recordMe(page).getAttribute('aria-checked'), 'true');
    assert.equal(await banner(page).count(), 0, 'no banner while nothing is recorded');

    const panel = page.getByRole('complementary', { name: 'Agenda' });
    const people = page.getByRole('complementary', { name: 'People' });
    await panel.getByText('Agree to be recorded: 1 of 2.').waitFor({ timeout: WAIT });
    await panel.getByRole('checkbox', { name: 'Record presentations only' }).check();
    await panel.getByRole('button', { name: 'Start recording' }).click();
    const start = await sent(page, server, (m) => m.type === 'recording', 'recording');
    assert.deepEqual(start, { type: 'recording', on: true, presentation_only: true });

    // Presentations only, before any presentation: on, and nobody recorded.
    server.send({ type: 'recording', recording: { on: true, presentation_only: true, session: SESSION, recorded: [] } });
    await banner(page).filter({ hasText: /^Recording is on: nobody is recorded now$/ }).waitFor({ timeout: WAIT });
    await page.getByText('Presentations only', { exact: true }).waitFor({ timeout: WAIT });
    assert.equal(await page.locator('#rec-self').innerText(), 'You are not recorded now', 'agreeing is not being recorded');
    assert.equal(await panel.getByRole('checkbox', { name: 'Record presentations only' }).isDisabled(), true);

    // A presentation starts: Fran is recorded, by name, on her tile and in People.
    server.send({ type: 'recording', recording: { on: true, presentation_only: true, session: SESSION, recorded: ['p1'] } });
    await banner(page).filter({ hasText: /^Recording: Fran Okafor$/ }).waitFor({ timeout: WAIT });
    assert.equal(await page.locator('#rec-self').innerText(), 'You are recorded');
    await page.locator('[data-participant-id="p1"]').getByRole('img', { name: 'Recorded' }).waitFor({ timeout: WAIT });
    await shoot(page, 'record-ui-presentations');
    await page.getByRole('button', { name: 'People' }).click();
    await people.getByRole('listitem').filter({ hasText: 'Fran Okafor' }).getByRole('img', { name: 'Recorded' }).waitFor({ timeout: WAIT });
    assert.equal(await people.getByRole('listitem').filter({ hasText: 'Pat Rivera' }).getByRole('img').count(), 0, 'Pat has no mark');
    await page.getByRole('button', { name: 'Agenda', exact: true }).click();

    // Stop; a second stop from another facilitator's page would be refused: words, not a code.
    await panel.getByRole('button', { name: 'Stop recording' }).click();
    const stop = await sent(page, server, (m) => m.type === 'recording' && m.on === false, 'recording off');
    assert.deepEqual(stop, { type: 'recording', on: false });
    server.send({ type: 'error', code: 'recording_state', message: 'not recording' });
    await page.getByRole('alert').filter({ hasText: 'Recording was already started or stopped' }).waitFor({ timeout: WAIT });
    server.send({ type: 'recording', recording: { on: false, presentation_only: false, recorded: [] } });
    await banner(page).waitFor({ state: 'hidden', timeout: WAIT });
    await panel.getByRole('button', { name: 'Start recording' }).waitFor({ timeout: WAIT });
    await page.close();
  });

  it('turns Record me on in the call: it asks, and shows what the server says', async () => {
    const { page, server } = await openPage(`/r/${ROOM.id}`, (join, s) => {
      s.send(joined('participant', [PAT, FRAN], {
        recording: { on: true, presentation_only: false, session: SESSION, recorded: ['p1'] },
      }));
    });
    await page.getByLabel('Your name').fill('Pat Rivera');
    assert.equal(await recordMe(page).isChecked(), false, 'off by default');
    await page.getByRole('button', { name: 'Join', exact: true }).click();
    const join = await sent(page, server, (m) => m.type === 'join', 'join');
    assert.equal(join.consent, undefined, 'no consent unless given');
    await banner(page).filter({ hasText: /^Recording: Fran Okafor$/ }).waitFor({ timeout: WAIT });
    assert.equal(await page.locator('#rec-self').innerText(), 'You are not recorded');
    await page.getByRole('button', { name: 'Agenda', exact: true }).click();
    await page.getByRole('complementary', { name: 'Agenda' }).waitFor({ timeout: WAIT });
    assert.equal(await page.getByRole('button', { name: 'Start recording' }).count(), 0, 'only facilitators start');

    const toggle = recordMe(page);
    assert.equal(await toggle.getAttribute('aria-checked'), 'false');
    await toggle.click();
    const consent = await sent(page, server, (m) => m.type === 'consent', 'consent');
    assert.deepEqual(consent, { type: 'consent', granted: true });
    assert.equal(await toggle.getAttribute('aria-checked'), 'false', 'the switch waits for the server');
    server.send({ type: 'participant_updated', participant: { ...PAT, consent: true } });
    server.send({ type: 'recording', recording: { on: true, presentation_only: false, session: SESSION, recorded: ['p1', 'p2'] } });
    await banner(page).filter({ hasText: /^Recording: Fran Okafor and Pat Rivera$/ }).waitFor({ timeout: WAIT });
    assert.equal(await toggle.getAttribute('aria-checked'), 'true');
    assert.equal(await page.locator('#rec-self').innerText(), 'You are recorded');
    await shoot(page, 'record-ui-participant');

    await toggle.click();
    const withdraw = await sent(page, server, (m) => m.type === 'consent' && m.granted === false, 'a withdrawal');
    assert.deepEqual(withdraw, { type: 'consent', granted: false });
    await page.close();
  });

  it('shows an observer no Record me: an observer is never recorded', async () => {
    const { page } = await openPage(`/r/${ROOM.id}#invite=observer`, (join, s) => {
      s.send(joined('observer', [person('p9', 'Obi', 'observer', { audio: false, video: false }), FRAN], {
        recording: { on: true, presentation_only: false, session: SESSION, recorded: ['p1'] },
      }));
    });
    await page.getByText('Your camera and microphone stay off.').waitFor({ timeout: WAIT });
    assert.equal(await recordMe(page).count(), 0, 'no switch in the lobby');
    await page.getByLabel('Your name').fill('Obi');
    await page.getByRole('button', { name: 'Join', exact: true }).click();
    await banner(page).filter({ hasText: /^Recording: Fran Okafor$/ }).waitFor({ timeout: WAIT });
    assert.equal(await recordMe(page).count(), 0, 'no switch in the call');
    await page.close();
  });
});
