-- Agent latency by agent and UTC day: evaluations, mean, min and max of avg_agent_latency (exact percentiles: `callvault stats latency --by agent,day`).
SELECT c.provider,
       c.agent_id,
       substr(c.created_at, 1, 10) AS day,
       count(*) AS n,
       round(avg(e.avg_agent_latency), 1) AS mean_ms,
       min(e.avg_agent_latency) AS min_ms,
       max(e.avg_agent_latency) AS max_ms
FROM evaluations e
JOIN calls c ON c.seq = e.call_seq
WHERE e.avg_agent_latency IS NOT NULL
GROUP BY c.provider, c.agent_id, day
ORDER BY c.provider, c.agent_id, day
