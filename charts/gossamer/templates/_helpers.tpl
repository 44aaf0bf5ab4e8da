{{/*
Names. Kubernetes names are at most 63 characters here (Service names are
DNS labels), so every name is cut there and loses a trailing dash.
*/}}

{{/* The chart's name, or nameOverride. */}}
{{- define "gossamer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The prefix of every object: fullnameOverride, else the release name when it
already holds the chart's name (release "gossamer" gives "gossamer", not
"gossamer-gossamer"), else "<release>-<chart>".
*/}}
{{- define "gossamer.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "gossamer.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The operator's name: its Deployment, ServiceAccount, Service, Lease and
RBAC objects. Release "gossamer" gives "gossamer-operator", the name
operator/deploy/rbac.yaml and the operator's flag defaults use.
*/}}
{{- define "gossamer.operatorName" -}}
{{- printf "%s-operator" (include "gossamer.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The MutatingWebhookConfiguration's name (cluster-scoped). Release "gossamer"
gives "gossamer-sidecar-injector", the operator's --webhook-configuration
default.
*/}}
{{- define "gossamer.webhookName" -}}
{{- printf "%s-sidecar-injector" (include "gossamer.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The inject ConfigMap's name. */}}
{{- define "gossamer.injectConfigName" -}}
{{- printf "%s-inject" (include "gossamer.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The operator image, its tag defaulting to appVersion. */}}
{{- define "gossamer.operatorImage" -}}
{{- printf "%s:%s" .Values.operator.image.repository (default .Chart.AppVersion .Values.operator.image.tag) -}}
{{- end -}}

{{/* The sidecar image, defaulting to gossamer.dev/sidecar:<appVersion>. */}}
{{- define "gossamer.sidecarImage" -}}
{{- default (printf "gossamer.dev/sidecar:%s" .Chart.AppVersion) .Values.sidecar.image -}}
{{- end -}}

{{/* Where sidecars reach the control stream. */}}
{{- define "gossamer.controlEndpoint" -}}
{{- default (printf "https://%s.%s.svc:8443" (include "gossamer.operatorName" .) .Release.Namespace) .Values.sidecar.controlEndpoint -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "gossamer.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "gossamer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: gossamer
{{- end -}}

{{/*
What the operator's Pods are selected by (Deployment, Service, PDB,
NetworkPolicy, spreading). Never change these in an upgrade: a Deployment's
selector is immutable.
*/}}
{{- define "gossamer.operatorSelectorLabels" -}}
app.kubernetes.io/name: {{ include "gossamer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* Labels of the operator's objects. */}}
{{- define "gossamer.operatorLabels" -}}
{{ include "gossamer.labels" . }}
app.kubernetes.io/component: operator
{{- end -}}
