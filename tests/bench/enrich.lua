-- Benchmark step: reads two fields and sets one (issue 4's per-message cost).
function enrich(msg, ctx)
  local o = msg:json()
  o.customer.segment = (o.customer.tier == "gold") and "priority" or "standard"
  o.lines = #o.items
  msg:set_json(o)
  return msg
end
