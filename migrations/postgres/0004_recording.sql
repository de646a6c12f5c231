-- Recording (#21): each recording session of a room, and the ledger of every change of
-- consent. The ledger is append-only: it says who agreed or withdrew, and when, whatever
-- becomes of the files.

-- `ended_at` stays NULL while a session runs, and after a crash until start-up finds it;
-- then `cut_off` says it did not end cleanly.
CREATE TABLE recording_sessions (
    id TEXT NOT NULL PRIMARY KEY,
    room_id TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    started_at BIGINT NOT NULL,
    ended_at BIGINT,
    presentation_only BOOLEAN NOT NULL,
    cut_off BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX recording_sessions_room ON recording_sessions (room_id, started_at);

-- An identity only grows, so `ORDER BY id` is the order of writing. `session_id` is NULL
-- for a change made while nothing was recorded.
CREATE TABLE consent_ledger (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    room_id TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    session_id TEXT,
    participant TEXT NOT NULL,
    name TEXT NOT NULL,
    invite TEXT,
    granted BOOLEAN NOT NULL,
    ts BIGINT NOT NULL
);
CREATE INDEX consent_ledger_room ON consent_ledger (room_id, id);
