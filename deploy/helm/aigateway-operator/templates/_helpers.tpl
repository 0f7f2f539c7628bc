{{/* Names and labels shared by every template. */}}

{{- define "aigw.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "aigw.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "aigw.selectorLabels" -}}
app.kubernetes.io/name: {{ include "aigw.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "aigw.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "aigw.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: aigateway-operator
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "aigw.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "aigw.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "aigw.peeringName" -}}
{{- default (include "aigw.fullname" .) .Values.peering.name -}}
{{- end -}}

{{/* Pull secrets: global.imagePullSecrets (umbrella charts) then imagePullSecrets, each a name
or {name: ...}, without duplicates. */}}
{{- define "aigw.imagePullSecrets" -}}
{{- $names := list }}
{{- range (concat (default list (.Values.global).imagePullSecrets) (default list .Values.imagePullSecrets)) }}
{{- $name := "" }}
{{- if kindIs "string" . }}{{ $name = . }}{{ else }}{{ $name = get . "name" }}{{ end }}
{{- if and $name (not (has $name $names)) }}
{{- $names = append $names $name }}
{{- end }}
{{- end }}
{{- range $names }}
- name: {{ . }}
{{- end }}
{{- end -}}

{{/* The instance id: stable identity of this install in Coder's database (AIGW_INSTANCE_ID). */}}
{{- define "aigw.instanceID" -}}
{{- default (printf "%s-%s" .Release.Namespace .Release.Name) .Values.instanceID -}}
{{- end -}}

{{/* "true" unless this is a render against a live API server (helm install/upgrade, or
--dry-run=server: `lookup` answers there) that does not serve kopf.dev/v1. An offline render
(`helm template`, Argo CD's repo server, whatever --api-versions it passes) always says "true":
lookup answers nothing there. */}}
{{- define "aigw.peeringServed" -}}
{{- if or (.Capabilities.APIVersions.Has "kopf.dev/v1") (not (lookup "v1" "Namespace" "" "default")) -}}
true
{{- end -}}
{{- end -}}

{{- define "aigw.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
The rules the operator needs in every namespace it serves (a Role per namespace, or one
ClusterRole). Why each verb is there:
- our kinds: get/list/watch (kopf's watches, the operator's own lookups), patch (kopf's
  finalizer and progress annotations, our Secret/drift "pokes"). No update: kopf >= 1.44 adds
  and removes finalizers with a JSON patch. No create/delete: users own the objects.
- the status subresources: patch only (kopf writes status there).
- Secrets: get/list/watch (referenced Secrets are read and watched so edits propagate);
  create/update/patch/delete only with rbac.manageGatewayKeySecrets, for the plaintext Secrets
  of gateway keys, which the operator owns (ownerReference + label): create, replace on
  rotation, patch away the ownerReference when a key is orphaned, delete the old Secret after
  a rename. RBAC cannot limit these to Secrets by label, and resourceNames cannot apply to
  create, so the grant covers every Secret in the served scope.
- Events: create, in both API groups (core/v1 is what the operator posts; events.k8s.io for
  clients that use the newer API), and patch of core/v1 Events: a repeated Event bumps the
  count of the one already posted (kube/events.py).
Every call the operator makes is declared in src/aigateway_operator/kube/calls.py, and
tests/integration/test_chart_rbac.py checks each against these rules.
*/}}
{{- define "aigw.operatorRules" -}}
- apiGroups: ["aigateway.dev"]
  resources: ["aiproviders", "aigatewaycoderdkeys"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["aigateway.dev"]
  resources: ["aiproviders/status", "aigatewaycoderdkeys/status"]
  verbs: ["patch"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
{{- if .Values.rbac.manageGatewayKeySecrets }}
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["create", "update", "patch", "delete"]
{{- end }}
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}

{{/* kopf's peering: watch the peering kind, heartbeat (patch) only into our own object. */}}
{{- define "aigw.peeringRules" -}}
- apiGroups: ["kopf.dev"]
  resources: [{{ .resource | quote }}]
  verbs: ["get", "list", "watch"]
- apiGroups: ["kopf.dev"]
  resources: [{{ .resource | quote }}]
  resourceNames: [{{ .name | quote }}]
  verbs: ["patch"]
{{- end -}}

{{/* Restart on rotation: the operator stamps a pod-template annotation into Deployments and
StatefulSets annotated aigateway.dev/restart-on-rotation (found by a metadata list). */}}
{{- define "aigw.restartRules" -}}
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets"]
  verbs: ["get", "list", "patch"]
{{- end -}}
