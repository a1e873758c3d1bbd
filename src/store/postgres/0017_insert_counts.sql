-- Inserted jobs are counted in `job_counts` by the statements that insert them (a group of
-- plain jobs counts what it inserted; a batch counts its items once, with its own row), as
-- on SQLite (its 0013_insert_counts.sql), no longer by the statement trigger
-- `jobs_count_insert`. The trigger grouped every inserted row by organisation, application
-- and status: 3,500 instructions an item of a batch (callgrind, as in 0016), a twentieth of
-- the backend's work, to find two numbers the batch's code already has. Counts on updates
-- and deletes stay with their triggers.
DROP TRIGGER jobs_count_insert ON jobs;
DROP FUNCTION jobs_count_insert();
