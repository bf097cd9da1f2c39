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
- apiGroups: ["kueue.x-k8s.io"]
  resources: ["workloads"]
  # The Workload Kueue makes for a queued Job: why it waits, when it was admitted, why it was
  # evicted. Read only while a job with runPolicy.queueName waits or is held.
  verbs: ["list"]
- apiGroups: ["authorization.k8s.io"]
  resources: ["localsubjectaccessreviews"]
  # Whether an SFTJob's creator may read the Secrets and ConfigMaps it names and create pods:
  # asked by the webhook at admission and by the operator before each attempt starts.
  verbs: ["create"]
{{- if .Values.policy.networkPolicy.enabled }}
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  # Each job's NetworkPolicy, removed with the SFTJob by the garbage collector; get adopts it.
  verbs: ["get", "create"]
{{- end }}
{{- end }}

{{/* Kopf peering: replicas announce themselves in the shared object and elect a leader. */}}
{{- define "kubesft.peeringRules" -}}
{{- if .root.Values.leaderElection.enabled }}
- apiGroups: ["kopf.dev"]
  resources: [{{ .kind | quote }}]
  verbs: ["list", "watch", "patch"]
{{- end }}
{{- end }}

{{/* Cluster-scoped: Kopf discovers the SFTJob CRD, and the operator points the webhook configurations at itself. */}}
{{- define "kubesft.clusterRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- if and .Values.webhook.enabled (not .Values.webhook.certManager.enabled) }}
{{- /* The chart creates both; the operator patches their address and CA bundle, by name only,
       and may create none, so it cannot register a webhook for anything else. */}}
- apiGroups: ["admissionregistration.k8s.io"]
  resources: ["mutatingwebhookconfigurations", "validatingwebhookconfigurations"]
  resourceNames: [{{ include "kubesft.webhookConfigName" . | quote }}]
  verbs: ["patch"]
{{- /* Its own username, so that both webhooks skip its own requests (Kubernetes 1.28+; every
       user may ask this, the rule says that the operator does). */}}
- apiGroups: ["authentication.k8s.io"]
  resources: ["selfsubjectreviews"]
  verbs: ["create"]
{{- end }}
{{- end }}
