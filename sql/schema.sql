-- schema.sql - the database of bayeuxd (docs/persistence.md).
--
-- One writer: bayeuxd, which creates this schema in an empty database and
-- migrates an older one at start. PRAGMA user_version is the schema version;
-- bump it, and add a migration step in dispatcher/store.c, with any change.
--
-- Times are wall-clock milliseconds since the epoch. Rows reference each
-- other by value; bayeuxd keeps them consistent, and "bayeuxd --check-db"
-- verifies that it did (no foreign-key enforcement on the hot path).

PRAGMA user_version = 2;

-- Every live session, whatever its transport and extensions.
CREATE TABLE session (
    id       TEXT    PRIMARY KEY,     -- clientId
    browser  TEXT    NOT NULL,        -- the BAYEUX_BROWSER cookie it is bound to
    ack      INTEGER NOT NULL,        -- 1: ack extension negotiated
    batch    INTEGER NOT NULL,        -- next ack batch number (ack sessions)
    created  INTEGER NOT NULL,
    subject  TEXT    NOT NULL DEFAULT ''   -- the handshake token's subject (v2)
) WITHOUT ROWID;

-- A session's subscriptions (channel names and patterns).
CREATE TABLE subscription (
    session  TEXT NOT NULL,
    channel  TEXT NOT NULL,
    PRIMARY KEY (session, channel)
) WITHOUT ROWID;

-- Message bodies, stored once however many queues and histories hold them.
-- id grows with publish order, so ordering by id is delivery order.
CREATE TABLE message (
    id       INTEGER PRIMARY KEY,
    json     TEXT    NOT NULL,        -- the delivery as subscribers get it
    time     INTEGER NOT NULL         -- when it was published
);

-- Messages not yet acknowledged by an ack session, in order.
CREATE TABLE queued (
    session  TEXT    NOT NULL,
    msg      INTEGER NOT NULL,        -- message.id
    batch    INTEGER NOT NULL,        -- ack batch it was queued under
    PRIMARY KEY (session, msg)
) WITHOUT ROWID;

-- Channels that keep a history, with the last sequence number given out, so
-- numbers never go back even when the whole history has been trimmed.
CREATE TABLE channel (
    name     TEXT    PRIMARY KEY,
    seq      INTEGER NOT NULL
) WITHOUT ROWID;

-- The history of those channels.
CREATE TABLE history (
    channel  TEXT    NOT NULL,
    seq      INTEGER NOT NULL,
    msg      INTEGER NOT NULL,        -- message.id
    time     INTEGER NOT NULL,
    PRIMARY KEY (channel, seq)
) WITHOUT ROWID;
