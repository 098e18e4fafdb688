-- Argo CD health of a jesus.dev Lesson (docs/reflection.md#lessons). No controller writes its status:
-- a LongTerm lesson in the specs repo is Healthy (offered to its team's matching runs); a ShortTerm one
-- is Degraded, since short-term memory is the archive's and only `jesus lessons promote` writes files.
local health = {status = "Healthy", message = "Offered to matching runs"}
if obj.spec == nil then
  health.status = "Unknown"
  health.message = "The lesson has no spec"
  return health
end
local team = "its team"
if type(obj.spec.scope) == "table" and type(obj.spec.scope.team) == "string" then
  team = "team " .. obj.spec.scope.team
end
local memory = obj.spec.memory
if memory == nil or memory == "LongTerm" then
  health.message = "Offered to " .. team .. "'s matching runs"
elseif memory == "ShortTerm" then
  health.status = "Degraded"
  health.message = "A ShortTerm lesson belongs in the archive; promote it with jesus lessons promote"
else
  health.status = "Unknown"
  health.message = "Unknown memory " .. tostring(memory)
end
return health
