-- Calls an evaluation flagged as hallucinating, newest first, with the evaluator's reasoning.
SELECT c.provider,
       c.id AS call_id,
       c.agent_id,
       c.created_at,
       e.hallucination_reasoning
FROM evaluations e
JOIN calls c ON c.seq = e.call_seq
WHERE e.hallucination = 1
ORDER BY c.created_at DESC, c.provider, c.id
