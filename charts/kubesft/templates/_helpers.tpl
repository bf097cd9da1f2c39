{{/* Chart name, overridable. */}}
{{- define "kubesft.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-scoped name of the operator's resources. */}}
{{- define "kubesft.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "kubesft.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "kubesft.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "kubesft.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every resource of the release carries, without the component. */}}
{{- define "kubesft.commonLabels" -}}
helm.sh/chart: {{ include "kubesft.chart" . }}
app.kubernetes.io/name: {{ include "kubesft.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kubesft
{{- end }}

{{/* Labels of the operator's own resources. */}}
{{- define "kubesft.labels" -}}
{{ include "kubesft.commonLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Labels that select the operator pods. */}}
{{- define "kubesft.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubesft.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "kubesft.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kubesft.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kubesft.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "kubesft.trainerImage" -}}
{{- printf "%s:%s" .Values.trainerImage.repository (default .Chart.AppVersion .Values.trainerImage.tag) }}
{{- end }}

{{- define "kubesft.metricsServiceName" -}}
{{- printf "%s-metrics" (include "kubesft.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kubesft.webhookServiceName" -}}
{{- printf "%s-webhook" (include "kubesft.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kubesft.webhookSecretName" -}}
{{- printf "%s-webhook-tls" (include "kubesft.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kubesft.webhookConfigName" -}}
{{- printf "%s.%s.kubesft.io" (include "kubesft.fullname" .) .Release.Namespace | trunc 253 }}
{{- end }}

{{/* Namespaces the trainer pods run in, for the PodMonitor's selector. */}}
{{- define "kubesft.trainerNamespaces" -}}
{{- if .Values.monitoring.podMonitor.namespaces }}
{{- toJson .Values.monitoring.podMonitor.namespaces }}
{{- else }}
{{- toJson .Values.watchNamespaces }}
{{- end }}
{{- end }}


{{/* The Secret holding the key that signs the operator's records on SFTJobs. */}}
{{- define "kubesft.signingSecretName" -}}
{{- printf "%s-signing-key" (include "kubesft.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* policy.allowedImages as JSON; empty means any tag or digest of the trainer image repository. */}}
{{- define "kubesft.allowedImages" -}}
{{- if .Values.policy.allowedImages }}
{{- toJson .Values.policy.allowedImages }}
{{- else }}
{{- $repository := .Values.trainerImage.repository }}
{{- toJson (list (printf "%s:*" $repository) (printf "%s@sha256:*" $repository)) }}
{{- end }}
{{- end }}
