// End-to-end moderation in real Chromium (issue 18): a facilitator page, joined through its
// invite, mutes a participant page and then removes it; a full room puts the next pages in
// its waiting room with their places shown, and the facilitator admits one and declines the
// other. Media is judged by what the pages received (getStats), not by what the UI claims.
//
// Run (as root, inside a network namespace that holds only loopback):
//   unshare --net sh -c 'ip link set lo up && ROUNDTABLE_BIN=target/debug/roundtable node --test tests/browser/'
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as h from './harness.mjs';
import { SHOTS, TEST_TIMEOUT, WAIT, expectMediaFrom, joinAs, tiles } from './harness.mjs';

const env = {
  bin: '', dataDir: '', userDataDir: '', base: '',
  /** @type {import('node:child_process').ChildProcess | null} */
  server: null,
  /** @type {import('playwright-core').BrowserContext | null} */
  context: null,
  /** Paths (with the invite fragment) of the room's links. */
  facilitatorPath: '',
  openPath: '',
};
/** @type {Record<string, import('playwright-core').Page>} */
const pages = {};


const openPage = (label, urlPath) => h.openPage(env.context, env.base, label, urlPath);

/** A page's participant id, read off Fran's tile for them. @param {string} name */
const idOn = (page, name) => tiles(page).filter({ hasText: name }).getAttribute('data-participant-id');

/** What `page` received of `kind` from the participant with tile `id` (getStats). */
const inbound = (page, id, kind) => page.evaluate(([p, k]) => window.__roundtableTileInbound(p, k), [id, kind]);

/** Watch what `page` receives from `id`, for {@link grows}. */
const watch = (page, id) => page.evaluate((p) => window.__roundtableWatchTile(p), id);

/** Wait until `page`'s inbound `kind` from `id` has grown by `by` in `field` (it watches `id`). */
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

/** Open the facilitator's menu on `name` and choose `item`. */
async function act(name, item) {
  const panel = pages.Fran.getByRole('complementary', { name: 'People' });
  if (!(await panel.isVisible())) await pages.Fran.getByRole('button', { name: 'People' }).click();
  await panel.getByRole('button', { name: `Actions for ${name}` }).click();
  await pages.Fran.getByRole('menu', { name: `Actions for ${name}` }).getByRole('menuitem', { name: item, exact: true }).click();
}

/** Fill the name and press Join; the page may be seated or wait. */
async function askToJoin(page, name) {
  await page.getByLabel('Your name').fill(name);
  await page.getByRole('button', { name: 'Join', exact: true }).click();
}

const place = (page) => page.getByRole('status').filter({ hasText: /in line/ });

describe('moderation and the waiting room in real Chromium', { timeout: TEST_TIMEOUT * 8 }, () => {
  before(async () => {
    env.bin = h.requireBinary();
    env.dataDir = mkdtempSync(path.join(tmpdir(), 'roundtable-data-'));
    env.userDataDir = mkdtempSync(path.join(tmpdir(), 'roundtable-chromium-'));
    // Two seats: the facilitator's (reserved by their invite) and one more.
    const room = h.cli(env.bin, env.dataDir, ['room', 'create', '--title', 'Moderated', '--capacity', '2', '--when-full', 'wait', '--json']);
    for (const key of ['facilitator_url', 'open_url']) assert.ok(room[key], `room create JSON lacks "${key}": ${JSON.stringify(room)}`);
    env.facilitatorPath = h.pathOf(room.facilitator_url);
    env.openPath = h.pathOf(room.open_url);
    assert.match(env.facilitatorPath, /#invite=./, 'the facilitator link carries its invite in the fragment');
    await h.startSuite(env, 'moderation-server.log', SHOTS);
  });

  after(() => h.endSuite(env));

  it('seats a facilitator through their invite and a participant through the open link', { timeout: TEST_TIMEOUT }, async () => {
    pages.Fran = await openPage('Fran', env.facilitatorPath);
    await pages.Fran.getByText('You are invited to run this call', { exact: false }).waitFor({ timeout: WAIT });
    assert.ok(!pages.Fran.url().includes('invite='), 'the secret left the address bar');
    await joinAs(pages.Fran, 'Fran');
    await tiles(pages.Fran).filter({ hasText: 'Fran' }).getByText('Facilitator').waitFor({ timeout: WAIT });
    pages.Pat = await openPage('Pat', env.openPath);
    await joinAs(pages.Pat, 'Pat');
    await expectMediaFrom(pages.Fran, 1, 'Fran');
    await expectMediaFrom(pages.Pat, 1, 'Pat');
  });

  it('mutes the participant: their audio stops reaching the facilitator, they are told, and only they unmute', { timeout: TEST_TIMEOUT }, async () => {
    const pat = await idOn(pages.Fran, 'Pat');
    await watch(pages.Fran, pat);
    await grows(pages.Fran, pat, 'audio', 'packetsReceived', 25, "Pat's audio before the mute");
    await act('Pat', 'Mute');

    // Pat is told, and cannot unmute.
    await pages.Pat.getByRole('status').filter({ hasText: 'A facilitator muted you. Raise your hand to ask to speak.' }).waitFor({ timeout: WAIT });
    const patMute = pages.Pat.getByRole('button', { name: 'Mute', exact: true });
    assert.equal(await patMute.isDisabled(), true, "Pat's microphone button is disabled");

    // Pat's video is the clock: while it plays on, no audio packet of Pat's reaches Fran.
    await grows(pages.Fran, pat, 'video', 'framesDecoded', 15, 'half a second of video');
    const closed = await inbound(pages.Fran, pat, 'audio');
    await grows(pages.Fran, pat, 'video', 'framesDecoded', 60, 'two seconds of video');
    const stillClosed = await inbound(pages.Fran, pat, 'audio');
    assert.equal(stillClosed.packetsReceived, closed.packetsReceived, "no audio packet of Pat's reached Fran while muted");
    await pages.Pat.screenshot({ path: path.join(SHOTS, 'muted-by-facilitator.png') });

    // Allowed again: the button works, but the microphone stays off until Pat turns it on.
    await act('Pat', 'Allow microphone');
    await pages.Pat.waitForFunction(() => !document.querySelector('#mute-btn')?.hasAttribute('disabled'), null, { timeout: WAIT });
    assert.equal(await patMute.getAttribute('aria-pressed'), 'true', "Pat's microphone is still off");
    await patMute.click();
    assert.equal(await patMute.getAttribute('aria-pressed'), 'false');
    await grows(pages.Fran, pat, 'audio', 'packetsReceived', 50, "Pat's audio after the unmute");
  });

  it('lets a raised hand be seen in order and lowered by the facilitator', { timeout: TEST_TIMEOUT }, async () => {
    await pages.Pat.getByRole('button', { name: 'Raise hand' }).click();
    await pages.Pat.getByRole('button', { name: 'Lower hand', exact: true }).waitFor({ timeout: WAIT });
    const panel = pages.Fran.getByRole('complementary', { name: 'People' });
    await panel.getByRole('img', { name: 'Hand raised, number 1 in line' }).waitFor({ timeout: WAIT });
    await act('Pat', 'Lower hand');
    await pages.Pat.getByRole('button', { name: 'Raise hand' }).waitFor({ timeout: WAIT });
  });

  it('puts the next pages of a full room in line, with their places, and no media connection', { timeout: TEST_TIMEOUT }, async () => {
    pages.Wes = await openPage('Wes', env.openPath);
    await askToJoin(pages.Wes, 'Wes');
    await place(pages.Wes).getByText('You are number 1 in line').waitFor({ timeout: WAIT });
    pages.Xia = await openPage('Xia', env.openPath);
    await askToJoin(pages.Xia, 'Xia');
    await place(pages.Xia).getByText('You are number 2 in line').waitFor({ timeout: WAIT });
    for (const name of ['Wes', 'Xia']) {
      const { peerConnections } = await pages[name].evaluate(() => window.__roundtableDecodedMedia());
      assert.equal(peerConnections, 0, `${name} has no media connection while waiting`);
    }
    const queue = pages.Fran.getByRole('region', { name: /Waiting to join/ });
    await queue.getByRole('button', { name: 'Admit Xia' }).waitFor({ timeout: WAIT });
    const order = await queue.locator('.person-name').allInnerTexts();
    assert.deepEqual(order, ['Wes', 'Xia'], 'the facilitator sees the queue in order');
    await pages.Wes.screenshot({ path: path.join(SHOTS, 'waiting.png') });
    await pages.Fran.screenshot({ path: path.join(SHOTS, 'queue.png') });
  });

  it('removes the participant: barring an open-link join is refused, a plain removal ends their call', { timeout: TEST_TIMEOUT }, async () => {
    // Pat came through the open link: there is no invite to bar, and nothing happens.
    await act('Pat', 'Remove');
    const dialog = pages.Fran.getByRole('dialog', { name: 'Remove Pat?' });
    await dialog.getByLabel(/bar their invitation/).check();
    await dialog.getByRole('button', { name: 'Remove' }).click();
    await pages.Fran.getByRole('alert').filter({ hasText: 'no invitation to bar' }).waitFor({ timeout: WAIT });
    assert.equal(await tiles(pages.Fran).filter({ hasText: 'Pat' }).count(), 1, 'Pat is still in the call');

    await act('Pat', 'Remove');
    await dialog.getByRole('button', { name: 'Remove' }).click();
    await pages.Pat.getByRole('heading', { name: 'You were removed from the call' }).waitFor({ timeout: WAIT });
    await tiles(pages.Fran).filter({ hasText: 'Pat' }).waitFor({ state: 'detached', timeout: WAIT });
    await pages.Pat.waitForFunction(
      () => window.__roundtableReceivingSections() === 0,
      null,
      { timeout: WAIT },
    );
    const open = await pages.Pat.evaluate(() => window.__roundtableDecodedMedia());
    assert.equal(open.video + open.audio, 0, "Pat's page receives nothing once removed");
    await pages.Pat.screenshot({ path: path.join(SHOTS, 'removed.png') });
    // Nobody took the freed seat by themselves: admitting is the facilitator's.
    await place(pages.Wes).getByText('You are number 1 in line').waitFor({ timeout: WAIT });
  });

  it('admits the first in line, who then sends and receives media; the next moves up, and is declined', { timeout: TEST_TIMEOUT }, async () => {
    const queue = pages.Fran.getByRole('region', { name: /Waiting to join/ });
    await queue.getByRole('button', { name: /Admit/ }).first().click();
    await tiles(pages.Wes).filter({ hasText: 'Fran' }).waitFor({ timeout: WAIT });
    await place(pages.Xia).getByText('You are number 1 in line').waitFor({ timeout: WAIT });
    await expectMediaFrom(pages.Wes, 1, 'Wes, admitted');
    const wes = await idOn(pages.Fran, 'Wes');
    await watch(pages.Fran, wes);
    await grows(pages.Fran, wes, 'video', 'framesDecoded', 10, "Wes's video on Fran's page");
    await grows(pages.Fran, wes, 'audio', 'packetsReceived', 25, "Wes's audio on Fran's page");

    await queue.getByRole('button', { name: 'Decline Xia' }).click();
    await pages.Xia.getByRole('heading', { name: 'You were not let in' }).waitFor({ timeout: WAIT });
    await queue.waitFor({ state: 'hidden', timeout: WAIT });
  });

  it('locks and unlocks the room for everyone to see', { timeout: TEST_TIMEOUT }, async () => {
    const panel = pages.Fran.getByRole('complementary', { name: 'People' });
    await panel.getByRole('button', { name: 'Lock room' }).click();
    await pages.Wes.getByText('Room locked').waitFor({ timeout: WAIT });
    await panel.getByRole('button', { name: 'Unlock room' }).click();
    await pages.Wes.getByText('Room locked').waitFor({ state: 'hidden', timeout: WAIT });
  });
});
