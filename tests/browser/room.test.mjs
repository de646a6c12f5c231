// End-to-end: real headless Chromium pages join a Roundtable room through the web client,
// and media is judged by what the browsers decoded (getStats), not by the UI.
//
// Run (as root, inside a network namespace that holds only loopback):
//   unshare --net sh -c 'ip link set lo up && ROUNDTABLE_BIN=target/debug/roundtable node --test tests/browser/'
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { accessSync, constants, createWriteStream, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SHOTS = path.join(REPO, 'target', 'screenshots');
const LOGS = path.join(REPO, 'target', 'browser-test');
const CHROMIUM = '/usr/bin/chromium';
/** Exactly the flags of shared/TESTING-WEBRTC.md. */
const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
  '--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns',
];
/** The admin token the server runs with (for the admin API's forwarding gate). */
const ADMIN_TOKEN = 'browser-test-admin-token';
/** Two shared cores: be generous. */
const WAIT = 60_000;
const TEST_TIMEOUT = 180_000;

/** @type {{bin: string, dataDir: string, userDataDir: string, server: import('node:child_process').ChildProcess | null,
 *   base: string, room: {id: string, title: string}, context: import('playwright-core').BrowserContext | null}} */
const env = { bin: '', dataDir: '', userDataDir: '', server: null, base: '', room: { id: '', title: '' }, context: null };
/** @type {Record<string, import('playwright-core').Page>} */
const pages = {};

// ---- helpers --------------------------------------------------------------------------------

function requireBinary() {
  const bin = process.env.ROUNDTABLE_BIN;
  if (!bin) {
    throw new Error('ROUNDTABLE_BIN is not set. Build the server (cargo build -p roundtable) and run with ROUNDTABLE_BIN=target/debug/roundtable.');
  }
  const resolved = path.resolve(bin);
  try {
    accessSync(resolved, constants.X_OK);
  } catch {
    throw new Error(`ROUNDTABLE_BIN=${bin} is not an executable file.`);
  }
  try {
    accessSync(CHROMIUM, constants.X_OK);
  } catch {
    throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
  }
  return resolved;
}

/** `roundtable room create --json`; returns the parsed room. */
function createRoom(bin, dataDir, title) {
  const out = execFileSync(bin, ['--data-dir', dataDir, 'room', 'create', '--title', title, '--json'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: WAIT,
  });
  const line = out.split('\n').map((l) => l.trim()).find((l) => l.startsWith('{'));
  assert.ok(line, `room create printed no JSON object; stdout was:\n${out}`);
  const room = JSON.parse(line);
  for (const key of ['id', 'title', 'capacity', 'join_url']) assert.ok(key in room, `room create JSON lacks "${key}": ${line}`);
  assert.equal(room.title, title);
  return room;
}

/** Start the server on an ephemeral port; resolve with its base URL once it says it listens. */
function startServer(bin, dataDir) {
  mkdirSync(LOGS, { recursive: true });
  const logPath = path.join(LOGS, 'server.log');
  const log = createWriteStream(logPath);
  const args = ['--data-dir', dataDir, '--bind', '127.0.0.1:0', '--media-port', '0', '--admin-token', ADMIN_TOKEN];
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  env.server = child;
  // Should the runner itself die (a timeout, Ctrl-C), leave no server behind.
  process.once('exit', () => child.kill('SIGKILL'));
  child.stderr.pipe(log);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "listening on" line within ${WAIT} ms; see ${logPath}`)), WAIT);
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      log.write(`${line}\n`);
      const m = line.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`server exited (code ${code}, signal ${signal}) before listening; see ${logPath}`));
    });
  });
}

async function stopServer() {
  const child = env.server;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/**
 * Runs in the page before any of its scripts: remember every RTCPeerConnection it creates, and
 * offer `__roundtableDecodedMedia()`, which counts the distinct inbound-rtp entries that decoded
 * video frames or received audio packets, and the remote-outbound-rtp entries of each kind: the
 * sender reports that reached the browser about the streams it receives, which it needs to play
 * a person's audio and video in sync. `getStats()` is asynchronous and `waitForFunction`
 * wants a synchronous answer, so a watcher keeps the latest count in `__roundtableMedia`.
 */
function recordPeerConnections() {
  const Native = window.RTCPeerConnection;
  const created = [];
  window.RTCPeerConnection = class extends Native {
    constructor(...args) {
      super(...args);
      created.push(this);
    }
  };
  window.__roundtableDecodedMedia = async () => {
    const video = new Set();
    const audio = new Set();
    const reported = { video: new Set(), audio: new Set() };
    for (const pc of created) {
      if (pc.connectionState === 'closed') continue;
      const report = await pc.getStats();
      report.forEach((s) => {
        if (s.type === 'remote-outbound-rtp' && s.remoteTimestamp > 0) reported[s.kind]?.add(s.id);
        if (s.type !== 'inbound-rtp') return;
        if (s.kind === 'video' && s.framesDecoded > 0) video.add(s.id);
        if (s.kind === 'audio' && s.packetsReceived > 0) audio.add(s.id);
      });
    }
    return {
      video: video.size,
      audio: audio.size,
      reportedVideo: reported.video.size,
      reportedAudio: reported.audio.size,
      peerConnections: created.length,
    };
  };
  // The sections the page receives on: those of the connections the server offers (every
  // transceiver the page did not add to send).
  window.__roundtableReceivingSections = () => created
    .filter((pc) => pc.connectionState !== 'closed')
    .flatMap((pc) => pc.getTransceivers())
    .filter((t) => t.direction !== 'sendonly' && t.direction !== 'sendrecv').length;
  // The inbound streams of tracks whose id starts with `prefix` (a participant's tracks are
  // `{participant}-a1`, `{participant}-v2`, ...), summed: what the page decoded and lost.
  window.__roundtableInbound = async (prefix, kind) => {
    const sum = { packetsReceived: 0, packetsLost: 0, framesDecoded: 0, keyFramesDecoded: 0, totalFreezesDuration: 0 };
    for (const pc of created) {
      if (pc.connectionState === 'closed') continue;
      (await pc.getStats()).forEach((s) => {
        if (s.type !== 'inbound-rtp' || s.kind !== kind || !String(s.trackIdentifier).startsWith(prefix)) return;
        for (const key of Object.keys(sum)) sum[key] += s[key] ?? 0;
      });
    }
    return sum;
  };
  // `__roundtableInbound(prefix, kind)` for both kinds, kept fresh (every 100 ms) in
  // `__roundtableInboundNow`, for `waitForFunction`, which wants a synchronous answer.
  window.__roundtableInboundNow = {};
  window.__roundtableWatchInbound = (prefix) => {
    const watch = async () => {
      for (const kind of ['audio', 'video']) {
        window.__roundtableInboundNow[kind] = await window.__roundtableInbound(prefix, kind).catch(() => undefined);
      }
      setTimeout(watch, 100);
    };
    watch();
  };
  // What the page sent of `kind`, over every outbound stream.
  window.__roundtableSent = async (kind) => {
    let packets = 0;
    for (const pc of created) {
      if (pc.connectionState === 'closed') continue;
      (await pc.getStats()).forEach((s) => {
        if (s.type === 'outbound-rtp' && s.kind === kind) packets += s.packetsSent ?? 0;
      });
    }
    return packets;
  };
  window.__roundtableMedia = { video: 0, audio: 0, reportedVideo: 0, reportedAudio: 0, peerConnections: 0 };
  const watch = async () => {
    window.__roundtableMedia = await window.__roundtableDecodedMedia().catch(() => window.__roundtableMedia);
    setTimeout(watch, 200);
  };
  watch();
}

/** Open a page at the room, with the peer-connection recorder and error logging installed. */
async function openPage(label, urlPath, initScripts = []) {
  const page = await env.context.newPage();
  page.on('pageerror', (e) => console.log(`[${label}] page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().includes('404 (Not Found)')) console.log(`[${label}] console error: ${m.text()}`);
  });
  // Server refusals are worth seeing when something fails.
  page.on('websocket', (ws) => ws.on('framereceived', ({ payload }) => {
    if (String(payload).startsWith('{"type":"error"')) console.log(`[${label}] server error frame: ${payload}`);
  }));
  await page.addInitScript(recordPeerConnections);
  for (const script of initScripts) await page.addInitScript(script);
  await page.goto(env.base + urlPath);
  return page;
}

/** Fill "Your name" and click "Join"; resolve once the call screen shows our own tile. */
async function joinAs(page, name) {
  await page.getByLabel('Your name').fill(name);
  await page.getByRole('button', { name: 'Join' }).click();
  await page.locator('[data-participant-id]', { hasText: name }).waitFor({ timeout: WAIT });
}

const tiles = (page) => page.locator('[data-participant-id]');

/** Wait until the page has sender reports about the audio and the video of `n` others. */
async function expectSenderReportsFrom(page, n, label) {
  await page.waitForFunction(
    (want) => window.__roundtableMedia.reportedVideo >= want && window.__roundtableMedia.reportedAudio >= want,
    n,
    { timeout: WAIT },
  ).catch(async (e) => {
    const have = await page.evaluate(() => window.__roundtableDecodedMedia());
    throw new Error(`${label}: no sender reports about ${n} others' audio and video in ${WAIT} ms (have ${JSON.stringify(have)}): ${e.message}`);
  });
}

/** Wait until the page decoded media from `n` others, then require exactly `n` of each kind. */
async function expectMediaFrom(page, n, label) {
  const decoded = () => page.evaluate(() => window.__roundtableDecodedMedia());
  await page.waitForFunction(
    (want) => window.__roundtableMedia.video >= want && window.__roundtableMedia.audio >= want,
    n,
    { timeout: WAIT },
  ).catch(async (e) => {
    throw new Error(`${label}: media from ${n} others did not arrive in ${WAIT} ms (have ${JSON.stringify(await decoded())}): ${e.message}`);
  });
  const { video, audio } = await decoded();
  assert.deepEqual({ video, audio }, { video: n, audio: n }, `${label} decodes video and receives audio from exactly ${n} others`);
}

/** Wait until the <video> of `name`'s tile on `page` shows new frames, decoded by the page. */
async function expectTileVideo(page, name, label) {
  const video = tiles(page).filter({ hasText: name }).locator('video');
  await video.waitFor({ timeout: WAIT });
  const element = await video.elementHandle();
  const start = await element.evaluate((v) => v.getVideoPlaybackQuality().totalVideoFrames);
  await page.waitForFunction(
    ([v, from]) => v.getVideoPlaybackQuality().totalVideoFrames >= from + 10,
    [element, start],
    { timeout: WAIT },
  ).catch((e) => {
    throw new Error(`${label}: ${name}'s video showed no new frames in ${WAIT} ms: ${e.message}`);
  });
}

// ---- the tests ------------------------------------------------------------------------------

describe('a Skill Share room in real Chromium', { timeout: TEST_TIMEOUT * 6 }, () => {
  before(async () => {
    env.bin = requireBinary();
    env.dataDir = mkdtempSync(path.join(tmpdir(), 'roundtable-data-'));
    env.userDataDir = mkdtempSync(path.join(tmpdir(), 'roundtable-chromium-'));
    env.room = createRoom(env.bin, env.dataDir, 'Browser test');
    env.base = await startServer(env.bin, env.dataDir);
    mkdirSync(SHOTS, { recursive: true });
    env.context = await chromium.launchPersistentContext(env.userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_FLAGS,
      viewport: { width: 1280, height: 800 },
    });
  });

  after(async () => {
    await env.context?.close().catch(() => {});
    await stopServer();
    for (const dir of [env.dataDir, env.userDataDir]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

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
    const input = pages.Bob.getByLabel('Chat message');
    const texts = [1, 2, 3, 4, 5, 6].map((n) => `Bob's point ${n}`);
    for (const text of texts) {
      await input.fill(text);
      await pages.Bob.getByRole('button', { name: 'Send' }).click();
      if (text !== texts[5]) await pages.Bob.getByRole('list', { name: 'Chat log' }).getByText(text).waitFor({ timeout: WAIT });
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
    await grows('audio', 'packetsReceived', 25, 'half a second of audio');
    const closed = await inbound('video');
    await grows('audio', 'packetsReceived', 100, 'two seconds of audio');
    const stillClosed = await inbound('video');
    assert.equal(stillClosed.packetsReceived, closed.packetsReceived, 'no video packet reached Alice while gated');
    assert.equal(stillClosed.framesDecoded, closed.framesDecoded, 'Alice decoded no frame of Bob while gated');
    const heldBack = (await pages.Bob.evaluate(() => window.__roundtableSent('video'))) - sentBefore;

    await gate(true);
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
