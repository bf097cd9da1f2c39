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
# The chart owns the ValidatingWebhookConfiguration and cert-manager injects its CA.
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
