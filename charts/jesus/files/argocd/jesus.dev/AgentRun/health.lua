-- Argo CD health of a jesus.dev AgentRun, from the phase the operator writes (docs/argocd.md).
-- Succeeded is Healthy; Failed and Denied are Degraded; Waiting (for money, dependencies, a route or
-- the policy engine) is Suspended; Pending, Admitted and Running are Progressing.
local health = {status = "Progressing", message = "Waiting for the operator to see the run"}
if obj.status == nil or obj.status.phase == nil then
  return health
end
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and observed ~= nil and observed < generation then
  health.message = "Waiting for the operator to see generation " .. generation
  return health
end
local phase = obj.status.phase
local by_phase = {
  Succeeded = "Healthy",
  Failed = "Degraded",
  Denied = "Degraded",
  Waiting = "Suspended",
  Pending = "Progressing",
  Admitted = "Progressing",
  Running = "Progressing",
}
health.status = by_phase[phase] or "Unknown"
health.message = obj.status.message or phase
return health
