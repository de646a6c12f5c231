// @ts-check
/**
 * The local camera and microphone without the DOM: asking for them, and saying in plain words
 * what went wrong. The UI (media.js) decides what to show.
 */

/** @typedef {import('/assets/protocol.js').MediaKind} MediaKind */

/** `getUserMedia`, or a `SecurityError` where the page cannot have devices (plain http). @param {MediaStreamConstraints} c */
export function getUserMedia(c) {
  if (!navigator.mediaDevices?.getUserMedia) {
    return Promise.reject(new DOMException('Media devices need a secure (https) page.', 'SecurityError'));
  }
  return navigator.mediaDevices.getUserMedia(c);
}

/** @param {MediaKind} kind @param {string | null} deviceId preferred device, if any @returns {MediaTrackConstraints} */
export function trackConstraints(kind, deviceId) {
  /** @type {MediaTrackConstraints} */
  const c = kind === 'video' ? { width: { ideal: 1280 }, height: { ideal: 720 } } : { echoCancellation: true, noiseSuppression: true };
  return deviceId ? { ...c, deviceId: { ideal: deviceId } } : c;
}

/**
 * Ask for microphone and camera together; when that fails for want of a device, settle for
 * whichever one works. `error` is the last failure, or null when both came.
 * @param {string | null} audioDevice @param {string | null} videoDevice
 * @returns {Promise<{stream: MediaStream, error: DOMException | null}>}
 */
export async function acquireMedia(audioDevice, videoDevice) {
  const audio = trackConstraints('audio', audioDevice);
  const video = trackConstraints('video', videoDevice);
  try {
    return { stream: await getUserMedia({ audio, video }), error: null };
  } catch (e) {
    let last = /** @type {DOMException} */ (e);
    if (last.name === 'NotAllowedError' || last.name === 'SecurityError') return { stream: new MediaStream(), error: last };
    const tracks = [];
    for (const c of [{ audio }, { video }]) {
      try {
        tracks.push(...(await getUserMedia(c)).getTracks());
      } catch (e2) {
        last = /** @type {DOMException} */ (e2);
      }
    }
    return { stream: new MediaStream(tracks), error: tracks.length >= 2 ? null : last };
  }
}

/**
 * What went wrong with the camera or microphone, in plain words for the pre-join screen.
 * @param {DOMException} err from {@link acquireMedia} @param {MediaStream} got the tracks that did come
 */
export function describeMediaError(err, got) {
  const watch = 'You can still join to watch and listen.';
  switch (err.name) {
    case 'NotAllowedError':
      return `Camera and microphone access is blocked. Allow it in your browser's site settings and reload. ${watch}`;
    case 'NotFoundError':
    case 'OverconstrainedError':
      if (got.getAudioTracks().length) return 'No camera was found. You can join with your microphone only.';
      if (got.getVideoTracks().length) return 'No microphone was found. Others will see you but not hear you.';
      return `No camera or microphone was found. ${watch}`;
    case 'NotReadableError':
      return `Your camera or microphone is in use by another application. Close it and reload. ${watch}`;
    case 'SecurityError':
      return `Camera and microphone only work on a secure (https) connection. ${watch}`;
    default:
      return `Could not start your camera or microphone (${err.message || err.name}). ${watch}`;
  }
}
