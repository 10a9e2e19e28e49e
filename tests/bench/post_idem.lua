-- wrk script: post.lua's 250-byte JSON orders, each with its own
-- Idempotency-Key (thread-unique prefix + counter), for the dedupe cost.
local bodies = {}
for i = 1, 64 do
  local b = string.format('{"customer":{"id":"c%03d","tier":"gold"},"order":"o-%06d","items":[{"sku":"A-1","qty":2}],"note":"', i, i)
  bodies[i] = b .. string.rep("x", 248 - #b) .. '"}'
end
local n = 0
local prefix = string.format("%x-%x", os.time(), math.random(1, 1e9))
request = function()
  n = n + 1
  return wrk.format("POST", "/orders", { ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = prefix .. "-" .. n }, bodies[(n % 64) + 1])
end
