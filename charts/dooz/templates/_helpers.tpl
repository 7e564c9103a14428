{{/* Names and labels, the usual Helm way. */}}
{{- define "dooz.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "dooz.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "dooz.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "dooz.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dooz.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "dooz.labels" -}}
helm.sh/chart: {{ include "dooz.chart" . }}
{{ include "dooz.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dooz
{{- end }}

{{- define "dooz.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dooz.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "dooz.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "dooz.embedded" -}}
{{- if eq .Values.mode "embedded" }}true{{ end }}
{{- end }}

{{/* Paths inside the container. */}}
{{- define "dooz.dataDir" -}}/var/lib/dooz{{- end }}
{{- define "dooz.rootKeyFile" -}}/etc/dooz/root-key/keyring{{- end }}
{{- define "dooz.openbaoTokenFile" -}}/etc/dooz/openbao/token{{- end }}

{{/* Secret names: the user's existing one, or the chart's. */}}
{{- define "dooz.rootKeySecret" -}}
{{- default (printf "%s-root-key" (include "dooz.fullname" .)) .Values.rootKey.existingSecret }}
{{- end }}
{{- define "dooz.postgresqlSecret" -}}
{{- default (printf "%s-postgresql" (include "dooz.fullname" .)) .Values.postgresql.existingSecret }}
{{- end }}
{{- define "dooz.openbaoSecret" -}}
{{- default (printf "%s-openbao" (include "dooz.fullname" .)) .Values.openbao.existingSecret }}
{{- end }}
{{- define "dooz.adminTokenSecret" -}}
{{- default (printf "%s-admin-token" (include "dooz.fullname" .)) .Values.admin.existingSecret }}
{{- end }}
{{- define "dooz.adminTokenEnabled" -}}
{{- if or .Values.admin.existingSecret .Values.admin.token .Values.admin.createToken }}true{{ end }}
{{- end }}

{{/*
A value of an existing Secret of this release, so generated secrets survive
`helm upgrade`; empty when rendering offline (helm template) or on install.
*/}}
{{- define "dooz.existingSecretValue" -}}
{{- $s := lookup "v1" "Secret" .ctx.Release.Namespace .name }}
{{- if and $s $s.data (hasKey $s.data .key) }}
{{- index $s.data .key | b64dec }}
{{- end }}
{{- end }}

{{/*
Checks that refuse a deployment that cannot work, with a message saying what
to set, before anything reaches the cluster.
*/}}
{{- define "dooz.validate" -}}
{{- $backends := .Values.config.backends | default dict }}
{{- if eq .Values.mode "postgresql" }}
{{- if not (or .Values.postgresql.url .Values.postgresql.existingSecret) }}
{{- fail "mode=postgresql needs the database: set postgresql.existingSecret (a Secret with a postgres:// URL under postgresql.existingSecretKey) or postgresql.url" }}
{{- end }}
{{- if not $backends }}
{{- fail "mode=postgresql runs several gateways: packs must go to a shared backend. Add one under config.backends (e.g. type: s3) and name it in config.default_backend" }}
{{- end }}
{{- range $name, $b := $backends }}
{{- if eq (toString $b.type) "local" }}
{{- fail (printf "config.backends.%s: a local directory is not shared between gateways; mode=postgresql needs a shared backend such as type: s3" $name) }}
{{- end }}
{{- end }}
{{- else if eq .Values.mode "embedded" }}
{{- if .Values.autoscaling.enabled }}
{{- fail "autoscaling needs mode=postgresql: the embedded SQLite store serves one gateway" }}
{{- end }}
{{- end }}
{{- if $backends }}
{{- if not (hasKey $backends .Values.config.default_backend) }}
{{- fail (printf "config.default_backend %q names no backend in config.backends (%s)" .Values.config.default_backend (keys $backends | sortAlpha | join ", ")) }}
{{- end }}
{{- else if ne .Values.config.default_backend "local" }}
{{- fail (printf "config.default_backend %q: with no config.backends only \"local\" exists" .Values.config.default_backend) }}
{{- end }}
{{- range $name, $_ := .Values.backendCredentials }}
{{- if not (hasKey $backends $name) }}
{{- fail (printf "backendCredentials.%s names no backend in config.backends" $name) }}
{{- end }}
{{- end }}
{{- if .Values.openbao.enabled }}
{{- if not .Values.openbao.addr }}
{{- fail "openbao.enabled needs openbao.addr (e.g. https://openbao.vault.svc:8200)" }}
{{- end }}
{{- if not (or .Values.openbao.token .Values.openbao.existingSecret) }}
{{- fail "openbao.enabled needs a token: openbao.existingSecret (key openbao.existingSecretKey) or openbao.token" }}
{{- end }}
{{- end }}
{{- if and .Values.admin.probesSendToken (not .Values.admin.token) }}
{{- fail "admin.probesSendToken needs admin.token in values: probe headers cannot come from a Secret" }}
{{- end }}
{{- end }}

{{/*
dooz.toml from a dict. Helm reads every YAML number as a float64 (and its
toToml prints 1048576 as 1.048576e+06, which dooz refuses for integer keys),
so this renders TOML itself: whole numbers as integers, strings as JSON
strings (valid TOML basic strings), scalars first, then [sub.tables].
*/}}
{{- define "dooz.toml.key" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . }}{{ . }}{{ else }}{{ toJson . }}{{ end }}
{{- end }}

{{- define "dooz.toml.value" -}}
{{- if kindIs "string" . }}{{ toJson . }}
{{- else if kindIs "bool" . }}{{ . }}
{{- else if or (kindIs "float64" .) (kindIs "int" .) (kindIs "int64" .) }}
{{- if eq (floor .) (float64 .) }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- else if kindIs "slice" . }}[{{ range $i, $e := . }}{{ if $i }}, {{ end }}{{ include "dooz.toml.value" $e }}{{ end }}]
{{- else }}{{ fail (printf "config: cannot write %v (%s) to dooz.toml" . (kindOf .)) }}
{{- end }}
{{- end }}

{{- define "dooz.toml.table" -}}
{{- $path := .path }}
{{- range $k, $v := .table }}
{{- if and (not (kindIs "map" $v)) (not (kindIs "invalid" $v)) }}
{{ include "dooz.toml.key" $k }} = {{ include "dooz.toml.value" $v }}
{{- end }}
{{- end }}
{{- range $k, $v := .table }}
{{- if kindIs "map" $v }}
{{- $sub := ternary (include "dooz.toml.key" $k) (printf "%s.%s" $path (include "dooz.toml.key" $k)) (eq $path "") }}

[{{ $sub }}]
{{- include "dooz.toml.table" (dict "path" $sub "table" $v) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The configuration the gateway runs with: values plus what the chart owns. */}}
{{- define "dooz.config" -}}
{{- $cfg := deepCopy .Values.config }}
{{- $_ := set $cfg "data_dir" (include "dooz.dataDir" .) }}
{{- $_ := set $cfg "listen" (printf "0.0.0.0:%d" (int .Values.s3.port)) }}
{{- $_ := set $cfg "admin_listen" (printf "0.0.0.0:%d" (int .Values.admin.port)) }}
{{- /* Probes and scrapes carry no token: open them unless values say otherwise. */}}
{{- $admin := $cfg.admin | default dict }}
{{- if not (hasKey $admin "open_paths") }}
{{- $_ := set $admin "open_paths" (list "/health/live" "/health/ready" "/metrics") }}
{{- end }}
{{- $_ := set $cfg "admin" $admin }}
{{- $kms := $cfg.kms | default dict }}
{{- $_ := set $kms "root_key_file" (include "dooz.rootKeyFile" .) }}
{{- if .Values.openbao.enabled }}
{{- $_ := set $kms "openbao" (dict "addr" .Values.openbao.addr "mount" .Values.openbao.mount "key" .Values.openbao.key "token_file" (include "dooz.openbaoTokenFile" .)) }}
{{- if .Values.openbao.defaultProvider }}
{{- $_ := set $kms "default_provider" "openbao" }}
{{- end }}
{{- end }}
{{- $_ := set $cfg "kms" $kms }}
{{- if not $cfg.backends }}
{{- $_ := unset $cfg "backends" }}
{{- end }}
{{- $_ := unset $cfg "meta" }}
{{- include "dooz.toml.table" (dict "path" "" "table" $cfg) }}
{{- end }}
