-- Argo CD health check for aigateway.dev AIProvider and AIGatewayCoderdKey objects.
-- Input: obj (the live object). Output: {status = Healthy | Progressing | Degraded, message}.
--   Healthy      Ready=True, computed from the current metadata.generation
--   Progressing  no status yet, status older than the spec, Reconciling=True, deleting, or
--                Ready not True for a reason that can fix itself (a missing Secret, the
--                database unreachable, STS unavailable, ...)
--   Degraded     Stalled=True, or Ready=False for a reason that needs a person:
--                the reasons in `terminal` (the operator's STALLED_REASONS; it also
--                sets Stalled=True for them)
-- Conditions follow kstatus: Reconciling while a pass is pending, Stalled for states that
-- will not fix themselves. Tested in tests/unit/test_deploy_argocd_health.py.
local hs = {status = "Progressing", message = "Waiting for the operator"}
local terminal = {
  EncryptionKeyMismatch = true,
  InsufficientPrivileges = true,
  InvalidSpec = true,
  NameConflict = true,
  NotSupportedByCoder = true,
  PlaintextRefused = true,
  SchemaMismatch = true,
  SecretNotOwned = true,
  TypeMismatch = true,
  UnsupportedByOperator = true,
}
local generation = obj.metadata and obj.metadata.generation or nil

local function find(conditions, kind)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function describe(c)
  local text = c.type .. "=" .. tostring(c.status)
  if c.reason ~= nil and c.reason ~= "" then
    text = text .. " (" .. c.reason .. ")"
  end
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. c.message
  end
  return text
end

local status = obj.status
if status == nil or status.conditions == nil then
  return hs
end
local conditions = status.conditions

-- A status computed from an older spec says nothing about the current one.
local observed = status.observedGeneration
local ready = find(conditions, "Ready")
if ready ~= nil and ready.observedGeneration ~= nil then
  observed = ready.observedGeneration
end
if generation ~= nil and (observed == nil or observed < generation) then
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local stalled = find(conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.message = "Deleting"
  if ready ~= nil then
    hs.message = describe(ready)
  end
  return hs
end

local reconciling = find(conditions, "Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = describe(reconciling)
  return hs
end

if ready == nil then
  return hs
end
if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  return hs
end
if ready.status == "False" and terminal[ready.reason] then
  hs.status = "Degraded"
end
hs.message = describe(ready)
return hs
