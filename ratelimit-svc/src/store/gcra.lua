-- ratelimit-svc: one request's operations applied atomically. Line-for-line mirror of
-- limiter::evaluate and limiter::step (Rust); a test runs both on the same inputs.
--
-- KEYS[i]  bucket of operation i
-- ARGV[1]  now, ms since the Unix epoch (the service's clock, so tests can inject time)
-- ARGV[2 + 5(i-1) ..]  period_ms, limit, hits, mode (0 check, 1 debt, 2 refund), shadow (0/1)
-- Stored value: "<at_ms> <backlog_ms>", expiring once the backlog has drained.
-- Reply: one string "blocked allowed_1 before_1 after_1 ...": text because Redis would
-- truncate Lua numbers to integers, and one string rather than an array because Redis and
-- the client then encode and parse one value instead of 1 + 3n.
local EPS = 1e-6
local now = tonumber(ARGV[1])
local n = #KEYS

local initial = {}
for i = 1, n do
  local key = KEYS[i]
  if initial[key] == nil then
    local backlog = 0
    local stored = redis.call('GET', key)
    if stored then
      local at, b = string.match(stored, '^(%d+) (%S+)$')
      at = tonumber(at)
      b = tonumber(b)
      if at and b then
        local elapsed = now - at
        if elapsed < 0 then elapsed = 0 end
        backlog = b - elapsed
        if backlog < 0 then backlog = 0 end
      end
    end
    initial[key] = backlog
  end
end

local function pass(apply_checks)
  local state, results = {}, {}
  for i = 1, n do
    local key = KEYS[i]
    local base = 2 + (i - 1) * 5
    local period = tonumber(ARGV[base])
    local limit = tonumber(ARGV[base + 1])
    local hits = tonumber(ARGV[base + 2])
    local mode = ARGV[base + 3]
    local b = state[key]
    if b == nil then b = initial[key] end
    local unit = period / limit
    local cost = hits * unit
    local one_free = b + unit <= period + EPS
    local allowed, after = true, b
    if mode == '0' then
      if hits == 0 then
        allowed = one_free
      else
        local nxt = b + cost
        allowed = nxt <= period + EPS
        if allowed and apply_checks then after = nxt end
      end
    elseif mode == '1' then
      allowed = one_free
      after = b + cost
    else
      after = b - cost
      if after < 0 then after = 0 end
    end
    state[key] = after
    results[i] = { allowed, b, after }
  end
  return state, results
end

local state, results = pass(true)
local blocked = false
for i = 1, n do
  if not results[i][1] and ARGV[2 + (i - 1) * 5 + 4] ~= '1' then blocked = true end
end
if blocked then
  local verdicts = results
  state, results = pass(false)
  for i = 1, n do results[i][1] = verdicts[i][1] end
end

for key, after in pairs(state) do
  if after ~= initial[key] then
    if after > 0 then
      -- Expire once drained (plus a second of slack); a debt beyond a year is forgiven
      -- rather than overflowing PX.
      local ttl = math.min(math.ceil(after) + 1000, 31536000000)
      redis.call('SET', key, ARGV[1] .. ' ' .. string.format('%.17g', after), 'PX', ttl)
    else
      redis.call('DEL', key)
    end
  end
end

local reply = { blocked and '1' or '0' }
for i = 1, n do
  reply[#reply + 1] = results[i][1] and '1' or '0'
  reply[#reply + 1] = string.format('%.17g', results[i][2])
  reply[#reply + 1] = string.format('%.17g', results[i][3])
end
return table.concat(reply, ' ')
