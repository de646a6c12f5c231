// What the browser tests share: the server binary and its CLI, the server's start and stop,
// headless Chromium, pages that record their peer connections, and waits on what a page
// decoded (getStats), not on what its UI claims.
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { accessSync, constants, createWriteStream, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SHOTS = path.join(REPO, 'target', 'screenshots');
export const LOGS = path.join(REPO, 'target', 'browser-test');
export const CHROMIUM = '/usr/bin/chromium';
/** Exactly the flags of shared/TESTING-WEBRTC.md. */
export const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
  '--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns',
];
/** The admin token the server runs with (for the admin API's forwarding gate). */
export const ADMIN_TOKEN = 'browser-test-admin-token';
/** Two shared cores: be generous. */
export const WAIT = 60_000;
export const TEST_TIMEOUT = 180_000;

// ---- helpers --------------------------------------------------------------------------------

export function requireBinary() {
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

/** Run the `roundtable` CLI on `dataDir` with `args` (ending in `--json`); return the JSON object it printed. */
export function cli(bin, dataDir, args) {
  const out = execFileSync(bin, ['--data-dir', dataDir, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: WAIT,
  });
  const line = out.split('\n').map((l) => l.trim()).find((l) => l.startsWith('{'));
  assert.ok(line, `roundtable ${args.join(' ')} printed no JSON object; stdout was:\n${out}`);
  return JSON.parse(line);
}

/**
 * Start the server on an ephemeral port, its log in target/browser-test/`logName`; resolve
 * with its base URL once it says it listens. `onChild` gets the process at once, so that it
 * can be stopped whatever happens next.
 */
export function startServer(bin, dataDir, logName, onChild) {
  mkdirSync(LOGS, { recursive: true });
  const logPath = path.join(LOGS, logName);
  const log = createWriteStream(logPath);
  const args = ['--data-dir', dataDir, '--bind', '127.0.0.1:0', '--media-port', '0', '--admin-token', ADMIN_TOKEN];
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  onChild(child);
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

/** SIGTERM, then SIGKILL after 10 s. */
export async function stopServer(child) {
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
export function recordPeerConnections() {
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
  // What the page received of `kind` from the participant whose tile is `id`: the inbound
  // streams of the receivers whose tracks the tile plays. A leaver's sections are given to the
  // next joiner, whose tracks then keep the leaver's identifiers; the tile does not mislead.
  window.__roundtableTileInbound = async (id, kind) => {
    const sum = { packetsReceived: 0, packetsLost: 0, framesDecoded: 0 };
    const video = document.querySelector(`[data-participant-id="${CSS.escape(id)}"] video`);
    const tracks = video?.srcObject?.getTracks().filter((t) => t.kind === kind) ?? [];
    for (const pc of created) {
      if (pc.connectionState === 'closed') continue;
      for (const receiver of pc.getReceivers()) {
        if (!tracks.includes(receiver.track)) continue;
        (await receiver.getStats()).forEach((s) => {
          if (s.type !== 'inbound-rtp') return;
          for (const key of Object.keys(sum)) sum[key] += s[key] ?? 0;
        });
      }
    }
    return sum;
  };
  // `__roundtableTileInbound(id, kind)` for both kinds, kept fresh in `__roundtableTileNow[id]`.
  window.__roundtableTileNow = {};
  window.__roundtableWatchTile = (id) => {
    const watch = async () => {
      const now = {};
      for (const kind of ['audio', 'video']) now[kind] = await window.__roundtableTileInbound(id, kind).catch(() => undefined);
      window.__roundtableTileNow[id] = now;
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

/** Open a page at `base + urlPath`, with the peer-connection recorder and error logging installed. */
export async function openPage(context, base, label, urlPath, initScripts = []) {
  const page = await context.newPage();
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
  await page.goto(base + urlPath);
  return page;
}

/** Fill "Your name" and click "Join"; resolve once the call screen shows our own tile. */
export async function joinAs(page, name) {
  await page.getByLabel('Your name').fill(name);
  await page.getByRole('button', { name: 'Join' }).click();
  await page.locator('[data-participant-id]', { hasText: name }).waitFor({ timeout: WAIT });
}

export const tiles = (page) => page.locator('[data-participant-id]');

/** Wait until the page has sender reports about the audio and the video of `n` others. */
export async function expectSenderReportsFrom(page, n, label) {
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
export async function expectMediaFrom(page, n, label) {
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
export async function expectTileVideo(page, name, label) {
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

/** Headless Chromium with a fresh profile in `userDataDir`, at desktop size. */
export function launchBrowser(userDataDir) {
  return chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width: 1280, height: 800 },
  });
}

/** The path and fragment of a link the CLI printed; the host is the test server's. @param {string} url */
export function pathOf(url) {
  const u = new URL(url);
  return u.pathname + u.hash;
}

/**
 * A suite's start: the server on `env.dataDir` (its log in `logName`), the screenshots'
 * folder `shots`, and Chromium on `env.userDataDir`. Fills `env.base`, `env.server` and
 * `env.context`.
 */
export async function startSuite(env, logName, shots) {
  env.base = await startServer(env.bin, env.dataDir, logName, (child) => {
    env.server = child;
  });
  mkdirSync(shots, { recursive: true });
  env.context = await launchBrowser(env.userDataDir);
}

/** A suite's end: Chromium, the server and the suite's folders go. */
export async function endSuite(env) {
  await env.context?.close().catch(() => {});
  await stopServer(env.server);
  for (const dir of [env.dataDir, env.userDataDir]) if (dir) rmSync(dir, { recursive: true, force: true });
}
