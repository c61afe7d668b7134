{{- define "convoy-agent.labels" -}}
app.kubernetes.io/name: convoy-agent
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
{{- define "convoy-agent.tokenSecret" -}}
{{- default (printf "%s-token" .Release.Name) .Values.existingTokenSecret -}}
{{- end }}
