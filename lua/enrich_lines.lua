-- Splits an order into one analytics event per line, each enriched from the
-- product catalog (ctx.http through the `catalog` connector, cached per
-- route worker for 5 minutes): title, category and unit price, and the line
-- total in cents (integers: exact). Keys are assigned in alphabetical order,
-- so the body is the same with sorted and with ordered JSON objects. An
-- unknown SKU is a permanent error (dead letter); a catalog that cannot be
-- reached makes the step retry the order later (ctx.retry).
local TTL_MS = 300000

local function product(ctx, sku)
  local p = ctx.cache:get(sku)
  if p then return p end
  local r = ctx.http("catalog", { method = "GET", path = "/products/" .. sku })
  if r.status == 404 then
    error("unknown sku " .. sku)
  elseif not r.ok then
    ctx.retry("catalog: " .. tostring(r.error))
  end
  p = json.decode(r.body)
  ctx.cache:set(sku, p, TTL_MS)
  return p
end

function per_line(msg, ctx)
  local order = msg:json()
  local out = {}
  for i, line in ipairs(order.lines) do
    local p = product(ctx, line.sku)
    local ev = {}
    ev.category = p.category
    ev.customer = order.customer
    ev.line = i
    ev.order = order.order
    ev.price_cents = p.price_cents
    ev.qty = line.qty
    ev.sku = line.sku
    ev.title = p.title
    ev.total_cents = p.price_cents * line.qty
    local m = i == 1 and msg or msg:clone()
    m:set_json(ev)
    m.headers["x-category"] = p.category
    out[#out + 1] = m
  end
  return out
end
