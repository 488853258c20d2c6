-- One agent's calls (:agent), newest first, with their evaluation's headline figures.
SELECT c.provider,
       c.id AS call_id,
       c.status,
       c.created_at,
       c.duration_ms,
       e.avg_agent_latency,
       e.hallucination,
       e.goal_success,
       e.sentiment_score
FROM calls c
LEFT JOIN evaluations e ON e.call_seq = c.seq
WHERE c.agent_id = :agent
ORDER BY c.created_at DESC, c.provider, c.id
