-- Initial SQLite schema: rooms, their chat history, and server settings.
-- Later features (roles, moderation) add columns to `rooms` in new migrations; never edit this
-- file once released, because sqlx checksums applied migrations.

-- NOT NULL on the TEXT primary keys because SQLite, unlike PostgreSQL, lets a non-INTEGER
-- primary key hold NULL.
CREATE TABLE rooms (
    id TEXT NOT NULL PRIMARY KEY,
    title TEXT NOT NULL,
    capacity INTEGER NOT NULL CHECK (capacity > 0),
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
    key TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);
