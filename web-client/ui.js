// @ts-check
/**
 * Small DOM helpers that every screen uses: finding and making elements, notices, toasts,
 * and showing one screen at a time. Nothing here knows about rooms or calls.
 */

/** The screens: one element each in index.html, with class `screen`. A new screen adds its id here. */
export const SCREENS = /** @type {const} */ (['home', 'problem', 'prejoin', 'call', 'left']);
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

/** @param {string} text */
export function showToast(text) {
  const toast = el('div', 'toast');
  toast.setAttribute('role', 'alert');
  const close = el('button', '', '×');
  close.setAttribute('aria-label', 'Dismiss');
  close.addEventListener('click', () => toast.remove());
  toast.append(el('p', '', text), close);
  $('toasts').append(toast);
  setTimeout(() => toast.remove(), TOAST_MS);
}

/** @param {HTMLElement} node @param {string | null} text */
export function setNotice(node, text) {
  node.hidden = !text;
  node.textContent = text ?? '';
}

/** @param {number} n @param {string} one @param {string} many */
export const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;
