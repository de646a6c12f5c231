-- A room's agenda: its plan, where it stands (with absolute deadlines, so that it resumes
-- after a restart) and the record of its runs, as one JSON document written on every change.
CREATE TABLE agendas (
    room_id TEXT NOT NULL PRIMARY KEY REFERENCES rooms(id) ON DELETE CASCADE,
    agenda TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
