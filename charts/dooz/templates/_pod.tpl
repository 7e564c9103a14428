{{/* The gateway's pod template, shared by the Deployment and the StatefulSet. */}}
{{- define "dooz.podTemplate" -}}
metadata:
  labels:
    {{- include "dooz.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    # A changed dooz.toml or Secret rolls the gateways.
    checksum/config: {{ include "dooz.config" . | sha256sum }}
    checksum/secrets: {{ include (print $.Template.BasePath "/secrets.yaml") . | sha256sum }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "dooz.serviceAccountName" . }}
  automountServiceAccountToken: {{ .Values.serviceAccount.automountServiceAccountToken }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  enableServiceLinks: false
  containers:
    - name: dooz
      image: {{ include "dooz.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args: ["serve", "--config", "/etc/dooz/dooz.toml"]
      ports:
        - name: s3
          containerPort: {{ .Values.s3.port }}
          protocol: TCP
        - name: admin
          containerPort: {{ .Values.admin.port }}
          protocol: TCP
      env:
        # dooz serve re-executes itself to set this (docs/BENCHMARKS.md); set
        # here, it starts once.
        - name: MALLOC_MMAP_THRESHOLD_
          value: "8388608"
        {{- if eq .Values.mode "postgresql" }}
        - name: DOOZ_META
          valueFrom:
            secretKeyRef:
              name: {{ include "dooz.postgresqlSecret" . }}
              key: {{ .Values.postgresql.existingSecretKey }}
        {{- end }}
        {{- if .Values.bootstrap.existingSecret }}
        - name: DOOZ_ROOT_ACCESS_KEY
          valueFrom:
            secretKeyRef:
              name: {{ .Values.bootstrap.existingSecret }}
              key: {{ .Values.bootstrap.accessKeyKey }}
        - name: DOOZ_ROOT_SECRET_KEY
          valueFrom:
            secretKeyRef:
              name: {{ .Values.bootstrap.existingSecret }}
              key: {{ .Values.bootstrap.secretKeyKey }}
        {{- end }}
        {{- if include "dooz.adminTokenEnabled" . }}
        # The [admin] token that protects the admin endpoint off loopback.
        - name: DOOZ_ADMIN__TOKEN
          valueFrom:
            secretKeyRef:
              name: {{ include "dooz.adminTokenSecret" . }}
              key: {{ .Values.admin.existingSecretKey }}
        {{- end }}
        {{- range $name, $c := .Values.backendCredentials }}
        {{- $prefix := printf "DOOZ_BACKENDS__%s__" (upper $name) }}
        {{- if $c.accessKeyIdKey }}
        - name: {{ $prefix }}ACCESS_KEY_ID
          valueFrom:
            secretKeyRef:
              name: {{ $c.existingSecret }}
              key: {{ $c.accessKeyIdKey }}
        {{- end }}
        {{- if $c.secretAccessKeyKey }}
        - name: {{ $prefix }}SECRET_ACCESS_KEY
          valueFrom:
            secretKeyRef:
              name: {{ $c.existingSecret }}
              key: {{ $c.secretAccessKeyKey }}
        {{- end }}
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- $auth := dict }}
      {{- if .Values.admin.probesSendToken }}
      {{- $auth = dict "httpHeaders" (list (dict "name" "Authorization" "value" (printf "Bearer %s" .Values.admin.token))) }}
      {{- end }}
      startupProbe:
        httpGet:
          path: /health/live
          port: admin
          {{- with $auth.httpHeaders }}
          httpHeaders: {{- toYaml . | nindent 12 }}
          {{- end }}
        periodSeconds: {{ .Values.probes.startup.periodSeconds }}
        failureThreshold: {{ .Values.probes.startup.failureThreshold }}
        timeoutSeconds: {{ .Values.probes.startup.timeoutSeconds }}
      livenessProbe:
        httpGet:
          path: /health/live
          port: admin
          {{- with $auth.httpHeaders }}
          httpHeaders: {{- toYaml . | nindent 12 }}
          {{- end }}
        periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
        failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
        timeoutSeconds: {{ .Values.probes.liveness.timeoutSeconds }}
      readinessProbe:
        httpGet:
          path: /health/ready
          port: admin
          {{- with $auth.httpHeaders }}
          httpHeaders: {{- toYaml . | nindent 12 }}
          {{- end }}
        periodSeconds: {{ .Values.probes.readiness.periodSeconds }}
        failureThreshold: {{ .Values.probes.readiness.failureThreshold }}
        timeoutSeconds: {{ .Values.probes.readiness.timeoutSeconds }}
      {{- if .Values.preStopSleepSeconds }}
      lifecycle:
        preStop:
          sleep:
            seconds: {{ .Values.preStopSleepSeconds }}
      {{- end }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/dooz/dooz.toml
          subPath: dooz.toml
          readOnly: true
        - name: root-key
          mountPath: /etc/dooz/root-key
          readOnly: true
        {{- if .Values.openbao.enabled }}
        - name: openbao-token
          mountPath: /etc/dooz/openbao
          readOnly: true
        {{- end }}
        - name: data
          mountPath: {{ include "dooz.dataDir" . }}
        - name: tmp
          mountPath: /tmp
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "dooz.fullname" . }}
    - name: root-key
      secret:
        secretName: {{ include "dooz.rootKeySecret" . }}
        defaultMode: 0440
        items:
          - key: {{ .Values.rootKey.existingSecretKey }}
            path: keyring
    {{- if .Values.openbao.enabled }}
    - name: openbao-token
      secret:
        secretName: {{ include "dooz.openbaoSecret" . }}
        defaultMode: 0440
        items:
          - key: {{ .Values.openbao.existingSecretKey }}
            path: token
    {{- end }}
    {{- if not (and (include "dooz.embedded" .) .Values.persistence.enabled) }}
    # postgresql mode keeps nothing on disk; embedded mode without persistence
    # loses everything with the pod.
    - name: data
      emptyDir: {}
    {{- end }}
    - name: tmp
      emptyDir:
        sizeLimit: 256Mi
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml .Values.topologySpreadConstraints | nindent 4 }}
  {{- else if not (include "dooz.embedded" .) }}
  topologySpreadConstraints:
    - maxSkew: 1
      topologyKey: kubernetes.io/hostname
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels:
          {{- include "dooz.selectorLabels" . | nindent 10 }}
    - maxSkew: 1
      topologyKey: topology.kubernetes.io/zone
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels:
          {{- include "dooz.selectorLabels" . | nindent 10 }}
  {{- end }}
{{- end }}
