// @ts-check
/**
 * The server's clock, as this page estimates it. Agenda deadlines are the server's Unix ms,
 * and every page must count down to them together, even on a laptop whose clock is minutes
 * off. So the time here is never `Date.now()`: it is `performance.now()` (monotonic, and blind
 * to the wall clock) plus an offset learned from pings, NTP's idea in small.
 *
 * Each `pong` carries the server's time. It was read somewhere between our send and our
 * receive, so the midpoint is the best guess, wrong by at most half the round trip. The
 * sample with the shortest round trip wins. No DOM code lives here.
 */

/** Samples kept: two minutes of keepalive pings. Older ones may predate a sleep. */
const KEEP = 8;
/** A ping unanswered for this long is forgotten. */
const PING_TTL_MS = 60_000;
/**
 * The wall clock moved this far against the monotonic one between two samples: the machine
 * slept (the monotonic clock stops then) or someone set the clock. Old samples go.
 */
const JUMP_MS = 1000;

/** @typedef {{rtt: number, offset: number}} Sample */

export class ServerClock {
  /**
   * @param {() => number} [mono] a monotonic clock, ms
   * @param {() => number} [wall] the wall clock, ms (only to notice a sleep)
   */
  constructor(mono = () => performance.now(), wall = () => Date.now()) {
    this.mono = mono;
    this.wall = wall;
    /** @type {Sample[]} */
    this.samples = [];
    /** Offset from a server timestamp alone, until a pong gives a better one. @type {number | null} */
    this.rough = null;
    /** Pings in flight: id to the monotonic time of their send. @type {Map<number, number>} */
    this.pings = new Map();
    this.nextId = 1;
    /** `wall() - mono()` at the last sample. @type {number | null} */
    this.base = null;
  }

  /** A ping is about to go: its id, to send with it. */
  ping() {
    const now = this.mono();
    for (const [id, at] of this.pings) if (now - at > PING_TTL_MS) this.pings.delete(id);
    const id = this.nextId++;
    this.pings.set(id, now);
    return id;
  }

  /**
   * A `pong` came. Returns whether the estimate changed.
   * @param {number | undefined} id @param {number | undefined} serverTime
   */
  pong(id, serverTime) {
    const sent = id === undefined ? undefined : this.pings.get(id);
    if (sent === undefined || !serverTime) return false;
    this.pings.delete(id ?? 0);
    const received = this.mono();
    const base = this.wall() - received;
    if (this.base !== null && Math.abs(base - this.base) > JUMP_MS) this.samples = [];
    this.base = base;
    const before = this.offset();
    this.samples.push({ rtt: received - sent, offset: serverTime - (sent + received) / 2 });
    if (this.samples.length > KEEP) this.samples.shift();
    return this.offset() !== before;
  }

  /**
   * The server stamped a message with its time: good enough until the first pong (off by the
   * one-way delay). Returns whether the estimate changed.
   * @param {number | undefined} serverTime
   */
  hint(serverTime) {
    if (this.samples.length || !serverTime) return false;
    this.rough = serverTime - this.mono();
    return true;
  }

  /** The estimated server-minus-monotonic offset, or null before anything was heard. */
  offset() {
    if (!this.samples.length) return this.rough;
    return this.samples.reduce((best, s) => (s.rtt < best.rtt ? s : best)).offset;
  }

  /** The best sample's round trip, ms: the estimate is off by at most half of it. */
  uncertainty() {
    return this.samples.length ? Math.min(...this.samples.map((s) => s.rtt)) / 2 : Infinity;
  }

  /** The server's Unix ms now, as best we know. */
  now() {
    return this.mono() + (this.offset() ?? this.wall() - this.mono());
  }
}
