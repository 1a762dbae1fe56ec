-- A tenant's dependency breakers: one hash, a JSON field per breaker, changed atomically here by
-- the rules of core/breakers.py (admit, record; tests/integration/test_breakers.py runs one
-- table through both). One key: safe on Redis Cluster.
-- KEYS[1] the tenant's breakers (keys.breakers); ARGV[1] admit | record | reset;
-- ARGV[2] now in ms ('' : Redis' own clock, one clock for every worker); ARGV[3] the attempt's
-- token; ARGV[4] admit: the probe's lease in ms, record: success | failure | neutral;
-- ARGV[5..] (name, failures, cool-down ms) per breaker (reset: the name alone).
-- admit  -> {'run', now ms, names of the breakers whose probe this attempt took...}
--        or {'wait', name, state, until ms, now ms}
-- record -> {name, new state, ...} for the breakers whose state changed
-- reset  -> the state it had ('' if it had none)
local key, op, token = KEYS[1], ARGV[1], ARGV[3]
local now = tonumber(ARGV[2])
if now == nil then
  local clock = redis.call('TIME')
  now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
end

local function load(name)
  local raw = redis.call('HGET', key, name)
  local s = {}
  if raw then s = cjson.decode(raw) end
  s.state = s.state or 'closed'
  s.failures = s.failures or 0
  s.postponed = s.postponed or 0
  return s
end

local function save(name, s)
  redis.call('HSET', key, name, cjson.encode(s))
end

local function effective(s)
  if s.state == 'open' and s.reopens_at and now >= s.reopens_at then return 'half_open' end
  return s.state
end

local function probing(s)  -- half-open with a live probe held by another attempt
  return s.state == 'half_open' and s.probe ~= nil and s.probe ~= token
    and s.probe_until ~= nil and now < s.probe_until
end

local function opened(s, failures, cooldown)
  return {state = 'open', failures = failures, opened_at = now, reopens_at = now + cooldown,
          postponed = s.postponed}
end

local wanted = {}
for i = 5, #ARGV, 3 do
  wanted[#wanted + 1] = {name = ARGV[i], failures = tonumber(ARGV[i + 1]),
                         cooldown = tonumber(ARGV[i + 2])}
end

if op == 'admit' then
  local states = {}
  for i, b in ipairs(wanted) do
    local s = load(b.name)
    states[i] = s
    local until_ms = nil
    local state = effective(s)
    if state == 'open' then
      until_ms = s.reopens_at or now + b.cooldown
    elseif probing(s) then
      until_ms = math.min(s.probe_until, now + b.cooldown)
    end
    if until_ms then
      s.postponed = s.postponed + 1
      save(b.name, s)
      return {'wait', b.name, state, until_ms, now}
    end
  end
  local out = {'run', now}
  for i, b in ipairs(wanted) do
    local s = states[i]
    if effective(s) == 'half_open' then
      s.state = 'half_open'
      s.probe = token
      s.probe_until = now + tonumber(ARGV[4])
      save(b.name, s)
      out[#out + 1] = b.name
    end
  end
  return out
end

if op == 'record' then
  local verdict = ARGV[4]
  local changed = {}
  for _, b in ipairs(wanted) do
    local s = load(b.name)
    local before = s.state
    local new = nil
    if s.state == 'closed' then
      if verdict == 'success' and s.failures ~= 0 then
        s.failures = 0
        new = s
      elseif verdict == 'failure' then
        if s.failures + 1 >= b.failures then
          new = opened(s, s.failures + 1, b.cooldown)
        else
          s.failures = s.failures + 1
          new = s
        end
      end
    elseif s.state == 'half_open' and s.probe == token then
      if verdict == 'success' then
        new = {state = 'closed', failures = 0, postponed = s.postponed}
      elseif verdict == 'failure' then
        new = opened(s, s.failures, b.cooldown)
      else
        s.probe = nil
        s.probe_until = nil
        new = s
      end
    end
    if new then
      save(b.name, new)
      if new.state ~= before then
        changed[#changed + 1] = b.name
        changed[#changed + 1] = new.state
      end
    end
  end
  return changed
end

if op == 'reset' then
  local name = ARGV[5]
  if redis.call('HEXISTS', key, name) == 0 then return '' end
  local s = load(name)
  save(name, {state = 'closed', failures = 0, postponed = s.postponed})
  return s.state
end

return redis.error_reply('breaker.lua: unknown op ' .. tostring(op))
