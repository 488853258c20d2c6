-- Hallucination rate by agent and UTC day: evaluations flagged / evaluations with a verdict.
SELECT c.provider,
       c.agent_id,
       substr(c.created_at, 1, 10) AS day,
       count(e.hallucination) AS n,
       coalesce(sum(e.hallucination = 1), 0) AS flagged,
       round(1.0 * sum(e.hallucination = 1) / count(e.hallucination), 4) AS rate
FROM evaluations e
JOIN calls c ON c.seq = e.call_seq
WHERE e.hallucination IS NOT NULL
GROUP BY c.provider, c.agent_id, day
ORDER BY c.provider, c.agent_id, day
