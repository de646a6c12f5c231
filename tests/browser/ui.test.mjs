// The web client's screens for roles, invites, the waiting room and moderation, in real
// Chromium against a scripted server (scripted.mjs): no Roundtable binary is needed, so this
// checks what the page shows and sends, and how it reacts to each message; that the server
// does the same is room.test.mjs's and moderation.test.mjs's to show.
//
// Screenshots of each screen, at desktop and phone sizes, go to $SHOTS (default
// target/screenshots), to be looked at.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { launchBrowser } from './harness.mjs';
import * as scripted from './scripted.mjs';
import { REPO, ROOM, SHOTS, WAIT, WEB, joined, person, sent, shoot } from './scripted.mjs';

const since = Date.parse('2025-05-01T14:02:00Z');

let context;
let userDataDir;

/** A page at `urlPath`, its server played by `onJoin(join, server)` (scripted.mjs). */
const openPage = (urlPath, onJoin, viewport) => scripted.openPage(context, urlPath, onJoin, viewport);

const FAC_ROSTER = [
  person('p1', 'Fran Okafor', 'facilitator'),
  person('p2', 'Pat Rivera', 'participant'),
  person('p3', 'Ada Lovelace', 'advocate'),
  person('p4', 'Oli Berg', 'observer', { audio: false, video: false }),
  person('p5', 'Sam Chen', 'participant', { audio_allowed: false }),
];
const WAITERS = [
  { id: 'w1', name: 'Wes Adeyemi', role: 'participant', since },
  { id: 'w2', name: 'Xia Lin', role: 'advocate', since: since + 60_000 },
];

describe('roles, invites, waiting and moderation in the page (scripted server)', { timeout: 300_000 }, () => {
  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    userDataDir = mkdtempSync(path.join(tmpdir(), 'roundtable-ui-'));
    context = await launchBrowser(userDataDir);
  });

  after(async () => {
    await context?.close().catch(() => {});
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  });

  it('is served whole: every module and style sheet of web-client/ is in the server\'s ASSETS', () => {
    const http = readFileSync(path.join(REPO, 'server', 'src', 'http.rs'), 'utf8');
    const list = http.slice(http.indexOf('const ASSETS'), http.indexOf('];', http.indexOf('const ASSETS')));
    const served = new Set([...list.matchAll(/"([\w-]+\.(?:js|css))"/g)].map((m) => m[1]));
    const files = readdirSync(WEB).filter((f) => /\.(js|css)$/.test(f));
    assert.deepEqual(files.filter((f) => !served.has(f)), [], 'files the server would answer 404 for');
  });

  it('takes the invite out of the address, shows its role and fixed name, and joins with it', async () => {
    const { page, server } = await openPage(`/r/${ROOM.id}#invite=fixed`, (join, s) => {
      s.send(joined('advocate', [person('p9', 'Ada Lovelace', 'advocate')]));
    });
    const name = page.getByLabel('Your name');
    await page.getByText('You are invited to present a tactic.').waitFor({ timeout: WAIT });
    assert.equal(await name.inputValue(), 'Ada Lovelace');
    assert.equal(await name.getAttribute('readonly'), '', 'a fixed name cannot be edited');
    assert.equal(new URL(page.url()).hash, '', 'the secret left the address bar');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('roundtable.invite.skill')), 'fixed');
    await page.waitForFunction(() => document.querySelector('#preview-video')?.readyState >= 2, null, { timeout: WAIT });
    await shoot(page, 'lobby-fixed-name');
    await page.getByRole('button', { name: 'Join', exact: true }).click();
    const join = await sent(page, server, (m) => m.type === 'join', 'join');
    assert.deepEqual(join, { type: 'join', v: 1, room: ROOM.id, name: 'Ada Lovelace', invite: 'fixed' });
    await page.locator('[data-participant-id="p9"]').getByText('Advocate').waitFor({ timeout: WAIT });
    await page.close();
  });

  it('says plainly why an invite cannot be used, and offers the open link instead', async () => {
    const { page, server } = await openPage(`/r/${ROOM.id}#invite=expired`, (join, s) => {
      s.send(joined('participant', [person('p9', 'Kim', 'participant')]));
    });
    const alert = page.getByRole('alert').filter({ hasText: 'This invitation has expired. Ask the facilitator for a new link.' });
    await alert.waitFor({ timeout: WAIT });
    assert.equal(await page.getByRole('button', { name: 'Join', exact: true }).isVisible(), false, 'no Join with a dead invite');
    await page.getByLabel('Your name').fill('Kim');
    await shoot(page, 'lobby-invite-error');
    await page.getByRole('button', { name: 'Join as a participant instead' }).click();
    const join = await sent(page, server, (m) => m.type === 'join', 'join');
    assert.equal(join.invite, undefined, 'the open link carries no invite');
    await page.close();
  });

  it('never asks an observer for the camera or microphone, and shows them no media buttons', async () => {
    const { page } = await openPage(`/r/${ROOM.id}#invite=observer`, (join, s) => {
      s.send(joined('observer', [person('p9', 'Obi', 'observer', { audio: false, video: false }), FAC_ROSTER[0]]));
    });
    await page.getByText('Your camera and microphone stay off.').waitFor({ timeout: WAIT });
    await page.getByLabel('Your name').fill('Obi');
    await shoot(page, 'lobby-observer');
    await page.getByRole('button', { name: 'Join', exact: true }).click();
    await page.locator('[data-participant-id="p9"]').waitFor({ timeout: WAIT });
    assert.equal(await page.evaluate(() => window.__gumCalls), 0, 'getUserMedia was never called');
    for (const name of ['Mute', 'Camera', 'Raise hand']) {
      assert.equal(await page.getByRole('button', { name, exact: true }).count(), 0, `no ${name} button`);
    }
    await page.close();
  });

  it('shows the place in line, follows it, and joins when admitted', async () => {
    const { page, server } = await openPage(`/r/${ROOM.id}`, (join, s) => s.send({ type: 'waiting', position: 2 }));
    await page.getByLabel('Your name').fill('Wes Adeyemi');
    await page.getByRole('button', { name: 'Join', exact: true }).click();
    const status = page.getByRole('status').filter({ hasText: /in line/ });
    await status.getByText('You are number 2 in line').waitFor({ timeout: WAIT });
    assert.equal(await page.evaluate(() => window.__pcs), 0, 'no media connection while waiting');
    await shoot(page, 'waiting');
    server.send({ type: 'waiting', position: 1 });
    await status.getByText('You are number 1 in line').waitFor({ timeout: WAIT });
    server.send(joined('participant', [person('p7', 'Wes Adeyemi', 'participant'), FAC_ROSTER[0]]));
    await page.locator('[data-participant-id="p7"]').waitFor({ timeout: WAIT });
    await sent(page, server, (m) => m.type === 'offer', 'a publish offer after joined');
    await page.close();
  });

  it('gives a facilitator the queue, the people list with hands in order, and a menu on each person', async () => {
    const { page, server } = await openPage(`/r/${ROOM.id}#invite=facilitator`, (join, s) => {
      s.send(joined('facilitator', FAC_ROSTER, { hands: ['p3', 'p2'], waiting: WAITERS }));
    });
    await page.getByLabel('Your name').fill('Fran Okafor');
    await page.getByRole('button', { name: 'Join', exact: true }).click();
    await page.locator('[data-participant-id="p1"]').waitFor({ timeout: WAIT });
    await page.getByRole('button', { name: 'People' }).click();
    const panel = page.getByRole('complementary', { name: 'People' });
    // Hands first, in the order they went up.
    const rows = panel.getByRole('listitem');
    const names = await panel.getByRole('list').last().locator('.person-name').allInnerTexts();
    assert.deepEqual(names.slice(0, 2), ['Ada Lovelace', 'Pat Rivera'], 'raised hands come first, in order');
    await panel.getByRole('img', { name: 'Hand raised, number 2 in line' }).waitFor();
    assert.ok((await rows.count()) >= 7);
    // The queue.
    await panel.getByRole('button', { name: 'Admit Wes Adeyemi' }).waitFor();
    await shoot(page, 'queue-panel');
    await panel.getByRole('button', { name: /Admit/ }).first().click();
    assert.deepEqual(await sent(page, server, (m) => m.type === 'admit', 'admit'), { type: 'admit', waiter: 'w1' });
    await panel.getByRole('button', { name: 'Decline Xia Lin' }).click();
    assert.deepEqual(await sent(page, server, (m) => m.type === 'decline', 'decline'), { type: 'decline', waiter: 'w2' });
    server.send({ type: 'queue', waiting: [] });
    await panel.getByRole('heading', { name: /Waiting to join/ }).waitFor({ state: 'hidden' });

    // The menu, by keyboard: it opens on the first item, and Escape gives focus back.
    const opener = panel.getByRole('button', { name: 'Actions for Pat Rivera' });
    await opener.focus();
    await page.keyboard.press('Enter');
    const menu = page.getByRole('menu', { name: 'Actions for Pat Rivera' });
    await menu.waitFor();
    const items = await menu.getByRole('menuitem').allInnerTexts();
    assert.deepEqual(items, ['Lower hand', 'Mute', 'Stop camera', 'Remove']);
    assert.equal(await opener.getAttribute('aria-expanded'), 'true');
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Lower hand');
    await page.keyboard.press('ArrowDown');
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Mute');
    await shoot(page, 'people-menu');
    // A scroll that leaves its button in sight keeps the menu open (as the scroll that brings
    // a row into view while it is clicked must).
    await page.evaluate(() => document.dispatchEvent(new Event('scroll')));
    assert.equal(await menu.isVisible(), true, 'a scroll with the button in sight keeps the menu');
    await page.keyboard.press('Escape');
    await menu.waitFor({ state: 'hidden' });
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('aria-label')), 'Actions for Pat Rivera');
    assert.equal(await opener.getAttribute('aria-expanded'), 'false');

    // The same menu hangs on each tile.
    const tile = page.locator('[data-participant-id="p3"]');
    await tile.hover();
    await tile.getByRole('button', { name: 'Actions for Ada Lovelace' }).click();
    const adaMenu = page.getByRole('menu', { name: 'Actions for Ada Lovelace' });
    assert.deepEqual(await adaMenu.getByRole('menuitem').allInnerTexts(), ['Lower hand', 'Mute', 'Stop camera', 'Remove']);
    // A scroll that takes its button out of sight closes it: here, a scroll of a strip at
    // the top of the page, above the tile.
    await page.evaluate(() => {
      const strip = document.createElement('div');
      strip.style.cssText = 'position:fixed;top:0;left:0;width:10px;height:1px';
      document.body.append(strip);
      strip.dispatchEvent(new Event('scroll'));
      strip.remove();
    });
    await adaMenu.waitFor({ state: 'hidden' });

    // Each item sends its command.
    const act = async (who, item) => {
      await panel.getByRole('button', { name: `Actions for ${who}` }).click();
      await page.getByRole('menu', { name: `Actions for ${who}` }).getByRole('menuitem', { name: item, exact: true }).click();
    };
    await act('Pat Rivera', 'Mute');
    assert.deepEqual(await sent(page, server, (m) => m.type === 'mute', 'mute'), { type: 'mute', participant: 'p2', kind: 'audio', muted: true });
    await act('Pat Rivera', 'Stop camera');
    assert.deepEqual(await sent(page, server, (m) => m.type === 'mute' && m.kind === 'video', 'stop camera'), { type: 'mute', participant: 'p2', kind: 'video', muted: true });
    await act('Pat Rivera', 'Lower hand');
    assert.deepEqual(await sent(page, server, (m) => m.type === 'lower_hand', 'lower_hand'), { type: 'lower_hand', participant: 'p2' });
    // Sam was muted by a facilitator: the menu offers to allow the microphone again.
    await act('Sam Chen', 'Allow microphone');
    assert.deepEqual(await sent(page, server, (m) => m.type === 'mute' && !m.muted, 'allow'), { type: 'mute', participant: 'p5', kind: 'audio', muted: false });
    // An observer publishes nothing: only Remove.
    await panel.getByRole('button', { name: 'Actions for Oli Berg' }).click();
    assert.deepEqual(await page.getByRole('menu').getByRole('menuitem').allInnerTexts(), ['Remove']);
    await page.keyboard.press('Escape');

    // Remove asks first, and offers to bar the invite.
    await act('Pat Rivera', 'Remove');
    const dialog = page.getByRole('dialog', { name: 'Remove Pat Rivera?' });
    await dialog.waitFor();
    await dialog.getByLabel(/bar their invitation/).check();
    await shoot(page, 'remove-dialog');
    await dialog.getByRole('button', { name: 'Remove' }).click();
    assert.deepEqual(await sent(page, server, (m) => m.type === 'remove', 'remove'), { type: 'remove', participant: 'p2', bar: true });
    server.send({ type: 'error', code: 'not_barrable', message: 'joined through the open link' });
    await page.getByRole('alert').filter({ hasText: 'no invitation to bar' }).waitFor({ timeout: WAIT });
    server.send({ type: 'participant_left', id: 'p2', reason: 'removed' });
    await page.locator('[data-participant-id="p2"]').waitFor({ state: 'detached' });

    // Lock room.
    await panel.getByRole('button', { name: 'Lock room' }).click();
    assert.deepEqual(await sent(page, server, (m) => m.type === 'lock', 'lock'), { type: 'lock', locked: true });
    server.send({ type: 'room_locked', locked: true, by: 'p1' });
    await panel.getByRole('button', { name: 'Unlock room' }).waitFor();
    await page.getByText('Room locked').waitFor();

    // Our own hand.
    await page.getByRole('button', { name: 'Raise hand' }).click();
    await sent(page, server, (m) => m.type === 'raise_hand', 'raise_hand');
    server.send({ type: 'hands', queue: ['p3', 'p1'] });
    await page.getByRole('button', { name: 'Lower hand', exact: true }).click();
    assert.deepEqual(await sent(page, server, (m) => m.type === 'lower_hand' && !m.participant, 'own lower_hand'), { type: 'lower_hand' });
    await page.close();
  });

  it('holds a muted person\'s microphone off and says why; allowing it again does not unmute', async () => {
    const { page, server } = await openPage(`/r/${ROOM.id}`, (join, s) => {
      s.send(joined('participant', [person('p2', 'Pat Rivera', 'participant'), FAC_ROSTER[0]]));
    });
    await page.getByLabel('Your name').fill('Pat Rivera');
    await page.getByRole('button', { name: 'Join', exact: true }).click();
    await page.locator('[data-participant-id="p2"]').waitFor({ timeout: WAIT });
    const micOn = () => page.evaluate(() => document.querySelector('#mute-btn')?.getAttribute('aria-pressed') === 'false');
    assert.equal(await micOn(), true);
    const mute = page.getByRole('button', { name: 'Mute', exact: true });
    server.send({ type: 'moderated', kind: 'audio', allowed: false, by: 'p1' });
    await page.getByRole('status').filter({ hasText: 'A facilitator muted you. Raise your hand to ask to speak.' }).waitFor({ timeout: WAIT });
    assert.equal(await mute.isDisabled(), true, 'the microphone button is disabled');
    const sentState = await sent(page, server, (m) => m.type === 'media_state' && !m.audio, 'media_state with audio off');
    assert.equal(sentState.audio, false);
    assert.equal(await page.evaluate(() => document.querySelector('#mute-btn')?.getAttribute('aria-pressed')), 'true');
    await shoot(page, 'muted-by-facilitator');
    server.send({ type: 'moderated', kind: 'audio', allowed: true, by: 'p1' });
    await page.waitForFunction(() => !document.querySelector('#mute-btn')?.hasAttribute('disabled'), null, { timeout: WAIT });
    assert.equal(await micOn(), false, 'the microphone stays off until the person turns it on');
    await mute.click();
    assert.equal(await micOn(), true);
    await page.close();
  });

  it('keeps a mute that follows the invite into a rejoin', async () => {
    const { page, server } = await openPage(`/r/${ROOM.id}`, (join, s) => {
      s.send(joined('participant', [person('p2', 'Pat Rivera', 'participant', { audio_allowed: false }), FAC_ROSTER[0]]));
    });
    await page.getByLabel('Your name').fill('Pat Rivera');
    await page.getByRole('button', { name: 'Join', exact: true }).click();
    await page.getByRole('status').filter({ hasText: 'A facilitator muted you.' }).waitFor({ timeout: WAIT });
    assert.equal(await page.getByRole('button', { name: 'Mute', exact: true }).isDisabled(), true);
    const state = await sent(page, server, (m) => m.type === 'media_state', 'media_state');
    assert.equal(state.audio, false, 'the page reports its microphone off');
    await page.close();
  });

  it('shows who was removed, and that a barred link no longer works', async () => {
    const { page, server } = await openPage(`/r/${ROOM.id}`, (join, s) => {
      s.send(joined('participant', [person('p2', 'Pat Rivera', 'participant'), FAC_ROSTER[0]]));
    });
    await page.getByLabel('Your name').fill('Pat Rivera');
    await page.getByRole('button', { name: 'Join', exact: true }).click();
    await page.locator('[data-participant-id="p2"]').waitFor({ timeout: WAIT });
    server.send({ type: 'removed', by: 'p1', barred: true });
    await page.getByRole('heading', { name: 'You were removed from the call' }).waitFor({ timeout: WAIT });
    await page.getByText('The link you joined with no longer works.').waitFor();
    assert.equal(await page.evaluate(() => document.querySelector('#preview-video')?.srcObject), null, 'the camera was let go');
    await shoot(page, 'removed');
    await page.close();
  });
});
