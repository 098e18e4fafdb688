-- Argo CD health of a jesus.dev RoutePolicy, from its Ready condition (docs/argocd.md).
-- Ready (at least one adapter of the chain can serve) is Healthy, and a chain with an adapter missing
-- or not ready says so in the message; no ready adapter at all is Degraded.
local function condition(kind)
  if obj.status ~= nil and obj.status.conditions ~= nil then
    for _, found in ipairs(obj.status.conditions) do
      if found.type == kind then
        return found
      end
    end
  end
  return nil
end
local health = {status = "Progressing", message = "Waiting for the operator to resolve the chain"}
local generation = obj.metadata.generation
if obj.status ~= nil and obj.status.observedGeneration ~= nil and generation ~= nil
    and obj.status.observedGeneration < generation then
  health.message = "Waiting for the operator to see generation " .. generation
  return health
end
local ready = condition("Ready")
if ready == nil then
  return health
end
health.message = ready.message or ready.reason or ""
if ready.status == "True" then
  health.status = "Healthy"
  local resolved = condition("AdaptersResolved")
  if resolved ~= nil and resolved.status == "False" then
    health.message = resolved.message or health.message
  end
elseif ready.status == "False" then
  health.status = "Degraded"
end
return health
