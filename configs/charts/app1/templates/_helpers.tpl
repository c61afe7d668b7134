{{/* Labels every object of the release carries. */}}
{{- define "app1.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
convoy.dev/region: {{ .Values.global.region | quote }}
{{- end -}}
