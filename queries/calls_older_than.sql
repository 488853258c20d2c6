-- Retention: calls created more than :days days ago (provider, call_id), for `delete --query calls_older_than --param days=N`.
SELECT c.provider,
       c.id AS call_id,
       c.agent_id,
       c.created_at
FROM calls c
WHERE c.created_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || :days || ' days')
ORDER BY c.created_at, c.provider, c.id
