-- Initial PostgreSQL schema: rooms, their chat history, and server settings.
-- Later features (roles, moderation) add columns to `rooms` in new migrations; never edit this
-- file once released, because sqlx checksums applied migrations.

-- capacity is BIGINT, not INTEGER: the Rust side is u32, which does not fit in PostgreSQL's
-- 32-bit signed INTEGER.
CREATE TABLE rooms (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    capacity BIGINT NOT NULL CHECK (capacity > 0),
    created_at BIGINT NOT NULL
);

CREATE TABLE chat_messages (
    room_id TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    sender_id TEXT NOT NULL,
    sender_name TEXT NOT NULL,
    text TEXT NOT NULL,
    ts BIGINT NOT NULL,
    PRIMARY KEY (room_id, seq)
);

CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
