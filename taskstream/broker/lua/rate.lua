-- A tenant's request budget: a token bucket holding at most one minute's limit, refilled
-- continuously at limit / 60 tokens a second, on Redis's own clock (one clock for every API
-- process). A caller takes up to ARGV[2] tokens at once and spends them locally.
-- KEYS[1] bucket (hash: tokens, at); ARGV[1] limit per minute; ARGV[2] tokens wanted (>= 1).
-- Returns {tokens granted, whole tokens left, ms until the next token when none is left}.
local limit = tonumber(ARGV[1])
local want = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local per_ms = limit / 60000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = limit
  at = now
end
tokens = math.min(limit, tokens + math.max(0, now - at) * per_ms)
local granted = math.min(want, math.floor(tokens))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
-- Gone once it would be full again: an idle tenant's bucket costs no memory.
redis.call('PEXPIRE', KEYS[1], math.ceil((limit - tokens) / per_ms) + 1000)
local wait = 0
if tokens < 1 then
  wait = math.ceil((1 - tokens) / per_ms)
end
return {granted, math.floor(tokens), wait}
