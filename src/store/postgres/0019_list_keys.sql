-- An application's jobs of one status are listed through one text key, then `seq`:
-- `jobs::list_key`, the organisation's length, the organisation, the application and the
-- status joined (`7:default/echo/completed`, which no other three give: the length fixes where
-- the organisation ends, and the status, the last part, holds no `/`), compared bytewise
-- (`COLLATE "C"`). It replaces `jobs_by_app_status (org, application_id, status, seq)`, whose
-- every comparison walked three text columns, reaching each past the first by walking the
-- index tuple (`nocache_index_getattr`): that index was a third of the backend's work per item
-- of a batch. Counted by callgrind as in 0016 (one backend inserting 24,576 items of a batch
-- on 0018's schema): 69,000 instructions an item with the old index, 59,500 with a key like
-- this one. A finish, which changes the status, pays the difference again for its new entry.
-- Lists name the key alone, not also the organisation, application and status: the planner
-- would take those for conditions independent of the key, expect next to no rows, and sort a
-- bitmap scan of the whole status instead of reading the index backwards to the page's end.
DROP INDEX jobs_by_app_status;
CREATE INDEX jobs_by_list_key ON jobs
    (((length(org)::text || ':' || org || '/' || application_id || '/' || status) COLLATE "C"),
     seq)
    WITH (deduplicate_items = off);
