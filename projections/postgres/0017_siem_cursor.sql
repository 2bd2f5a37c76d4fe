-- The SIEM feed's delivery state (`src/siem`; not a projection: `replay` does not reset it).
-- One cursor per sink: the last log position it sent (or passed over as not wanted), the
-- instance holding its lease (a conditional update claims it: one instance sends each
-- event, across instances), and its failures (how many in a row, since when, the last
-- error as an operator may read it).
CREATE TABLE siem_cursors (
    sink TEXT PRIMARY KEY,
    position BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT NOT NULL DEFAULT 0,
    failures BIGINT NOT NULL DEFAULT 0,
    failing_since BIGINT,
    last_error TEXT
);
