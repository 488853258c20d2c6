-- The 50 calls with the highest average agent latency, with their agent and duration.
SELECT c.provider,
       c.id AS call_id,
       c.agent_id,
       c.created_at,
       c.duration_ms,
       e.avg_agent_latency,
       e.p95_agent_latency,
       e.max_agent_latency
FROM evaluations e
JOIN calls c ON c.seq = e.call_seq
WHERE e.avg_agent_latency IS NOT NULL
ORDER BY e.avg_agent_latency DESC, c.provider, c.id
LIMIT 50
