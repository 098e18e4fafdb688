{{/* Names and labels shared by every template. */}}

{{- define "jesus.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-<chart> unless the release name holds the chart name already; 52 leaves room for suffixes. */}}
{{- define "jesus.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else if contains (include "jesus.name" .) .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "jesus.name" .) | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "jesus.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "jesus.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: jesus
{{- end -}}

{{/* Selector labels of one component: call with (dict "root" $ "component" "operator"). */}}
{{- define "jesus.selectorLabels" -}}
app.kubernetes.io/name: {{ include "jesus.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "jesus.componentLabels" -}}
{{ include "jesus.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "jesus.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "jesus.runnerImage" -}}
{{- $repository := default .Values.image.repository .Values.runner.image.repository -}}
{{- $tag := default (default .Chart.AppVersion .Values.image.tag) .Values.runner.image.tag -}}
{{- printf "%s:%s" $repository $tag -}}
{{- end -}}

{{- define "jesus.operatorServiceAccount" -}}
{{- default (printf "%s-operator" (include "jesus.fullname" .)) .Values.serviceAccounts.operator -}}
{{- end -}}

{{- define "jesus.apiServiceAccount" -}}
{{- default (printf "%s-api" (include "jesus.fullname" .)) .Values.serviceAccounts.api -}}
{{- end -}}

{{- define "jesus.routerServiceAccount" -}}
{{- default (printf "%s-router" (include "jesus.fullname" .)) .Values.serviceAccounts.router -}}
{{- end -}}

{{- define "jesus.routerSigningSecret" -}}
{{- default (printf "%s-router-signing-key" (include "jesus.fullname" .)) .Values.router.signingKey.existingSecret -}}
{{- end -}}

{{/* The audience of the operator's service-account token for the router's admin API. */}}
{{- define "jesus.routerAudience" -}}
{{- default (printf "%s-router" (include "jesus.clusterName" .)) .Values.router.admin.audience -}}
{{- end -}}

{{/* Where the operator's projected token for the router is mounted. */}}
{{- define "jesus.routerTokenDir" -}}
/var/run/secrets/jesus/router-token
{{- end -}}

{{/* Cluster-scoped objects carry the namespace too, so two releases of one name never collide. */}}
{{- define "jesus.clusterName" -}}
{{- printf "%s-%s" .Release.Namespace (include "jesus.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "jesus.routerURL" -}}
{{- printf "http://%s-router.%s.svc:%d" (include "jesus.fullname" .) .Release.Namespace (int .Values.router.port) -}}
{{- end -}}

{{/* The hardened security context every Jesus container runs with. */}}
{{- define "jesus.containerSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* "true" when the router may run more than one replica (its replicas, or the autoscaler's most). */}}
{{- define "jesus.routerMaySpread" -}}
{{- $r := .Values.router -}}
{{- if $r.autoscaling.enabled -}}
{{- if gt (int $r.autoscaling.maxReplicas) 1 }}true{{ end -}}
{{- else if gt (int $r.replicas) 1 }}true{{ end -}}
{{- end -}}

{{/* "true" when the router keeps more than one replica at all times (then a PodDisruptionBudget helps). */}}
{{- define "jesus.routerKeepsTwo" -}}
{{- $r := .Values.router -}}
{{- if $r.autoscaling.enabled -}}
{{- if gt (int $r.autoscaling.minReplicas) 1 }}true{{ end -}}
{{- else if gt (int $r.replicas) 1 }}true{{ end -}}
{{- end -}}

{{/* The egress rules every runner pod gets (JSON, for the operator's --runner-egress): DNS, the
router's pods on its port, and networkPolicy.runnerExtraEgress. The operator adds each run's MCP
servers to them in the run's own NetworkPolicy. */}}
{{- define "jesus.runnerEgress" -}}
{{- $np := .Values.networkPolicy -}}
{{- $routerPods := include "jesus.selectorLabels" (dict "root" . "component" "router") | fromYaml -}}
{{- $router := dict
    "to" (list (dict
      "namespaceSelector" (dict "matchLabels" (dict "kubernetes.io/metadata.name" .Release.Namespace))
      "podSelector" (dict "matchLabels" $routerPods)))
    "ports" (list (dict "protocol" "TCP" "port" (int .Values.router.port))) -}}
{{- $rules := list (dict "to" $np.dns.to "ports" $np.dns.ports) $router -}}
{{- toJson (concat $rules $np.runnerExtraEgress) -}}
{{- end -}}

{{/* The --kueue-lanes value: name=minPriority:value for each lane, comma-separated. */}}
{{- define "jesus.kueueLanes" -}}
{{- $lanes := list }}
{{- range .Values.kueue.lanes }}
{{- $lanes = append $lanes (printf "%s=%v:%v" .name .minPriority .value) }}
{{- end }}
{{- join "," $lanes }}
{{- end }}

{{/*
The S3 credential of the operator and the read API (docs/artifacts.md), from its Secret; never a runner's.
*/}}
{{- define "jesus.artifactCredentials" -}}
{{- if .Values.artifacts.endpoint }}
{{- if not .Values.artifacts.credentialsSecret.name }}
{{- fail "artifacts.endpoint needs artifacts.credentialsSecret.name: a Secret with the operator's S3 access key" }}
{{- end }}
- name: JESUS_ARTIFACTS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ .Values.artifacts.credentialsSecret.name }}
      key: {{ .Values.artifacts.credentialsSecret.accessKeyIdKey }}
- name: JESUS_ARTIFACTS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.artifacts.credentialsSecret.name }}
      key: {{ .Values.artifacts.credentialsSecret.secretAccessKeyKey }}
{{- end }}
{{- end }}
