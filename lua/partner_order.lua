-- Maps our order JSON to the partner's purchase-order document, in the
-- JSON shape of the JSON/XML convention (@attributes, #text, arrays as
-- repeated elements); the json_to_xml step that follows writes the XML.
function to_partner(msg, ctx)
  local o = msg:json()
  local lines = json.array()
  for i, item in ipairs(o.items) do
    lines[#lines + 1] = {
      ["@no"] = i,
      SKU = item.sku,
      Quantity = item.qty,
      UnitPrice = { ["@currency"] = o.currency or "EUR", ["#text"] = item.price },
    }
  end
  msg:set_json({
    PurchaseOrder = {
      ["@xmlns"] = "urn:example:partner:po:1",
      ["@id"] = o.id,
      Buyer = { ["@ref"] = o.customer.id, Name = o.customer.name },
      Lines = { Line = lines },
    },
  })
  msg.headers["x-partner-order"] = o.id
  return msg
end
