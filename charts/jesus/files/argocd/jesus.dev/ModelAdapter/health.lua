-- Argo CD health of a jesus.dev ModelAdapter, from its Ready condition (docs/argocd.md).
-- Ready is Healthy. Not ready: a serving Deployment still rolling out is Progressing, one scaled to
-- zero is Suspended, and missing credentials, an unschedulable or unavailable model are Degraded.
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
local health = {status = "Progressing", message = "Waiting for the operator to check the adapter"}
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
elseif ready.reason == "DeploymentProgressing" then
  health.status = "Progressing"
elseif ready.reason == "ScaledToZero" then
  health.status = "Suspended"
elseif ready.status == "False" then
  health.status = "Degraded"
end
return health
