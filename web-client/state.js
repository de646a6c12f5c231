// @ts-check
/**
 * What more than one screen reads or writes: the room, the local media and the connection.
 * A screen keeps the rest of its state in its own module.
 */

/** @typedef {import('/assets/protocol.js').RoomConnection} RoomConnection */

/** localStorage keys: the name and the chosen devices, remembered for the next visit. */
export const STORE = { name: 'roundtable.name', video: 'roundtable.camera', audio: 'roundtable.microphone' };

export const state = {
  roomId: '',
  roomTitle: '',
  /** @type {number | null} */
  capacity: null,
  stream: new MediaStream(),
  audioOn: true,
  videoOn: true,
  /** @type {RoomConnection | null} */
  conn: null,
  you: '',
  /** Settles once the camera and microphone were asked for; joining waits for it. @type {Promise<void>} */
  mediaReady: Promise.resolve(),
};
