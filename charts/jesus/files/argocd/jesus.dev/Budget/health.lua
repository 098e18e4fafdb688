-- Argo CD health of a jesus.dev Budget, from its conditions (docs/argocd.md).
-- Exceeded is Degraded: runs it covers wait until the period resets or the limit is raised. Ready
-- is Healthy (a crossed alert threshold shows in the message); anything else is Progressing.
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
local health = {status = "Progressing", message = "Waiting for the operator to open the ledger"}
local generation = obj.metadata.generation
if obj.status ~= nil and obj.status.observedGeneration ~= nil and generation ~= nil
    and obj.status.observedGeneration < generation then
  health.message = "Waiting for the operator to see generation " .. generation
  return health
end
local exceeded = condition("Exceeded")
local ready = condition("Ready")
local threshold = condition("ThresholdReached")
if exceeded ~= nil and exceeded.status == "True" then
  health.status = "Degraded"
  health.message = exceeded.message or "The budget's limit is reached"
elseif ready ~= nil and ready.status == "True" then
  health.status = "Healthy"
  if threshold ~= nil and threshold.status == "True" then
    health.message = threshold.message or ready.message or ""
  else
    health.message = ready.message or ""
  end
elseif ready ~= nil and ready.status == "False" then
  health.status = "Degraded"
  health.message = ready.message or ready.reason or ""
end
return health
