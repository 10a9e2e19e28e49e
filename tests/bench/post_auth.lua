-- wrk script: tests/bench/post.lua's 250-byte JSON orders with an
-- `Authorization: Bearer` token (tests/bench/admission_cost.sh).
local bodies = {}
for i = 1, 64 do
  local b = string.format('{"customer":{"id":"c%03d","tier":"gold"},"order":"o-%06d","items":[{"sku":"A-1","qty":2}],"note":"', i, i)
  bodies[i] = b .. string.rep("x", 248 - #b) .. '"}'
end
local headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer bench-token-7f3a" }
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", "/orders", headers, bodies[(n % 64) + 1])
end
