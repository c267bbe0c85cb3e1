"""The queue's Lua scripts: each state change of a job is one atomic script call.

Stream entries carry the job as field ``j`` (JSON, never rewritten) and, after a retry,
the attempt number as field ``n``.  Delayed-set members are ``"<attempt>:<job json>"``.
Reply lists are named in ARGV because each job names its caller's own list.
"""
from ymds.queue.redis import Script

# KEYS: stream, delayed.  ARGV: key_ttl_seconds, then per job: idem_key|"", job_id, job_json, due_ms|"".
# Returns one entry per job: 1 added, else the job id already holding its idempotency key.
ENQUEUE = Script("""
local ttl = tonumber(ARGV[1])
local out = {}
local i = 2
while i <= #ARGV do
  local key, id, job, due = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local ok = true
  if key ~= '' then
    ok = redis.call('SET', key, id, 'NX', 'EX', ttl)
  end
  if ok then
    if due == '' then
      redis.call('XADD', KEYS[1], '*', 'j', job)
    else
      redis.call('ZADD', KEYS[2], due, '1:' .. job)
    end
    out[#out + 1] = 1
  else
    out[#out + 1] = redis.call('GET', key) or 0
  end
  i = i + 4
end
return out
""")

# KEYS: stream.  ARGV: group, reply_ttl_ms, then per job: entry_id, reply_key|"", reply_json.
# XACK + XDEL; the reply is pushed only by the consumer whose XACK removed the entry, so a
# job taken over by another consumer never answers twice.  Returns the number acknowledged.
ACK = Script("""
local group, ttl = ARGV[1], ARGV[2]
local acked = 0
local i = 3
while i <= #ARGV do
  local id, reply, body = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local n = redis.call('XACK', KEYS[1], group, id)
  redis.call('XDEL', KEYS[1], id)
  if n == 1 then
    acked = acked + 1
    if reply ~= '' then
      redis.call('RPUSH', reply, body)
      redis.call('PEXPIRE', reply, ttl)
    end
  end
  i = i + 3
end
return acked
""")

# KEYS: stream, delayed, dead.  ARGV: group, entry_id, action, attempt, job_json, due_ms,
#   task, error, reason, failed_at_ms, reply_key|"", reply_json, reply_ttl_ms.
# action "retry": back into the delayed set as attempt+1; "dead": into the dead stream;
# "drop": acknowledged only (an RPC failure answered to its caller, an expired call).
# Does nothing (returns 0) when this consumer no longer holds the entry.
FAIL = Script("""
local group, id, action = ARGV[1], ARGV[2], ARGV[3]
if redis.call('XACK', KEYS[1], group, id) == 0 then
  return 0
end
redis.call('XDEL', KEYS[1], id)
if action == 'retry' then
  redis.call('ZADD', KEYS[2], ARGV[6], (tonumber(ARGV[4]) + 1) .. ':' .. ARGV[5])
elseif action == 'dead' then
  redis.call('XADD', KEYS[3], '*', 'j', ARGV[5], 'n', ARGV[4], 'task', ARGV[7],
             'error', ARGV[8], 'reason', ARGV[9], 'failed_at', ARGV[10])
end
if ARGV[11] ~= '' then
  redis.call('RPUSH', ARGV[11], ARGV[12])
  redis.call('PEXPIRE', ARGV[11], ARGV[13])
end
return 1
""")

# KEYS: delayed, stream.  ARGV: now_ms, limit.  Moves due jobs into the stream.
# Returns {moved, next_due_ms or -1}.
PROMOTE = Script("""
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  local sep = string.find(member, ':', 1, true)
  local n = string.sub(member, 1, sep - 1)
  local job = string.sub(member, sep + 1)
  if n == '1' then
    redis.call('XADD', KEYS[2], '*', 'j', job)
  else
    redis.call('XADD', KEYS[2], '*', 'j', job, 'n', n)
  end
  redis.call('ZREM', KEYS[1], member)
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local when = -1
if #nxt > 0 then when = nxt[2] end
return {#due, when}
""")

# KEYS: stream, dead.  ARGV: group, consumer, min_idle_ms, count, max_deliveries, now_ms,
# forget_idle_ms.
# Entries idle too long that were delivered max_deliveries times go to the dead stream;
# the rest are taken over by ``consumer`` (XAUTOCLAIM).
# Returns {{job json, deliveries, old consumer} per dead entry, claimed entries}.
RECLAIM = Script("""
local group, consumer, idle, count, maxd = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local dead = {}
local pending = redis.call('XPENDING', KEYS[1], group, 'IDLE', idle, '-', '+', count)
for _, p in ipairs(pending) do
  if tonumber(p[4]) >= maxd then
    local entry = redis.call('XRANGE', KEYS[1], p[1], p[1])
    redis.call('XACK', KEYS[1], group, p[1])
    redis.call('XDEL', KEYS[1], p[1])
    if #entry > 0 then
      local f = entry[1][2]
      local job, n = '', '1'
      for i = 1, #f, 2 do
        if f[i] == 'j' then job = f[i + 1] elseif f[i] == 'n' then n = f[i + 1] end
      end
      local task = ''
      local ok, decoded = pcall(cjson.decode, job)
      if ok and type(decoded) == 'table' and type(decoded['t']) == 'string' then task = decoded['t'] end
      redis.call('XADD', KEYS[2], '*', 'j', job, 'n', n, 'task', task,
                 'error', 'delivered ' .. p[4] .. ' times without being acknowledged (last consumer ' .. p[2] .. ')',
                 'reason', 'max_deliveries', 'failed_at', ARGV[6])
      dead[#dead + 1] = {job, tostring(p[4]), p[2]}
    end
  end
end
local claimed = redis.call('XAUTOCLAIM', KEYS[1], group, consumer, idle, '0-0', 'COUNT', count)
-- consumers that died long ago and hold nothing are forgotten (names are per process)
local forget = tonumber(ARGV[7])
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], group)) do
  local name, pending, cidle
  for i = 1, #c, 2 do
    if c[i] == 'name' then name = c[i + 1]
    elseif c[i] == 'pending' then pending = c[i + 1]
    elseif c[i] == 'idle' then cidle = c[i + 1] end
  end
  if name ~= consumer and pending == 0 and cidle > forget then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], group, name)
  end
end
return {dead, claimed[2]}
""")

# KEYS: stream.  ARGV: group, consumer, entry ids...  Resets the idle time of the entries
# this consumer still owns (a handler at work keeps its lease).  Returns how many.
EXTEND = Script("""
local group, consumer = ARGV[1], ARGV[2]
local n = 0
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], group, ARGV[i], ARGV[i], 1, consumer)
  if #p > 0 then
    redis.call('XCLAIM', KEYS[1], group, consumer, 0, ARGV[i], 'JUSTID')
    n = n + 1
  end
end
return n
""")

# KEYS: stream.  ARGV: group, consumer.  Removes the consumer from the group if it holds
# nothing (a graceful stop); a consumer with pending entries stays so they can be reclaimed.
LEAVE = Script("""
local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if not ok then return 0 end
for _, c in ipairs(consumers) do
  local name, pending
  for i = 1, #c, 2 do
    if c[i] == 'name' then name = c[i + 1] elseif c[i] == 'pending' then pending = c[i + 1] end
  end
  if name == ARGV[2] and pending == 0 then
    return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
  end
end
return 0
""")

# KEYS: dead, stream.  ARGV: entry ids (none = all).  Re-enqueues dead letters as first
# attempts and removes them from the dead stream (all: up to 1000 a call).
# Returns {replayed, entries removed}.
REPLAY = Script("""
local entries
if #ARGV == 0 then
  entries = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1000)
else
  entries = {}
  for i = 1, #ARGV do
    local e = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
    if #e > 0 then entries[#entries + 1] = e[1] end
  end
end
local n = 0
for _, e in ipairs(entries) do
  local f = e[2]
  for i = 1, #f, 2 do
    if f[i] == 'j' and f[i + 1] ~= '' then
      redis.call('XADD', KEYS[2], '*', 'j', f[i + 1])
      n = n + 1
    end
  end
  redis.call('XDEL', KEYS[1], e[1])
end
return {n, #entries}
""")
