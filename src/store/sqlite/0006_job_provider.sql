-- Which provider, and which model, produced a job's result: written with the result, in the
-- same statement; NULL until the job completes.
ALTER TABLE jobs ADD COLUMN provider TEXT;
ALTER TABLE jobs ADD COLUMN model TEXT;
