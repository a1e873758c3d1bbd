-- Inserted jobs are counted in `job_counts` by the code that inserts them (a plain job's
-- insert, each chunk of a batch's items), no longer by the row trigger `jobs_count_insert`.
-- A row trigger on `jobs`, even one whose WHEN clause skips the row, makes SQLite write the
-- rows of every multi-row `INSERT … SELECT` into a temporary table before inserting them,
-- and runs the trigger's program once per row: a batch's intake paid both for every item.
-- Counts on updates stay with their triggers.
DROP TRIGGER jobs_count_insert;
