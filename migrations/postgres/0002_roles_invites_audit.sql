-- Roles, invites and moderation (#18): a room's admission rules, its invites and its audit log.
-- `rev` increases with every change to a room's rules or invites; a running room keeps the
-- highest it has seen. `role_caps` is JSON text, as in SQLite, so both decode alike.

ALTER TABLE rooms ADD COLUMN role_caps TEXT NOT NULL DEFAULT '{}';
ALTER TABLE rooms ADD COLUMN when_full TEXT NOT NULL DEFAULT 'refuse'
    CHECK (when_full IN ('refuse', 'wait'));
ALTER TABLE rooms ADD COLUMN auto_admit BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE rooms ADD COLUMN open_link BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE rooms ADD COLUMN rev BIGINT NOT NULL DEFAULT 0;

-- Only the SHA-256 (hex) of an invite's secret is stored: the database cannot hand out links.
CREATE TABLE invites (
    id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    secret_hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('facilitator', 'advocate', 'participant', 'observer')),
    name TEXT,
    reserve BOOLEAN NOT NULL,
    max_uses BIGINT CHECK (max_uses IS NULL OR max_uses > 0),
    uses BIGINT NOT NULL DEFAULT 0 CHECK (uses >= 0),
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX invites_room ON invites (room_id);

-- An identity only grows, so `ORDER BY id` is the order of writing.
CREATE TABLE audit_log (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    room_id TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    ts BIGINT NOT NULL,
    actor TEXT NOT NULL,
    actor_name TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    target_name TEXT,
    detail TEXT
);
CREATE INDEX audit_log_room ON audit_log (room_id, id);
