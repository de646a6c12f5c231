// @ts-check
/**
 * The local camera and microphone: the stream, its preview, the device choice and the
 * Mute and Camera toggles. The lobby and the call screen both show them.
 */
import { acquireMedia, describeMediaError, getUserMedia, trackConstraints } from '/assets/devices.js';
import { STORE, state } from '/assets/state.js';
import { $, setNotice, showToast } from '/assets/ui.js';

export const hasAudio = () => state.stream.getAudioTracks().length > 0;
export const hasVideo = () => state.stream.getVideoTracks().length > 0;
export const audioLive = () => hasAudio() && state.audioOn;
export const videoLive = () => hasVideo() && state.videoOn;

// ---- the stream ---------------------------------------------------------------------------

export async function startPreview() {
  const { stream, error } = await acquireMedia(localStorage.getItem(STORE.audio), localStorage.getItem(STORE.video));
  state.stream = stream;
  for (const t of stream.getTracks()) t.enabled = t.kind === 'audio' ? state.audioOn : state.videoOn;
  showPreview();
  setNotice($('media-error'), error ? describeMediaError(error, stream) : null);
  renderToggles();
  await fillDeviceSelects();
}

export function stopLocalMedia() {
  for (const t of state.stream.getTracks()) t.stop();
  state.stream = new MediaStream();
  showPreview();
}

/** Attach only real tracks: an empty stream in a media element would hold the page's load event forever. */
function showPreview() {
  $('preview-video', HTMLVideoElement).srcObject = hasVideo() ? new MediaStream(state.stream.getVideoTracks()) : null;
}

// ---- devices ------------------------------------------------------------------------------

async function fillDeviceSelects() {
  const devices = navigator.mediaDevices ? await navigator.mediaDevices.enumerateDevices() : [];
  /** @type {[string, 'audio' | 'video', string][]} */
  const sets = [['camera-select', 'video', 'Camera'], ['mic-select', 'audio', 'Microphone']];
  for (const [id, kind, noun] of sets) {
    const select = $(id, HTMLSelectElement);
    const found = devices.filter((d) => d.kind === `${kind}input` && d.deviceId);
    const current = state.stream.getTracks().find((t) => t.kind === kind)?.getSettings().deviceId;
    select.replaceChildren(...found.map((d, i) => new Option(d.label || `${noun} ${i + 1}`, d.deviceId)));
    if (!found.length || !current) select.replaceChildren(new Option(`No ${noun.toLowerCase()} available`, ''));
    select.disabled = !found.length || !current;
    if (current) select.value = current;
  }
}

/** Use another camera or microphone (in a call: `replaceTrack`, no renegotiation). @param {'audio' | 'video'} kind @param {string} deviceId */
export async function switchDevice(kind, deviceId) {
  try {
    const fresh = await getUserMedia({ [kind]: { ...trackConstraints(kind, null), deviceId: { exact: deviceId } } });
    const track = fresh.getTracks()[0];
    const old = state.stream.getTracks().find((t) => t.kind === kind);
    if (old) {
      state.stream.removeTrack(old);
      old.stop();
    }
    track.enabled = kind === 'audio' ? state.audioOn : state.videoOn;
    state.stream.addTrack(track);
    localStorage.setItem(STORE[kind], deviceId);
    showPreview();
    await state.conn?.setTrack(track);
  } catch (e) {
    showToast(`Could not switch ${kind === 'audio' ? 'microphone' : 'camera'}: ${/** @type {Error} */ (e).message}`);
  }
}

// ---- the toggles --------------------------------------------------------------------------

/**
 * Toggle with `track.enabled` (no renegotiation) and tell the room.
 * The call screen then redraws its own tile.
 * @param {'audio' | 'video'} kind @param {boolean} on
 */
export function setMedia(kind, on) {
  if (on && !(kind === 'audio' ? state.audioAllowed : state.videoAllowed)) return; // a facilitator holds it off
  if (kind === 'audio') state.audioOn = on;
  else state.videoOn = on;
  for (const t of state.stream.getTracks()) if (t.kind === kind) t.enabled = on;
  renderToggles();
  state.conn?.sendMediaState(audioLive(), videoLive());
}

/**
 * Mute is pressed when the microphone is off; Camera is pressed when the camera is on. Each is
 * disabled without its device, or while a facilitator holds it off (moderation.js says why).
 */
export function renderToggles() {
  for (const id of ['pre-mute', 'mute-btn']) {
    const button = $(id, HTMLButtonElement);
    button.setAttribute('aria-pressed', String(!audioLive()));
    button.disabled = !hasAudio() || !state.audioAllowed;
  }
  for (const id of ['pre-camera', 'camera-btn']) {
    const button = $(id, HTMLButtonElement);
    button.setAttribute('aria-pressed', String(videoLive()));
    button.disabled = !hasVideo() || !state.videoAllowed;
  }
  $('preview-off').hidden = videoLive();
  $('preview-off-text').textContent = hasVideo() ? 'Camera is off' : 'No camera';
}
