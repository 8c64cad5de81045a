{{- define "qa.name" -}}{{ .Release.Name }}{{- end -}}

{{- define "qa.labels" -}}
app.kubernetes.io/name: transformers-qa
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
transformers-qa/model-version: {{ .Values.model.version | quote }}
{{- end -}}

{{- define "qa.selector" -}}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "qa.image" -}}{{ .repository }}:{{ required (printf "%s: no image tag; a promotion sets model.version and the image tags together" .repository) .tag }}{{- end -}}

{{/* Pods run as a non-root user with a read-only root file system and no privileges. */}}
{{- define "qa.podSecurity" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 1000
fsGroup: 1000
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "qa.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}
