-- Calls that still have no evaluation, oldest first, with their status.
SELECT c.provider,
       c.id AS call_id,
       c.agent_id,
       c.status,
       c.created_at
FROM calls c
WHERE NOT EXISTS (
    SELECT 1 FROM evaluations e WHERE e.call_seq = c.seq
)
ORDER BY c.created_at, c.provider, c.id
