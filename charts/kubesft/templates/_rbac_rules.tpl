{{/*
Rules for the namespaces the operator serves. tests/test_chart_cluster.py checks them against the
API server's audit log of a real run: each verb here was used, and nothing used is missing.
*/}}
{{- define "kubesft.namespacedRules" -}}
- apiGroups: ["kubesft.io"]
  resources: ["sftjobs"]
  # delete: runPolicy.ttlSecondsAfterFinished removes finished SFTJobs.
  verbs: ["get", "list", "watch", "patch", "delete"]
- apiGroups: ["kubesft.io"]
  resources: ["sftjobs/status"]
  verbs: ["get", "patch"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  # patch: Job .spec.suspend (suspend on Kubernetes 1.22+) and activeDeadlineSeconds changes.
  verbs: ["get", "list", "watch", "create", "delete", "patch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "delete"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch", "create", "delete", "patch"]
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/* Kopf peering: replicas announce themselves in the shared object and elect a leader. */}}
{{- define "kubesft.peeringRules" -}}
{{- if .root.Values.leaderElection.enabled }}
- apiGroups: ["kopf.dev"]
  resources: [{{ .kind | quote }}]
  verbs: ["get", "list", "watch", "patch"]
{{- end }}
{{- end }}

{{/* Cluster-scoped: Kopf discovers the SFTJob CRD, and manages the webhook configuration. */}}
{{- define "kubesft.clusterRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- if and .Values.webhook.enabled (not .Values.webhook.certManager.enabled) }}
{{- /* Kopf creates the object when absent (create cannot be limited by name), then patches
       its webhooks and CA bundle. */}}
- apiGroups: ["admissionregistration.k8s.io"]
  resources: ["validatingwebhookconfigurations"]
  verbs: ["create"]
- apiGroups: ["admissionregistration.k8s.io"]
  resources: ["validatingwebhookconfigurations"]
  resourceNames: [{{ include "kubesft.webhookConfigName" . | quote }}]
  verbs: ["patch"]
{{- end }}
{{- end }}
