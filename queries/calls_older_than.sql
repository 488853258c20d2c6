-- Which calls were created more than :days days ago? (retention clean-up: callvault delete --query calls_older_than --param days=90)
SELECT provider, id AS call_id
FROM calls
WHERE created_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || :days || ' days')
ORDER BY created_at
