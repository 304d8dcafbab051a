"""The Redis queue's Lua scripts: each runs atomically in Redis, all or nothing."""

APPEND = """
local again = redis.call('GET', KEYS[3])
if again then return tonumber(again) end
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
if top ~= nil and top[1] ~= string.format('%d-0', last) then
  return redis.error_reply('receipts stream ends at ' .. top[1] .. ', counter at ' .. last)
end
local n = #ARGV / 4
local first = redis.call('INCRBY', KEYS[2], n) - n + 1
for i = 0, n - 1 do
  redis.call('XADD', KEYS[1], string.format('%d-0', first + i),
    'request_id', ARGV[i * 4 + 1], 'delay_s', ARGV[i * 4 + 2],
    'receive_time_us', ARGV[i * 4 + 3], 'run_id', ARGV[i * 4 + 4])
end
redis.call('SET', KEYS[3], first, 'EX', 60)
return first
"""

# KEYS: outcomes, tries, receipts. ARGV: seqs just claimed. Per seq its tries now, or 0 if
# it has an outcome already (then it leaves the group instead).
TAKE = """
local tries = {}
for i, seq in ipairs(ARGV) do
  if redis.call('HEXISTS', KEYS[1], seq) == 1 then
    redis.call('XACK', KEYS[3], 'handlers', seq .. '-0')
    tries[i] = 0
  else
    tries[i] = redis.call('HINCRBY', KEYS[2], seq, 1)
  end
end
return tries
"""

# KEYS: outcomes, finished, receipts. ARGV: per outcome its seq, 'ok' or 'error: <why>', and
# <why> ('' if ok). One call for a whole batch: a script call each cost the handler and Redis
# more than the work. A seq no longer in the stream is skipped; an outcome is set once.
FINISH = """
for i = 1, #ARGV, 3 do
  local seq, outcome = ARGV[i], ARGV[i + 1]
  local id = seq .. '-0'
  if #redis.call('XRANGE', KEYS[3], id, id) > 0 then
    if redis.call('HSETNX', KEYS[1], seq, outcome) == 1 then
      if outcome == 'ok' then
        redis.call('XADD', KEYS[2], '*', 'seq', seq)
      else
        redis.call('XADD', KEYS[2], '*', 'seq', seq, 'error', ARGV[i + 2])
      end
    end
    redis.call('XACK', KEYS[3], 'handlers', id)
  end
end
return 1
"""

# KEYS: receipts. ARGV: consumer, entry IDs. Resets the idle time of the entries the
# consumer still holds (never takes one back from a handler that took it over); their IDs.
HEARTBEAT = """
local held = {}
for i = 2, #ARGV do
  local entry = redis.call('XPENDING', KEYS[1], 'handlers', ARGV[i], ARGV[i], 1)[1]
  if entry ~= nil and entry[2] == ARGV[1] then
    redis.call('XCLAIM', KEYS[1], 'handlers', ARGV[1], 0, ARGV[i], 'JUSTID')
    held[#held + 1] = ARGV[i]
  end
end
return held
"""

# KEYS: receipts, tries, outcomes, finished, forgotten. ARGV: through, the finished feed's
# mark read through (or ''), most seqs per call. Drops receipts from the last forgotten one
# up to ``through`` (never the newest: APPEND checks the stream's top against the counter),
# their tries and outcomes, and the feed's entries before the mark. Bounded per call, so a
# first call after a long run does not hold Redis for long. Returns the seq forgotten through.
FORGET = """
local from = tonumber(redis.call('GET', KEYS[5]) or '0')
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
if top == nil then return from end
local newest = tonumber(string.match(top[1], '^(%d+)'))
local through = math.min(tonumber(ARGV[1]), newest - 1, from + tonumber(ARGV[3]))
if through > from then
  local seqs = {}
  for seq = from + 1, through do
    seqs[#seqs + 1] = seq
    if #seqs == 500 or seq == through then
      redis.call('HDEL', KEYS[2], unpack(seqs))
      redis.call('HDEL', KEYS[3], unpack(seqs))
      seqs = {}
    end
  end
  redis.call('XTRIM', KEYS[1], 'MINID', (through + 1) .. '-0')
  redis.call('SET', KEYS[5], through)
else
  through = from
end
if ARGV[2] ~= '' then redis.call('XTRIM', KEYS[4], 'MINID', ARGV[2]) end
return through
"""
