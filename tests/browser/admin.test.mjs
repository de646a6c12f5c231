// The admin page (/admin, issue 21) in real Chromium: sign in with the admin token, list a
// finished recording session, open it, play a speaker's Ogg Opus file in the page's <audio>
// (through a signed link) and download it; then purge the speaker and delete the session,
// each after its confirmation. The admin token never appears in a URL the page requests.
//
// The session is laid down as a finished one leaves it: its rows in the database (sqlite3)
// and its files in the recordings folder, the Ogg pages written here.
//
// Run (as root, inside a network namespace that holds only loopback):
//   unshare --net sh -c 'ip link set lo up && ROUNDTABLE_BIN=target/debug/roundtable node --test tests/browser/admin.test.mjs'
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as h from './harness.mjs';
import { ADMIN_TOKEN, SHOTS, TEST_TIMEOUT, WAIT } from './harness.mjs';

const env = {
  bin: '', dataDir: '', userDataDir: '', base: '',
  /** @type {import('node:child_process').ChildProcess | null} */
  server: null,
  /** @type {import('playwright-core').BrowserContext | null} */
  context: null,
  room: '',
  session: '',
};
const shots = path.join(SHOTS, 'admin');

// ---- an Ogg Opus file (RFC 7845) ------------------------------------------------------------

/** CRC-32 of Ogg pages: polynomial 0x04c11db7, not reflected, starting at 0. */
const CRC_TABLE = Array.from({ length: 256 }, (_, i) => {
  let r = i << 24;
  for (let k = 0; k < 8; k++) r = r & 0x80000000 ? (r << 1) ^ 0x04c11db7 : r << 1;
  return r >>> 0;
});
function crc(bytes) {
  let c = 0;
  for (const b of bytes) c = ((c << 8) ^ CRC_TABLE[((c >>> 24) ^ b) & 0xff]) >>> 0;
  return c;
}

/** One page holding `packets` whole, ending at `granule`. */
function page(packets, granule, seq, flags) {
  const lacing = [];
  for (const p of packets) {
    let n = p.length;
    while (n >= 255) { lacing.push(255); n -= 255; }
    lacing.push(n);
  }
  const header = Buffer.alloc(27 + lacing.length);
  header.write('OggS', 0);
  header[5] = flags;
  header.writeBigUInt64LE(BigInt(granule), 6);
  header.writeUInt32LE(0x5254, 14); // serial
  header.writeUInt32LE(seq, 18);
  header[26] = lacing.length;
  Buffer.from(lacing).copy(header, 27);
  const out = Buffer.concat([header, ...packets]);
  out.writeUInt32LE(crc(out), 22);
  return out;
}

/** `seconds` of Opus silence (the three-byte packet browsers send), a page per second. */
function oggOpus(seconds) {
  const head = Buffer.alloc(19);
  head.write('OpusHead', 0);
  head[8] = 1; // version
  head[9] = 1; // one channel
  head.writeUInt32LE(48000, 12);
  const tags = Buffer.alloc(16);
  tags.write('OpusTags', 0);
  tags.writeUInt32LE(0, 8); // no vendor
  tags.writeUInt32LE(0, 12); // no comments
  const pages = [page([head], 0, 0, 0x02), page([tags], 0, 1, 0)];
  const silence = Buffer.from([0xf8, 0xff, 0xfe]);
  for (let s = 1; s <= seconds; s++) {
    const packets = Array.from({ length: 50 }, () => silence);
    pages.push(page(packets, s * 48000, s + 1, s === seconds ? 0x04 : 0));
  }
  return Buffer.concat(pages);
}

/** Lay down a finished session of room `room`: Ann spoke 3 s; a mixdown and chapters. */
function seedSession(dataDir, room) {
  const session = `${room}-1700000000000-1`;
  const sql = `
    INSERT INTO recording_sessions (id, room_id, started_at, ended_at, presentation_only, cut_off)
      VALUES ('${session}', '${room}', 1700000000000, 1700000600000, 0, 0);
    INSERT INTO consent_ledger (room_id, session_id, participant, name, invite, granted, ts)
      VALUES ('${room}', NULL, 'ann1', 'Ann Example', NULL, 1, 1699999990000);`;
  execFileSync('sqlite3', [path.join(dataDir, 'roundtable.db'), sql], { timeout: WAIT });
  const folder = path.join(dataDir, 'recordings', session);
  mkdirSync(path.join(folder, 'ann1'), { recursive: true });
  writeFileSync(path.join(folder, 'ann1', 'a1-1.opus'), oggOpus(3));
  writeFileSync(path.join(folder, 'mixdown.opus'), oggOpus(3));
  writeFileSync(path.join(folder, 'chapters.vtt'), 'WEBVTT\n\n00:00.000 --> 00:03.000\nOpening\n');
  return session;
}

describe('the admin page', { timeout: TEST_TIMEOUT * 2 }, () => {
  before(async () => {
    env.bin = h.requireBinary();
    env.dataDir = mkdtempSync(path.join(tmpdir(), 'rt-admin-'));
    env.userDataDir = mkdtempSync(path.join(tmpdir(), 'rt-admin-chromium-'));
    env.room = h.cli(env.bin, env.dataDir, ['room', 'create', '--title', 'Recorded', '--json']).id;
    env.session = seedSession(env.dataDir, env.room);
    await h.startSuite(env, 'admin.log', shots);
  });
  after(() => h.endSuite(env));

  it('lists a session, plays and downloads a file, purges a speaker and deletes the session', { timeout: TEST_TIMEOUT }, async () => {
    const page = await h.openPage(env.context, env.base, 'admin', '/admin');
    /** @type {string[]} */
    const urls = [];
    page.on('request', (r) => urls.push(r.url()));
    const folder = path.join(env.dataDir, 'recordings', env.session);
    const onDisk = readFileSync(path.join(folder, 'ann1', 'a1-1.opus'));

    await page.getByLabel('Admin token').waitFor({ timeout: WAIT });
    await page.screenshot({ path: path.join(shots, 'signin-desktop.png') });
    // A wrong token is refused, and the page says so.
    await page.getByLabel('Admin token').fill('not-the-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'The admin token was refused' }).waitFor({ timeout: WAIT });
    assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'a refused token is not kept');
    await page.getByLabel('Admin token').fill(ADMIN_TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    const open = page.getByRole('button', { name: new RegExp(`^Open the session of .* in room ${env.room}$`) });
    await open.waitFor({ timeout: WAIT });
    await page.screenshot({ path: path.join(shots, 'sessions-desktop.png'), fullPage: true });
    await open.click();

    const play = page.getByRole('button', { name: 'Play Audio a1 of Ann Example (ann1)' });
    await play.waitFor({ timeout: WAIT });
    assert.equal(await page.getByRole('row', { name: /Mixdown/ }).count(), 1, 'the mixdown is listed');
    assert.equal(await page.getByRole('row', { name: /Chapters \(WebVTT\)/ }).count(), 1, 'the chapters are listed');
    assert.match(await page.getByRole('row', { name: /Audio a1/ }).innerText(), /0:03/, 'its length, from the last granule');

    // Play: the <audio> loads the file through a signed link and its time runs.
    await play.click();
    await page.locator('#audio-player').waitFor({ timeout: WAIT });
    await page.waitForFunction(() => {
      const a = /** @type {HTMLAudioElement} */ (document.getElementById('audio-player'));
      return a.readyState >= 2 && Math.abs(a.duration - 3) < 0.1 && a.currentTime > 0;
    }, null, { timeout: WAIT }).catch(async (e) => {
      const state = await page.evaluate(() => {
        const a = /** @type {HTMLAudioElement} */ (document.getElementById('audio-player'));
        return { src: a.src, readyState: a.readyState, duration: a.duration, currentTime: a.currentTime, error: a.error?.message };
      });
      throw new Error(`the recording did not play: ${JSON.stringify(state)}: ${e.message}`);
    });
    const src = await page.locator('#audio-player').getAttribute('src');
    assert.match(src ?? '', /^\/api\/recordings\/.+\?expires=\d+&sig=[0-9a-f]{64}$/, 'a signed link');
    await page.screenshot({ path: path.join(shots, 'session-desktop.png'), fullPage: true });

    // Download: the same bytes, under a name made of ids.
    const [download] = await Promise.all([
      page.waitForEvent('download', { timeout: WAIT }),
      page.getByRole('button', { name: 'Download Audio a1 of Ann Example (ann1)' }).click(),
    ]);
    assert.equal(download.suggestedFilename(), `${env.session}_ann1_a1-1.opus`);
    const saved = path.join(env.userDataDir, 'saved.opus');
    await download.saveAs(saved);
    assert.deepEqual(readFileSync(saved), onDisk, 'the downloaded file is the one on disk');

    // Phone width.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: path.join(shots, 'session-phone.png'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 800 });

    // Purge Ann, after the confirmation: her folder goes.
    await page.getByRole('button', { name: 'Purge Ann Example (ann1) from this session' }).click();
    const dialog = page.getByRole('dialog', { name: 'Purge Ann Example?' });
    await dialog.waitFor({ timeout: WAIT });
    await page.screenshot({ path: path.join(shots, 'confirm-desktop.png') });
    await dialog.getByRole('button', { name: 'Purge Ann Example' }).click();
    await page.getByText('No speaker has files here.').waitFor({ timeout: WAIT });
    assert.equal(existsSync(path.join(folder, 'ann1')), false, "Ann's files are gone");
    assert.equal(await page.getByRole('cell', { name: /Withdrawn/ }).count(), 1, 'the ledger shows her withdrawal');

    // Delete: a cancel keeps it; a confirmation deletes it.
    await page.getByRole('button', { name: 'Delete session' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
    assert.equal(existsSync(folder), true, 'cancel keeps the session');
    await page.getByRole('button', { name: 'Delete session' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete session' }).click();
    await page.getByText('No recording sessions.').waitFor({ timeout: WAIT });
    assert.equal(existsSync(folder), false, "the session's folder is gone");
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: path.join(shots, 'empty-phone.png'), fullPage: true });

    const leaked = urls.filter((u) => u.includes(ADMIN_TOKEN));
    assert.deepEqual(leaked, [], 'the admin token is in no URL');
    await page.close();
  });
});
