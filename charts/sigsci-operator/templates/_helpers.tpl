{{- define "sigsci-operator.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sigsci-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- /* The ServiceAccount and the Lease take the release's name, so two releases never share one. */ -}}
{{- define "sigsci-operator.serviceAccountName" -}}
{{- .Values.serviceAccount.name | default (include "sigsci-operator.fullname" .) -}}
{{- end -}}

{{- define "sigsci-operator.labels" -}}
app.kubernetes.io/name: {{ include "sigsci-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "sigsci-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sigsci-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- /* Writing the given kinds: the objects (finalizers, annotations), their status and finalizers. */ -}}
{{- define "sigsci-operator.writeRules" -}}
- apiGroups: ["sigsci-kit.io"]
  resources: [{{ range $i, $kind := . }}{{ if $i }}, {{ end }}{{ $kind | quote }}{{ end }}]
  verbs: ["patch", "update"]
- apiGroups: ["sigsci-kit.io"]
  resources: [{{ range $i, $kind := . }}{{ if $i }}, {{ end }}{{ printf "%s/status" $kind | quote }}{{ end }}]
  verbs: ["get", "patch", "update"]
- apiGroups: ["sigsci-kit.io"]
  resources: [{{ range $i, $kind := . }}{{ if $i }}, {{ end }}{{ printf "%s/finalizers" $kind | quote }}{{ end }}]
  verbs: ["update"]
{{- end -}}
