-- Tool-call usage: per provider and tool, how many calls used it and how many times it ran.
SELECT t.provider,
       t.name AS tool,
       count(DISTINCT t.call_id) AS calls,
       count(*) AS uses
FROM tool_calls t
GROUP BY t.provider, t.name
ORDER BY uses DESC, t.provider, tool
