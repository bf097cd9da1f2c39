{{/* The operator's settings, read from the environment by kubesft_operator.settings. */}}
{{- define "kubesft.operatorEnv" -}}
- name: KUBESFT_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: KUBESFT_POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: KUBESFT_WATCH_NAMESPACES
  value: {{ join "," .Values.watchNamespaces | quote }}
- name: KUBESFT_TRAINER_IMAGE
  value: {{ include "kubesft.trainerImage" . | quote }}
- name: KUBESFT_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: KUBESFT_OPERATOR_METRICS_PORT
  value: {{ .Values.metrics.port | quote }}
- name: KUBESFT_HEALTH_PORT
  value: {{ .Values.health.port | quote }}
- name: KUBESFT_PEERING_NAME
  value: {{ ternary .Values.leaderElection.peeringName "" .Values.leaderElection.enabled | quote }}
- name: KUBESFT_WEBHOOK_ENABLED
  value: {{ .Values.webhook.enabled | quote }}
{{- if .Values.webhook.enabled }}
- name: KUBESFT_WEBHOOK_PORT
  value: {{ .Values.webhook.port | quote }}
- name: KUBESFT_WEBHOOK_HOST
  value: {{ printf "%s.%s.svc" (include "kubesft.webhookServiceName" .) .Release.Namespace | quote }}
{{- if .Values.webhook.certManager.enabled }}
- name: KUBESFT_WEBHOOK_CERT_DIR
  value: /etc/kubesft/webhook-tls
{{- else }}
- name: KUBESFT_WEBHOOK_CONFIG_NAME
  value: {{ include "kubesft.webhookConfigName" . | quote }}
{{- end }}
{{- end }}
{{- end }}
