-- 0010_change_stamps: nothing on SQLite. PostgreSQL keeps a counter per
-- model that replicas poll to know when cached answers may be stale. On
-- SQLite one writer at a time hands out audit event ids in commit order,
-- so the newest event id does that job (read when PRAGMA data_version
-- says another connection committed), and no write pays for a counter.
SELECT 1;
