{{/* Names and labels shared by every template. */}}
{{- define "mailwarden.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mailwarden.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "mailwarden.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "mailwarden.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "mailwarden.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mailwarden.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "mailwarden.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "mailwarden.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mailwarden
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "mailwarden.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "mailwarden.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* repository:tag, or repository:tag@digest when a digest pins it (the tag then only informs). */}}
{{- define "mailwarden.image" -}}
{{- $ref := printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $ref .Values.image.digest -}}
{{- else -}}
{{- $ref -}}
{{- end -}}
{{- end -}}

{{/* The namespaces the operator watches: the release namespace unless told otherwise. */}}
{{- define "mailwarden.watchNamespaces" -}}
{{- if .Values.watchNamespaces -}}
{{- join "," (uniq .Values.watchNamespaces) -}}
{{- else -}}
{{- .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{- define "mailwarden.webhookServiceName" -}}
{{- printf "%s-webhook" (include "mailwarden.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* cert-manager's Certificate for the webhook, and the Secret it writes. */}}
{{- define "mailwarden.webhookCertificateName" -}}
{{- printf "%s-webhook" (include "mailwarden.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- /* The operator's own certificate Secret (without cert-manager): the name --webhook-secret defaults to. */ -}}
{{- define "mailwarden.webhookTlsSecret" -}}
{{- printf "%s-webhook-tls" (include "mailwarden.fullname" .) -}}
{{- end -}}

{{- define "mailwarden.webhookCertificateSecret" -}}
{{- printf "%s-webhook-cert" (include "mailwarden.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
What the API server fills into a matchConstraints left without them. MatchResources is atomic
for server-side apply: unless the chart states them, the live value differs from the chart's
and every second applier (Argo CD, kubectl apply --server-side) conflicts with the first.
*/}}
{{- define "mailwarden.matchDefaults" -}}
namespaceSelector: {}
objectSelector: {}
matchPolicy: Equivalent
{{- end }}
