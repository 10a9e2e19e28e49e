-- wrk script: POSTs a 250-byte JSON order, rotating over 64 customer keys so
-- that every partition of the route gets work.
local bodies = {}
for i = 1, 64 do
  local b = string.format('{"customer":{"id":"c%03d","tier":"gold"},"order":"o-%06d","items":[{"sku":"A-1","qty":2}],"note":"', i, i)
  bodies[i] = b .. string.rep("x", 248 - #b) .. '"}'
end
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", "/orders", { ["Content-Type"] = "application/json" }, bodies[(n % 64) + 1])
end
