// @ts-check
/**
 * What more than one screen reads or writes: the room, the local media and the connection.
 * A screen keeps the rest of its state in its own module.
 */

/** @typedef {import('/assets/protocol.js').RoomConnection} RoomConnection */
/** @typedef {import('/assets/protocol.js').Role} Role */
/** @typedef {import('/assets/protocol.js').WaiterInfo} WaiterInfo */
/** @typedef {import('/assets/protocol.js').AgendaView} AgendaView */
/** @typedef {import('/assets/protocol.js').RecordingView} RecordingView */

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
  /** The invite secret from the link, kept for a rejoin; null for the open link. @type {string | null} */
  invite: null,
  /** Our role: what the invite says before joining, what `joined` says after. @type {Role} */
  role: /** @type {Role} */ ('participant'),
  /** False while a facilitator holds our microphone or camera off. */
  audioAllowed: true,
  videoAllowed: true,
  /** Participant ids with a hand up, in the order the hands went up. @type {string[]} */
  hands: [],
  locked: false,
  /** The waiting room, first first (facilitators only). @type {WaiterInfo[]} */
  waiting: [],
  /** The agenda and the floor, as the server last sent them; null before joining. @type {AgendaView | null} */
  agenda: null,
  /** Whether we agree to be recorded: the lobby's Record me, then what the server last said. */
  consent: false,
  /** The room's recording, as the server last sent it. @type {RecordingView} */
  recording: { on: false, presentation_only: false, recorded: [] },
  /** Settles once the camera and microphone were asked for; joining waits for it. @type {Promise<void>} */
  mediaReady: Promise.resolve(),
};
