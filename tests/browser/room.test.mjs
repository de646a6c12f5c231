// End-to-end: real headless Chromium pages join a Roundtable room through the web client,
// and media is judged by what the browsers decoded (getStats), not by the UI.
//
// Run (as root, inside a network namespace that holds only loopback):
//   unshare --net sh -c 'ip link set lo up && ROUNDTABLE_BIN=target/debug/roundtable node --test tests/browser/'
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as h from './harness.mjs';
import {
  ADMIN_TOKEN, SHOTS, TEST_TIMEOUT, WAIT, expectMediaFrom, expectSenderReportsFrom, expectTileVideo, joinAs, tiles,
} from './harness.mjs';

/** @type {{bin: string, dataDir: string, userDataDir: string, server: import('node:child_process').ChildProcess | null,
 *   base: string, room: {id: string, title: string}, context: import('playwright-core').BrowserContext | null}} */
const env = { bin: '', dataDir: '', userDataDir: '', server: null, base: '', room: { id: '', title: '' }, context: null };
/** @type {Record<string, import('playwright-core').Page>} */
const pages = {};

// ---- helpers --------------------------------------------------------------------------------

/** `roundtable room create --json`; returns the parsed room. */
function createRoom(bin, dataDir, title) {
  const room = h.cli(bin, dataDir, ['room', 'create', '--title', title, '--json']);
  for (const key of ['id', 'title', 'capacity', 'open_url']) assert.ok(key in room, `room create JSON lacks "${key}": ${JSON.stringify(room)}`);
  assert.equal(room.title, title);
  return room;
}

const openPage = (label, urlPath, initScripts = []) => h.openPage(env.context, env.base, label, urlPath, initScripts);

// ---- the tests ------------------------------------------------------------------------------

describe('a Skill Share room in real Chromium', { timeout: TEST_TIMEOUT * 6 }, () => {
  before(async () => {
    env.bin = h.requireBinary();
    env.dataDir = mkdtempSync(path.join(tmpdir(), 'roundtable-data-'));
    env.userDataDir = mkdtempSync(path.join(tmpdir(), 'roundtable-chromium-'));
    env.room = createRoom(env.bin, env.dataDir, 'Browser test');
    await h.startSuite(env, 'server.log', SHOTS);
  });

  after(() => h.endSuite(env));

  it('shows the pre-join screen with the room title, a name field and a live preview', { timeout: TEST_TIMEOUT }, async () => {
    const page = await openPage('Alice', `/r/${env.room.id}`);
    pages.Alice = page;
    await page.getByRole('heading', { name: 'Browser test' }).waitFor({ timeout: WAIT });
    await page.getByLabel('Your name').fill('Alice');
    await page.getByLabel('Camera', { exact: true }).locator('option').first().waitFor({ state: 'attached', timeout: WAIT });
    await page.waitForFunction(() => {
      const v = document.querySelector('#preview-video');
      return v instanceof HTMLVideoElement && v.readyState >= 2 && v.currentTime > 0;
    }, null, { timeout: WAIT });
    await page.screenshot({ path: path.join(SHOTS, 'prejoin.png') });
  });

  it('three people join through the UI and decode each other\'s audio and video', { timeout: TEST_TIMEOUT }, async () => {
    pages.Bob = await openPage('Bob', `/r/${env.room.id}`);
    pages.Carol = await openPage('Carol', `/r/${env.room.id}`);
    await joinAs(pages.Alice, 'Alice');
    await joinAs(pages.Bob, 'Bob');
    await joinAs(pages.Carol, 'Carol');
    for (const [name, page] of Object.entries(pages)) {
      await tiles(page).nth(2).waitFor({ timeout: WAIT });
      assert.equal(await tiles(page).count(), 3, `${name} sees three tiles`);
    }
    for (const [name, page] of Object.entries(pages)) await expectMediaFrom(page, 2, name);
    // The server passes each publisher's sender reports on, so a browser can sync lips and voice.
    for (const [name, page] of Object.entries(pages)) await expectSenderReportsFrom(page, 2, name);
  });

  it('delivers a chat message to everyone', { timeout: TEST_TIMEOUT }, async () => {
    const text = 'Hello from Alice: the slides are at page 12';
    await pages.Alice.getByLabel('Chat message').fill(text);
    await pages.Alice.getByRole('button', { name: 'Send' }).click();
    for (const name of ['Alice', 'Bob', 'Carol']) {
      const log = pages[name].getByRole('list', { name: 'Chat log' });
      await log.getByText(text).waitFor({ timeout: WAIT });
      assert.equal(await log.getByText(text).count(), 1, `${name} shows the message once`);
    }
    await pages.Alice.getByRole('status').getByText('Connected').waitFor({ timeout: WAIT });
    await pages.Alice.screenshot({ path: path.join(SHOTS, 'three-person-call.png') });
  });

  it('gives a refused chat message back to its sender, and shows it to no one', { timeout: TEST_TIMEOUT }, async () => {
    // The room takes 5 messages per person in 10 s; the sixth is refused (`rate_limited`).
    // All six go at once, without waiting for echoes: however slow the commits, the sixth
    // comes within the window.
    const input = pages.Bob.getByLabel('Chat message');
    const texts = [1, 2, 3, 4, 5, 6].map((n) => `Bob's point ${n}`);
    for (const text of texts) {
      await input.fill(text);
      await pages.Bob.getByRole('button', { name: 'Send' }).click();
    }
    for (const text of texts.slice(0, 5)) {
      await pages.Bob.getByRole('list', { name: 'Chat log' }).getByText(text).waitFor({ timeout: WAIT });
    }
    await pages.Bob.waitForFunction((t) => document.querySelector('#chat-input')?.value === t, texts[5], { timeout: WAIT });
    const log = pages.Alice.getByRole('list', { name: 'Chat log' });
    await log.getByText(texts[4]).waitFor({ timeout: WAIT });
    assert.equal(await log.getByText(texts[5]).count(), 0, 'the refused message reached no one');
    await input.fill('');
  });

  it('shows a muted microphone on the others\' tiles when someone mutes', { timeout: TEST_TIMEOUT }, async () => {
    const mute = pages.Bob.getByRole('button', { name: 'Mute' });
    await mute.click();
    assert.equal(await mute.getAttribute('aria-pressed'), 'true');
    const bobOnAlice = tiles(pages.Alice).filter({ hasText: 'Bob' });
    await bobOnAlice.getByRole('img', { name: 'Microphone muted' }).waitFor({ timeout: WAIT });
    await mute.click();
    await bobOnAlice.getByRole('img', { name: 'Microphone muted' }).waitFor({ state: 'hidden', timeout: WAIT });
  });

  it('drops a participant\'s tile for everyone when they leave', { timeout: TEST_TIMEOUT }, async () => {
    await pages.Carol.getByRole('button', { name: 'Leave' }).click();
    await pages.Carol.getByRole('button', { name: 'Rejoin' }).waitFor({ timeout: WAIT });
    for (const name of ['Alice', 'Bob']) {
      const page = pages[name];
      await tiles(page).filter({ hasText: 'Carol' }).waitFor({ state: 'detached', timeout: WAIT });
      assert.equal(await tiles(page).count(), 2, `${name} sees two tiles after Carol left`);
      const grid = await page.getByRole('region', { name: 'Participants' }).innerText();
      assert.ok(!grid.includes('Carol'), `${name}'s grid no longer names Carol: ${JSON.stringify(grid)}`);
    }
  });

  it('sees and hears someone who rejoins, on the sections they left', { timeout: TEST_TIMEOUT }, async () => {
    try {
      // "Rejoin" joins again at once, with the name given before.
      await pages.Carol.getByRole('button', { name: 'Rejoin' }).click();
      await tiles(pages.Carol).filter({ hasText: 'Carol' }).waitFor({ timeout: WAIT });
      for (const name of ['Alice', 'Bob']) {
        const page = pages[name];
        await tiles(page).filter({ hasText: 'Carol' }).waitFor({ timeout: WAIT });
        await expectTileVideo(page, 'Carol', name);
        // Carol's new tracks take the sections her first ones left, so a long session
        // does not grow everyone's SDP with each rejoin.
        const sections = await page.evaluate(() => window.__roundtableReceivingSections());
        assert.equal(sections, 4, `${name} receives on 4 sections (the other's 2, Carol's 2)`);
      }
      await expectMediaFrom(pages.Carol, 2, 'Carol, back');
      // And she leaves for good: the next tests expect Alice and Bob alone.
      await pages.Carol.getByRole('button', { name: 'Leave' }).click();
      for (const name of ['Alice', 'Bob']) {
        await tiles(pages[name]).filter({ hasText: 'Carol' }).waitFor({ state: 'detached', timeout: WAIT });
      }
    } finally {
      await pages.Carol.close();
      delete pages.Carol;
    }
  });


  // The admin API's gate is a moderation under the name `admin`: Bob's page is told, holds its
  // camera off, and turns it on again only when Bob does.
  it('stops a gated camera for the others and resumes it with no gap they count as loss', { timeout: TEST_TIMEOUT }, async () => {
    const bob = await tiles(pages.Alice).filter({ hasText: 'Bob' }).getAttribute('data-participant-id');
    const inbound = (kind) => pages.Alice.evaluate(([p, k]) => window.__roundtableInbound(p, k), [`${bob}-`, kind]);
    const gate = async (open) => {
      const res = await fetch(`${env.base}/api/admin/rooms/${env.room.id}/participants/${bob}/forwarding`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ kind: 'video', open }),
      });
      assert.equal(res.status, 200, await res.text());
    };
    /** Wait until Alice's inbound `kind` from Bob has grown by `by` in `field`. */
    const grows = async (kind, field, by, what) => {
      const target = (await inbound(kind))[field] + by;
      await pages.Alice.waitForFunction(
        ([k, f, t]) => (window.__roundtableInboundNow[k]?.[f] ?? -1) >= t,
        [kind, field, target],
        { timeout: WAIT },
      ).catch((e) => {
        throw new Error(`${what}: ${field} did not grow by ${by} in ${WAIT} ms: ${e.message}`);
      });
    };
    await pages.Alice.evaluate((p) => window.__roundtableWatchInbound(p), `${bob}-`);
    // Bob's audio keeps flowing throughout: it is the test's clock (50 packets a second).
    await grows('video', 'framesDecoded', 10, "Bob's video before the gate");
    const before = await inbound('video');
    const sentBefore = await pages.Bob.evaluate(() => window.__roundtableSent('video'));
    await gate(false);
    const camera = pages.Bob.getByRole('button', { name: 'Camera', exact: true });
    await pages.Bob.getByRole('status').filter({ hasText: 'stopped your camera' }).waitFor({ timeout: WAIT });
    assert.equal(await camera.isDisabled(), true, "Bob's camera button is disabled while gated");
    await grows('audio', 'packetsReceived', 25, 'half a second of audio');
    const closed = await inbound('video');
    await grows('audio', 'packetsReceived', 100, 'two seconds of audio');
    const stillClosed = await inbound('video');
    assert.equal(stillClosed.packetsReceived, closed.packetsReceived, 'no video packet reached Alice while gated');
    assert.equal(stillClosed.framesDecoded, closed.framesDecoded, 'Alice decoded no frame of Bob while gated');
    const heldBack = (await pages.Bob.evaluate(() => window.__roundtableSent('video'))) - sentBefore;

    await gate(true);
    await pages.Bob.waitForFunction(() => !document.querySelector('#camera-btn')?.hasAttribute('disabled'), null, { timeout: WAIT });
    assert.equal(await camera.getAttribute('aria-pressed'), 'false', "Bob's camera stays off until he turns it on");
    await camera.click();
    await grows('video', 'framesDecoded', 30, "Bob's video after the gate reopened");
    const after = await inbound('video');
    assert.ok(heldBack > 50, `Bob sent ${heldBack} video packets meanwhile`);
    // Without the rewrite, every packet held back would count as lost.
    const lost = after.packetsLost - before.packetsLost;
    assert.ok(lost <= 5, `Alice counted ${lost} of Bob's video packets lost (${heldBack} were held back)`);
    assert.ok(after.keyFramesDecoded > closed.keyFramesDecoded, 'a keyframe restarted the picture');
    console.log(`gate: ${heldBack} packets held back, ${lost} counted lost, freezes ${(after.totalFreezesDuration - before.totalFreezesDuration).toFixed(2)} s`);
    await expectTileVideo(pages.Alice, 'Bob', 'Alice, after the gate');
  });
  it('says plainly when a room does not exist', { timeout: TEST_TIMEOUT }, async () => {
    const page = await openPage('Unknown room', '/r/doesnotexist');
    await page.getByRole('heading', { name: /does not exist/i }).waitFor({ timeout: WAIT });
    assert.equal(await page.getByLabel('Your name').isVisible(), false, 'no join form for a missing room');
    await page.close();
  });

  it('explains a blocked camera and still lets the person join receive-only', { timeout: TEST_TIMEOUT }, async () => {
    const blockMedia = () => {
      navigator.mediaDevices.getUserMedia = async () => {
        throw new DOMException('Permission denied', 'NotAllowedError');
      };
    };
    const page = await openPage('Dave', `/r/${env.room.id}`, [blockMedia]);
    const notice = page.getByRole('alert').filter({ hasText: /camera and microphone/i });
    await notice.waitFor({ timeout: WAIT });
    assert.match(await notice.innerText(), /blocked/i);
    await joinAs(page, 'Dave');
    await tiles(page).nth(2).waitFor({ timeout: WAIT });
    assert.equal(await tiles(page).count(), 3, 'Dave sees Alice, Bob and himself');
    await expectMediaFrom(page, 2, 'Dave (receive-only)');
    for (const name of ['Alice', 'Bob']) {
      await tiles(pages[name]).filter({ hasText: 'Dave' }).waitFor({ timeout: WAIT });
    }
    await page.close();
  });
});
