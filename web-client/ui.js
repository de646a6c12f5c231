// @ts-check
/**
 * Small DOM helpers that every screen uses: finding and making elements, notices, toasts,
 * keyed lists, avatars, and showing one screen at a time. Nothing here knows about rooms or calls.
 */

/** The screens: one element each in index.html, with class `screen`. A new screen adds its id here. */
export const SCREENS = /** @type {const} */ (['home', 'problem', 'prejoin', 'waiting', 'call', 'left', 'removed']);
/** @typedef {typeof SCREENS[number]} ScreenName */

const TOAST_MS = 8000;

/**
 * The element with this id. Pass its class to get it typed; the type is checked when it runs.
 * @template {HTMLElement} [T=HTMLElement]
 * @param {string} id
 * @param {new () => T} [type]
 * @returns {T}
 */
export function $(id, type) {
  const node = document.getElementById(id);
  const want = type ?? HTMLElement;
  if (!(node instanceof want)) throw new Error(`#${id} is not a ${want.name}`);
  return /** @type {T} */ (node);
}

/**
 * Listen to an event on the element with this id.
 * @template {keyof HTMLElementEventMap} K
 * @param {string} id @param {K} type @param {(e: HTMLElementEventMap[K]) => void} fn
 */
export const on = (id, type, fn) => $(id).addEventListener(type, fn);

/** @param {ScreenName} name */
export function showScreen(name) {
  for (const s of SCREENS) $(s).hidden = s !== name;
}

/** @param {string} tag @param {string} [className] @param {string} [text] */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * A notice over the page that goes by itself. An error interrupts a screen reader; news waits
 * its turn.
 * @param {string} text @param {'error' | 'info'} [kind]
 */
export function showToast(text, kind = 'error') {
  const toast = el('div', `toast toast-${kind}`);
  toast.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  const close = el('button', '', '×');
  close.setAttribute('aria-label', 'Dismiss');
  close.addEventListener('click', () => toast.remove());
  toast.append(el('p', '', text), close);
  $('toasts').append(toast);
  setTimeout(() => toast.remove(), TOAST_MS);
}

/** Tell a screen reader something that shows no text of its own. @param {string} text */
export function announce(text) {
  const region = $('announcer');
  region.textContent = '';
  // A fresh text node after a clear is announced even when the text repeats.
  requestAnimationFrame(() => {
    region.textContent = text;
  });
}

/** @param {HTMLElement} node @param {string | null} text */
export function setNotice(node, text) {
  node.hidden = !text;
  node.textContent = text ?? '';
}

/** @param {number} n @param {string} one @param {string} many */
export const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;

/**
 * Make `list`'s children match `items`, in order, one row per key. Rows that stay are kept and
 * updated in place, so focus inside them survives a redraw.
 * @template T
 * @param {HTMLElement} list
 * @param {T[]} items
 * @param {(item: T) => string} key
 * @param {(item: T) => HTMLElement} make a new row
 * @param {(row: HTMLElement, item: T, index: number) => void} update
 */
export function syncList(list, items, key, make, update) {
  /** @type {Map<string, HTMLElement>} */
  const old = new Map();
  for (const row of list.children) if (row instanceof HTMLElement) old.set(row.dataset.key ?? '', row);
  const focused = document.activeElement;
  /** @type {Element | null} */
  let prev = null;
  items.forEach((item, index) => {
    const k = key(item);
    let row = old.get(k);
    if (row) old.delete(k);
    else {
      row = make(item);
      row.dataset.key = k;
    }
    update(row, item, index);
    const next = prev ? prev.nextElementSibling : list.firstElementChild;
    if (next !== row) list.insertBefore(row, next);
    prev = row;
  });
  for (const row of old.values()) row.remove();
  // Moving a row blurs what it holds; put focus back.
  if (focused instanceof HTMLElement && focused.isConnected && focused !== document.activeElement) focused.focus();
}

/** An icon from the sprite in index.html, hidden from screen readers. @param {string} id @param {string} [className] */
export function icon(id, className = 'icon') {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('class', className);
  svg.setAttribute('aria-hidden', 'true');
  const use = document.createElementNS('http://www.w3.org/2000/svg', 'use');
  use.setAttribute('href', `#${id}`);
  svg.append(use);
  return svg;
}

/** Up to two initials for an avatar. @param {string} name */
export function initials(name) {
  const words = name.trim().split(/\s+/).filter(Boolean);
  return words.slice(0, 2).map((w) => [...w][0].toUpperCase()).join('') || '?';
}

/** A stable colour per key; the golden angle keeps similar keys apart. @param {string} key */
export function avatarColor(key) {
  let h = 7;
  for (const ch of key) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return `hsl(${Math.round((h * 137.508) % 360)} 45% 42%)`;
}
