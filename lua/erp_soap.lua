-- Builds the ERP's SOAP 1.1 CreateOrder request from a JSON order. The
-- envelope is written as text, element by element, so its order is the
-- one the ERP's schema wants (soap:Header before soap:Body, OrderNo before
-- Customer before Lines) whatever the JSON encoder does with keys.
local SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
local ERP_NS = "urn:example:erp:orders:1"

local ESCAPES = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&apos;" }

local function esc(v)
  return (tostring(v):gsub("[&<>\"']", ESCAPES))
end

local function elem(name, value)
  return "<erp:" .. name .. ">" .. esc(value) .. "</erp:" .. name .. ">"
end

function to_soap(msg, ctx)
  local order = msg:json()
  if type(order.lines) ~= "table" or #order.lines == 0 then
    error("order " .. tostring(order.order) .. " has no lines")
  end
  local out = {
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<soap:Envelope xmlns:soap="' .. SOAP_NS .. '" xmlns:erp="' .. ERP_NS .. '">',
    "  <soap:Header>",
    "    " .. elem("Sender", "sluice"),
    "  </soap:Header>",
    "  <soap:Body>",
    "    <erp:CreateOrder>",
    "      " .. elem("OrderNo", order.order),
    "      " .. elem("Customer", order.customer),
    "      <erp:Lines>",
  }
  for i, line in ipairs(order.lines) do
    out[#out + 1] = '        <erp:Line no="' .. i .. '">' .. elem("Sku", line.sku) .. elem("Qty", line.qty)
      .. "</erp:Line>"
  end
  for _, s in ipairs({ "      </erp:Lines>", "    </erp:CreateOrder>", "  </soap:Body>", "</soap:Envelope>", "" }) do
    out[#out + 1] = s
  end
  msg.body = table.concat(out, "\n")
  msg.headers["content-type"] = "text/xml; charset=utf-8"
  return msg
end
