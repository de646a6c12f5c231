// Recording with consent in real Chromium (issue 21): a facilitator who turns on "Record me"
// in the lobby, a participant who turns it on in the call and one who never does. The
// facilitator starts recording; every page names the two who agreed, and each shows its own
// state. After the stop, the recordings folder holds a finished Ogg Opus file of each of the
// two, with audio in it, and nothing of the third.
//
// Run (as root, inside a network namespace that holds only loopback):
//   unshare --net sh -c 'ip link set lo up && ROUNDTABLE_BIN=target/debug/roundtable node --test tests/browser/record.test.mjs'
// Screenshots go to target/screenshots (record-*.png), to be looked at.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, watch } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as h from './harness.mjs';
import { SHOTS, TEST_TIMEOUT, WAIT, expectMediaFrom, joinAs, tiles } from './harness.mjs';

const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

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
/** Participant ids, by name, from each page's own tile. @type {Record<string, string>} */
const ids = {};
const NAMES = ['Fran', 'Pat', 'Quin'];

const openPage = (label, urlPath) => h.openPage(env.context, env.base, label, urlPath);

/** The recording banner's status: present only while the room records. */
const recStatus = (page) => page.getByRole('status').filter({ hasText: /^Recording/ });
const recordMe = (page, scope = page) => scope.getByRole('switch', { name: 'Record me', exact: true });

/** Wait until every page's banner reads exactly `text`. */
async function everyoneSees(text) {
  for (const name of NAMES) {
    await recStatus(pages[name]).filter({ hasText: new RegExp(`^${text}$`) }).waitFor({ timeout: WAIT }).catch((e) => {
      throw new Error(`${name}'s page never showed "${text}": ${e.message}`);
    });
  }
}

/** A screenshot at desktop and at phone size. */
async function shoot(page, name) {
  await page.setViewportSize(DESKTOP);
  await page.screenshot({ path: path.join(SHOTS, `${name}-desktop.png`) });
  await page.setViewportSize(PHONE);
  await page.screenshot({ path: path.join(SHOTS, `${name}-phone.png`) });
  await page.setViewportSize(DESKTOP);
}

/**
 * An Ogg file's pages, read from the bytes: how many packets it holds and whether its last
 * page ends the stream (RFC 3533: "OggS", flags at 5, the segment table's length at 26).
 * Packets of one byte are not counted: they are the empty frames that fill a gap in time.
 * @param {Buffer} bytes
 */
function oggPages(bytes) {
  let at = 0;
  let packets = 0;
  let ended = false;
  let size = 0;
  while (at + 27 <= bytes.length) {
    assert.equal(bytes.toString('latin1', at, at + 4), 'OggS', `an Ogg page starts at byte ${at}`);
    const segments = bytes[at + 26];
    const table = bytes.subarray(at + 27, at + 27 + segments);
    for (const lace of table) {
      size += lace;
      if (lace < 255) {
        if (size > 1) packets += 1;
        size = 0;
      }
    }
    ended = (bytes[at + 5] & 0x04) !== 0;
    at += 27 + segments + table.reduce((sum, lace) => sum + lace, 0);
  }
  return { packets, ended, complete: at === bytes.length };
}

/** The `.opus` files in `folder`, each read as Ogg pages. */
const opusFiles = (folder) => readdirSync(folder)
  .filter((f) => f.endsWith('.opus'))
  .map((f) => ({ file: f, ...oggPages(readFileSync(path.join(folder, f))) }));

/**
 * Wait, on the folders' change events, until each of `folders` holds at least one `.opus`
 * file and all of them have ended their streams (the recorder finished them).
 */
function filesFinished(folders) {
  return changed(folders, () => folders.every((dir) => {
    const files = opusFiles(dir);
    return files.length > 0 && files.every((f) => f.ended && f.complete);
  }));
}

/** Wait, on the folders' change events, until `done()` holds. */
function changed(folders, done) {
  return new Promise((resolve, reject) => {
    const watchers = folders.map((dir) => watch(dir, () => {
      if (done()) finish(null);
    }));
    const timer = setTimeout(() => finish(new Error(`nothing in ${folders.join(', ')} came to be as awaited within ${WAIT} ms`)), WAIT);
    function finish(err) {
      clearTimeout(timer);
      for (const w of watchers) w.close();
      if (err) reject(err);
      else resolve();
    }
    if (done()) finish(null);
  });
}

describe('recording with per-person consent in real Chromium', { timeout: TEST_TIMEOUT * 4 }, () => {
  before(async () => {
    env.bin = h.requireBinary();
    env.dataDir = mkdtempSync(path.join(tmpdir(), 'roundtable-data-'));
    env.userDataDir = mkdtempSync(path.join(tmpdir(), 'roundtable-chromium-'));
    const room = h.cli(env.bin, env.dataDir, ['room', 'create', '--title', 'Recorded Skill Share', '--json']);
    for (const key of ['facilitator_url', 'open_url']) assert.ok(room[key], `room create JSON lacks "${key}": ${JSON.stringify(room)}`);
    env.facilitatorPath = h.pathOf(room.facilitator_url);
    env.openPath = h.pathOf(room.open_url);
    await h.startSuite(env, 'record-server.log', SHOTS);
  });

  after(() => h.endSuite(env));

  it('asks in the lobby, off until the person turns it on; two join without it', { timeout: TEST_TIMEOUT }, async () => {
    pages.Fran = await openPage('Fran', env.facilitatorPath);
    await pages.Fran.getByText('You are invited to run this call', { exact: false }).waitFor({ timeout: WAIT });
    const lobbySwitch = recordMe(pages.Fran);
    assert.equal(await lobbySwitch.isChecked(), false, 'Record me is off by default');
    await pages.Fran.getByLabel('Your name').fill('Fran');
    await lobbySwitch.check();
    assert.equal(await lobbySwitch.isChecked(), true);
    await shoot(pages.Fran, 'record-lobby');
    await joinAs(pages.Fran, 'Fran');
    for (const name of ['Pat', 'Quin']) {
      pages[name] = await openPage(name, env.openPath);
      assert.equal(await recordMe(pages[name]).isChecked(), false, `${name}'s Record me is off by default`);
      await joinAs(pages[name], name);
    }
    for (const name of NAMES) {
      ids[name] = await tiles(pages[name]).filter({ hasText: `${name} (you)` }).getAttribute('data-participant-id');
      assert.ok(ids[name], `${name}'s page has its own tile`);
    }
    await expectMediaFrom(pages.Quin, 2, 'Quin');
    // In the call, each switch says what its person chose.
    const checked = async (name) => recordMe(pages[name]).getAttribute('aria-checked');
    assert.deepEqual(
      { Fran: await checked('Fran'), Pat: await checked('Pat'), Quin: await checked('Quin') },
      { Fran: 'true', Pat: 'false', Quin: 'false' },
    );
    for (const name of NAMES) assert.equal(await recStatus(pages[name]).count(), 0, `${name}'s page shows no recording yet`);
  });

  it('starts recording: every page names whom it records, and each person sees their own state', { timeout: TEST_TIMEOUT }, async () => {
    // A facilitator's page opens on the Agenda panel, which holds the recording's controls.
    const panel = pages.Fran.getByRole('complementary', { name: 'Agenda' });
    await panel.waitFor({ timeout: WAIT });
    const only = panel.getByRole('checkbox', { name: 'Record presentations only' });
    assert.equal(await only.isChecked(), false, 'the whole call is the default');
    await panel.getByRole('button', { name: 'Start recording' }).click();
    await everyoneSees('Recording: Fran');
    assert.equal(await only.isDisabled(), true, 'a running session keeps its choice');

    // Pat agrees in the call; Quin never does.
    await recordMe(pages.Pat).click();
    await everyoneSees('Recording: Fran and Pat');
    const expected = { Fran: ['true', 'You are recorded'], Pat: ['true', 'You are recorded'], Quin: ['false', 'You are not recorded'] };
    for (const [name, [checked, self]] of Object.entries(expected)) {
      await pages[name].waitForFunction(
        ([want]) => document.querySelector('#record-me')?.getAttribute('aria-checked') === want,
        [checked],
        { timeout: WAIT },
      );
      assert.equal(await pages[name].locator('#rec-self').innerText(), self, `${name} sees their own state`);
    }

    // The People panel marks the two, by name.
    await pages.Quin.getByRole('button', { name: 'People' }).click();
    const list = pages.Quin.getByRole('complementary', { name: 'People' }).getByRole('listitem');
    const marked = [];
    for (const name of NAMES) {
      const row = list.filter({ hasText: name });
      if (await row.getByRole('img', { name: 'Recorded' }).count()) marked.push(name);
    }
    assert.deepEqual(marked, ['Fran', 'Pat'], 'the People panel marks whom the room records');

    // Two seconds of Pat's and Fran's audio reach Quin while they are recorded.
    for (const name of ['Fran', 'Pat']) {
      await pages.Quin.evaluate((id) => window.__roundtableWatchTile(id), ids[name]);
      const from = (await pages.Quin.evaluate(([id]) => window.__roundtableTileInbound(id, 'audio'), [ids[name]])).packetsReceived;
      await pages.Quin.waitForFunction(
        ([id, want]) => (window.__roundtableTileNow[id]?.audio?.packetsReceived ?? -1) >= want,
        [ids[name], from + 100],
        { timeout: WAIT },
      );
    }
    await shoot(pages.Fran, 'record-facilitator');
    await shoot(pages.Pat, 'record-participant');
    await shoot(pages.Quin, 'record-not-recorded');
  });

  it('stops: the banner goes, and the disk holds a file of each who agreed and nothing of the other', { timeout: TEST_TIMEOUT }, async () => {
    const panel = pages.Fran.getByRole('complementary', { name: 'Agenda' });
    await panel.getByRole('button', { name: 'Stop recording' }).click();
    for (const name of NAMES) await recStatus(pages[name]).waitFor({ state: 'hidden', timeout: WAIT });
    await panel.getByRole('button', { name: 'Start recording' }).waitFor({ timeout: WAIT });
    assert.equal(await recordMe(pages.Pat).getAttribute('aria-checked'), 'true', 'consent outlives the session');

    const dir = path.join(env.dataDir, 'recordings');
    const sessions = readdirSync(dir);
    assert.equal(sessions.length, 1, `one session folder: ${sessions}`);
    const session = path.join(dir, sessions[0]);
    const folders = readdirSync(session, { withFileTypes: true })
      .filter((d) => d.isDirectory()).map((d) => d.name).sort();
    assert.deepEqual(folders, [ids.Fran, ids.Pat].sort(), 'a folder for each who agreed, none for Quin');
    assert.ok(!existsSync(path.join(session, ids.Quin)), "no folder of Quin's");
    await filesFinished(folders.map((f) => path.join(session, f)));
    for (const name of ['Fran', 'Pat']) {
      const files = opusFiles(path.join(session, ids[name]));
      // Two header packets (OpusHead, OpusTags), then the audio: at least a second of it.
      const audio = files.reduce((sum, f) => sum + f.packets - 2, 0);
      assert.ok(audio >= 50, `${name}'s files hold ${audio} audio packets; at least 50 (one second) were sent while recorded`);
      for (const f of files) assert.ok(f.file.startsWith(`${ids[name]}-`), `${f.file} is named by ${name}'s track`);
    }
    // The session's mixdown and chapters follow, made from the files of those who agreed.
    const made = ['mixdown.opus', 'chapters.json', 'chapters.vtt'];
    await changed([session], () => made.every((f) => existsSync(path.join(session, f))));
    const mix = oggPages(readFileSync(path.join(session, 'mixdown.opus')));
    assert.ok(mix.ended && mix.complete && mix.packets > 50, `a whole mixdown: ${JSON.stringify(mix)}`);
    const quins = readdirSync(dir, { recursive: true }).map(String)
      .filter((f) => f.split(path.sep).some((part) => part === ids.Quin || part.startsWith(`${ids.Quin}-`)));
    assert.deepEqual(quins, [], "no folder or file under the recordings folder is Quin's");
  });
});
