{{/*
Rules for the namespaces the operator serves. tests/test_chart_cluster.py checks them against the
API server's audit log of a real run: each verb here was used, and nothing used is missing.
*/}}
{{- define "kubesft.namespacedRules" -}}
- apiGroups: ["kubesft.io"]
  resources: ["sftjobs"]
  # patch: finalizer and bookkeeping annotations; delete: runPolicy.ttlSecondsAfterFinished.
  verbs: ["list", "watch", "patch", "delete"]
- apiGroups: ["kubesft.io"]
  resources: ["sftjobs/status"]
  verbs: ["patch"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  # get: adopt its own Job after a create conflict (restarted between creating and recording it).
  # delete: the Job of a failed or superseded attempt, and suspension before Kubernetes 1.22.
  # patch: Job .spec.suspend (Kubernetes 1.22+) and activeDeadlineSeconds changes.
  verbs: ["get", "list", "watch", "create", "delete", "patch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  resources: ["services"]
  # The headless Service multi-node jobs rendezvous through; get adopts it after a conflict.
  # Owner references let the garbage collector delete it with the SFTJob.
  verbs: ["get", "create"]
- apiGroups: [""]
  resources: ["configmaps"]
  # The trainer's config; get and patch adopt and refresh it after a create conflict.
  verbs: ["get", "create", "patch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{/* Kopf peering: replicas announce themselves in the shared object and elect a leader. */}}
{{- define "kubesft.peeringRules" -}}
{{- if .root.Values.leaderElection.enabled }}
- apiGroups: ["kopf.dev"]
  resources: [{{ .kind | quote }}]
  verbs: ["list", "watch", "patch"]
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
