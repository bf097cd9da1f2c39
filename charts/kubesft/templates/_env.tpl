{{/* The operator's settings: the KUBESFT_* variables kubesft_operator.settings reads. */}}
{{- define "kubesft.operatorEnv" -}}
- name: KUBESFT_POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: KUBESFT_WATCH_NAMESPACES
  value: {{ join "," .Values.watchNamespaces | quote }}
- name: KUBESFT_TRAINER_IMAGE
  value: {{ include "kubesft.trainerImage" . | quote }}
- name: KUBESFT_TRAINER_IMAGE_PULL_SECRETS
  value: {{ join "," .Values.trainerImage.pullSecrets | quote }}
- name: KUBESFT_PROGRESS_INTERVAL_SECONDS
  value: {{ .Values.progress.intervalSeconds | quote }}
- name: KUBESFT_PROGRESS_TIMEOUT_SECONDS
  value: {{ .Values.progress.timeoutSeconds | quote }}
- name: KUBESFT_LOG_LEVEL
  value: {{ .Values.logLevel | upper | quote }}
- name: KUBESFT_METRICS_PORT
  value: {{ .Values.metrics.port | quote }}
- name: KUBESFT_HEALTH_PORT
  value: {{ .Values.health.port | quote }}
- name: KUBESFT_SIGNING_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "kubesft.signingSecretName" . }}
      key: key
- name: KUBESFT_POLICY_ALLOWED_IMAGES
  value: {{ include "kubesft.allowedImages" . | quote }}
- name: KUBESFT_POLICY_ALLOWED_PRIORITY_CLASSES
  value: {{ toJson .Values.policy.allowedPriorityClasses | quote }}
- name: KUBESFT_POLICY_STORAGE_PREFIXES
  value: {{ toJson .Values.policy.storagePrefixes | quote }}
- name: KUBESFT_POLICY_ALLOW_AMBIENT_CREDENTIALS
  value: {{ .Values.policy.allowAmbientCredentials | quote }}
- name: KUBESFT_NETWORK_POLICY_ENABLED
  value: {{ .Values.policy.networkPolicy.enabled | quote }}
{{- if .Values.policy.networkPolicy.enabled }}
- name: KUBESFT_NETWORK_POLICY_OPERATOR_LABELS
  value: {{ include "kubesft.selectorLabels" . | fromYaml | toJson | quote }}
- name: KUBESFT_NETWORK_POLICY_PROMETHEUS
  value: {{ toJson .Values.policy.networkPolicy.prometheus | quote }}
- name: KUBESFT_NETWORK_POLICY_RESTRICT_EGRESS
  value: {{ .Values.policy.networkPolicy.restrictEgress | quote }}
- name: KUBESFT_NETWORK_POLICY_EGRESS
  value: {{ toJson .Values.policy.networkPolicy.egress | quote }}
{{- end }}
{{- if .Values.leaderElection.enabled }}
- name: KUBESFT_STANDALONE
  value: "false"
- name: KUBESFT_PEERING_NAME
  value: {{ .Values.leaderElection.peeringName | quote }}
{{- else }}
- name: KUBESFT_STANDALONE
  value: "true"
{{- end }}
- name: KUBESFT_WEBHOOK_ENABLED
  value: {{ .Values.webhook.enabled | quote }}
{{- if .Values.webhook.enabled }}
- name: KUBESFT_WEBHOOK_PORT
  value: {{ .Values.webhook.port | quote }}
- name: KUBESFT_WEBHOOK_SERVICE_NAME
  value: {{ include "kubesft.webhookServiceName" . | quote }}
- name: KUBESFT_WEBHOOK_SERVICE_NAMESPACE
  value: {{ .Release.Namespace | quote }}
- name: KUBESFT_WEBHOOK_SERVICE_PORT
  value: {{ .Values.webhook.port | quote }}
{{- if .Values.webhook.certManager.enabled }}
- name: KUBESFT_WEBHOOK_CERT_FILE
  value: /etc/kubesft/webhook-tls/tls.crt
- name: KUBESFT_WEBHOOK_KEY_FILE
  value: /etc/kubesft/webhook-tls/tls.key
- name: KUBESFT_WEBHOOK_CA_FILE
  value: /etc/kubesft/webhook-tls/ca.crt
# cert-manager injects the CA into the chart's webhook configurations; the operator leaves them be.
- name: KUBESFT_WEBHOOK_CONFIGURATION
  value: ""
{{- else }}
- name: KUBESFT_WEBHOOK_CONFIGURATION
  value: {{ include "kubesft.webhookConfigName" . | quote }}
- name: KUBESFT_WEBHOOK_FAILURE_POLICY
  value: {{ .Values.webhook.failurePolicy | quote }}
{{- end }}
{{- end }}
{{- end }}
