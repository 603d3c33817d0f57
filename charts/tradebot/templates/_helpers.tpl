{{/* Names, labels, images and the checks every template shares. */}}

{{- define "tradebot.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The operator's objects: <release>-<name>-operator unless overridden. */}}
{{- define "tradebot.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "tradebot.name" . }}
{{- if contains $name .Release.Name }}
{{- printf "%s-operator" .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s-operator" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "tradebot.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels of one component ("operator", "test", ...). Call with (list $ "component"). */}}
{{- define "tradebot.selectorLabels" -}}
{{- $ := index . 0 -}}
app.kubernetes.io/name: {{ include "tradebot.name" $ }}
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* Every label of one component. Call with (list $ "component"). */}}
{{- define "tradebot.labels" -}}
{{- $ := index . 0 -}}
helm.sh/chart: {{ include "tradebot.chart" $ }}
{{ include "tradebot.selectorLabels" . }}
app.kubernetes.io/version: {{ $.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: tradebot
app.kubernetes.io/managed-by: {{ $.Release.Service }}
{{- end }}

{{- define "tradebot.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tradebot.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name: name the existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag, or repository@digest. Call with (list $ .Values.image). */}}
{{- define "tradebot.image" -}}
{{- $ := index . 0 -}}
{{- $image := index . 1 }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (default $.Chart.AppVersion $image.tag) }}
{{- end }}
{{- end }}

{{/* The namespaces the operator watches when not cluster-wide. */}}
{{- define "tradebot.watchedNamespaces" -}}
{{- if .Values.operator.watch.namespaces }}
{{- join "," (uniq .Values.operator.watch.namespaces) }}
{{- else }}
{{- .Release.Namespace }}
{{- end }}
{{- end }}

{{- define "tradebot.stackName" -}}
{{- .Values.stack.name }}
{{- end }}

{{- define "tradebot.credentialsSecretName" -}}
{{- printf "%s-credentials" .Values.stack.name }}
{{- end }}

{{/* "true" when the chart makes the credentials Secret: asked to, for a source that has credentials. */}}
{{- define "tradebot.makeCredentials" -}}
{{- if and .Values.stack.create .Values.stack.credentials.create (include "tradebot.credentialKeys" . | fromJsonArray) }}true{{ end }}
{{- end }}

{{/* The default stack's spec: the values' spec, pointed at the chart's Secret when it makes one. */}}
{{- define "tradebot.stackSpec" -}}
{{- $spec := deepCopy .Values.stack.spec }}
{{- if include "tradebot.makeCredentials" . }}
{{- $_ := set $spec "credentials" (dict "secretRef" (dict "name" (include "tradebot.credentialsSecretName" .))) }}
{{- end }}
{{- toYaml $spec }}
{{- end }}

{{/* The credential keys of the stack's data source, from files/data-sources.yaml (generated from
tradebot.providers.registry, the operator's own list). */}}
{{- define "tradebot.credentialKeys" -}}
{{- $sources := .Files.Get "files/data-sources.yaml" | fromYaml }}
{{- $source := get $sources (default "synthetic" .Values.stack.spec.dataSource) | default dict }}
{{- toJson (get $source "credentials" | default list) }}
{{- end }}

{{/*
Checks across values that values.schema.json cannot phrase clearly. Each failure names the
value and what to do.
*/}}
{{- define "tradebot.validate" -}}
{{- $source := default "synthetic" .Values.stack.spec.dataSource }}
{{- if .Values.stack.create }}
{{- if and (not .Values.operator.watch.clusterWide) .Values.operator.watch.namespaces (not (has .Release.Namespace .Values.operator.watch.namespaces)) }}
{{- fail (printf "stack.create puts stack %q in the release namespace %q, which the operator does not watch: add it to operator.watch.namespaces or set operator.watch.clusterWide" .Values.stack.name .Release.Namespace) }}
{{- end }}
{{- if include "tradebot.credentialKeys" . | fromJsonArray }}
{{- $ref := dig "credentials" "secretRef" "name" "" .Values.stack.spec }}
{{- if and (not .Values.stack.credentials.create) (not $ref) }}
{{- fail (printf "stack.spec.dataSource %s needs credentials: set stack.credentials.create=true with stack.credentials.data.%s, or stack.spec.credentials.secretRef.name to a Secret holding them" $source (join " and " (include "tradebot.credentialKeys" . | fromJsonArray))) }}
{{- end }}
{{- if and .Values.stack.credentials.create $ref }}
{{- fail "stack.credentials.create and stack.spec.credentials.secretRef.name both name a Secret: keep one" }}
{{- end }}
{{- end }}
{{- if include "tradebot.makeCredentials" . }}
{{- range $key := include "tradebot.credentialKeys" . | fromJsonArray }}
{{- $value := get $.Values.stack.credentials.data $key | default "" | toString }}
{{- if or (not $value) (eq $value "<no value>") }}
{{- fail (printf "stack.credentials.data.%s is empty: data source %s needs it (with skaffold, export %s first)" $key $source $key) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
