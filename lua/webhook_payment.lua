-- Maps a payment provider's webhook event (Stripe-like: {id, type, created,
-- data.object}) to the shape the internal order service takes. Keys are
-- assigned in alphabetical order, so the body is the same whether the JSON
-- encoder writes keys sorted (today) or in insertion order.
local EVENTS = { ["charge.succeeded"] = "payment.succeeded", ["charge.refunded"] = "payment.refunded" }

-- 2599 -> "25.99" (amounts arrive in minor units; exact, no floating point)
local function decimal(minor)
  local sign = minor < 0 and "-" or ""
  minor = math.abs(minor)
  return string.format("%s%d.%02d", sign, minor // 100, minor % 100)
end

function to_internal(msg, ctx)
  local ev = msg:json()
  local obj = ev.data.object
  local out = {}
  out.amount = decimal(ev.type == "charge.refunded" and -obj.amount_refunded or obj.amount)
  out.currency = string.upper(obj.currency)
  out.customer = obj.customer
  out.event = EVENTS[ev.type]
  out.order = obj.metadata and obj.metadata.order_id or json.null
  out.source = {}
  out.source.event_id = ev.id
  out.source.provider = "payhub"
  out.ts = ev.created
  msg:set_json(out)
  msg.headers["x-event-type"] = out.event
  return msg
end
