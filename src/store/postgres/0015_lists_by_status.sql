-- An application's jobs, unfiltered, are listed by merging the three status ranges of
-- `jobs_by_app_status` (`jobs::newest_first`), so `jobs_by_app` goes. It cost more than any
-- other index: a finish updates every column a list or chart reads, so it is never a HOT
-- update, and each index takes a new entry for the row's new version; in `jobs_by_app` that
-- entry has the old one's key exactly, and the page that holds both is cleaned of old
-- versions again and again (bottom-up deletion visits the table for each). Measured with
-- callgrind on a backend claiming and finishing 20,000 jobs: 310,000 instructions a job
-- with it, 265,000 without.
DROP INDEX jobs_by_app;
