{{/*
Names and labels, as `helm create` writes them.
*/}}
{{- define "rotator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "rotator.fullname" -}}
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

{{- define "rotator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "rotator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rotator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "rotator.labels" -}}
helm.sh/chart: {{ include "rotator.chart" . }}
{{ include "rotator.selectorLabels" . }}
app.kubernetes.io/component: rotator
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "rotator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rotator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name: name the existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
"true" when the rendered configuration elects a leader (mode deployment and
leaderElection.enabled), else "".
*/}}
{{- define "rotator.leaderElection" -}}
{{- if and (eq .Values.mode "deployment") .Values.leaderElection.enabled }}true{{ end }}
{{- end }}

{{/*
"true" when the rotator uses the Lease: leader election, or `lock: {type: lease}` in the
configuration (rotate runs holding the Lease, e.g. in mode cronjob), else "".
*/}}
{{- define "rotator.usesLease" -}}
{{- if or (include "rotator.leaderElection" .) (eq (dig "lock" "type" "" (.Values.config | default dict)) "lease") }}true{{ end }}
{{- end }}

{{- define "rotator.leaseName" -}}
{{- default (include "rotator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/*
Fails the render on values that cannot work, with the value to change.
*/}}
{{- define "rotator.validate" -}}
{{- if not (has .Values.mode (list "deployment" "cronjob")) }}
{{- fail (printf "mode: %q is neither deployment nor cronjob" .Values.mode) }}
{{- end }}
{{- if eq .Values.mode "cronjob" }}
{{- if or .Values.metrics.serviceMonitor.enabled .Values.metrics.prometheusRule.enabled }}
{{- fail "metrics.serviceMonitor / metrics.prometheusRule need mode: deployment (rotator rotate serves no /metrics)" }}
{{- end }}
{{- end }}
{{- if and .Values.secretEnv (not .Values.existingSecret) }}
{{- fail "existingSecret: name the Secret that secretEnv reads from" }}
{{- end }}
{{- if not (get (.Values.config | default dict) "keys") }}
{{- fail "config.keys: list at least one managed key" }}
{{- end }}
{{- end }}

{{/*
The rotator's configuration: values.config with server.listen and leader_election set by the
chart (see values.yaml).
*/}}
{{- define "rotator.config" -}}
{{- $config := deepCopy (.Values.config | default dict) }}
{{- $election := dict "enabled" (eq (include "rotator.leaderElection" .) "true") "namespace" .Release.Namespace "lease_name" (include "rotator.leaseName" .) }}
{{- $owned := dict "server" (dict "listen" (printf "0.0.0.0:%d" (int .Values.service.port))) "leader_election" $election }}
{{- $config = mergeOverwrite $config $owned }}
{{- toYaml $config }}
{{- end }}

{{/*
The pod spec of the Deployment and of the CronJob's Job.
*/}}
{{- define "rotator.podSpec" -}}
{{- $daemon := eq .Values.mode "deployment" -}}
serviceAccountName: {{ include "rotator.serviceAccountName" . }}
# The in-cluster Kubernetes client authenticates with the service account token.
automountServiceAccountToken: true
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if $daemon }}
terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
{{- else }}
restartPolicy: Never
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .Values.affinity }}
affinity:
  {{- toYaml .Values.affinity | nindent 2 }}
{{- else if $daemon }}
affinity:
  # Replicas on different nodes, so losing a node does not lose the leader and the standby.
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- include "rotator.selectorLabels" . | nindent 14 }}
{{- end }}
containers:
  - name: rotator
    image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
    imagePullPolicy: {{ .Values.image.pullPolicy }}
    # The image's ENTRYPOINT is `rotator`; global options go before the command.
    args:
      - --log-format
      - {{ .Values.logFormat | quote }}
      - --log-level
      - {{ .Values.logLevel | quote }}
      - {{ ternary "run" "rotate" $daemon }}
      - --config
      - /etc/rotator/rotator.yaml
    {{- if or .Values.secretEnv .Values.extraSecretEnv .Values.extraEnv }}
    env:
      {{- range $name, $key := .Values.secretEnv }}
      - name: {{ $name }}
        valueFrom:
          secretKeyRef:
            name: {{ $.Values.existingSecret }}
            key: {{ $key }}
      {{- end }}
      {{- range .Values.extraSecretEnv }}
      - name: {{ .name }}
        valueFrom:
          secretKeyRef:
            name: {{ .secretName }}
            key: {{ .key }}
      {{- end }}
      {{- with .Values.extraEnv }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    {{- end }}
    {{- if $daemon }}
    ports:
      - name: metrics
        containerPort: {{ .Values.service.port }}
        protocol: TCP
    livenessProbe:
      # Alive: the process and its scheduler run.
      httpGet:
        path: /healthz
        port: metrics
      initialDelaySeconds: 10
      periodSeconds: 20
      timeoutSeconds: 5
      failureThreshold: 3
    readinessProbe:
      # Ready: configuration loaded and StackState reachable; standby replicas are ready too.
      httpGet:
        path: /readyz
        port: metrics
      initialDelaySeconds: 5
      periodSeconds: 10
      timeoutSeconds: 5
      failureThreshold: 3
    {{- end }}
    resources:
      {{- toYaml .Values.resources | nindent 6 }}
    securityContext:
      {{- toYaml .Values.securityContext | nindent 6 }}
    volumeMounts:
      - name: config
        mountPath: /etc/rotator
        readOnly: true
      # The only writable path (HOME and TMPDIR of the image).
      - name: tmp
        mountPath: /tmp
      {{- with .Values.extraVolumeMounts }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
volumes:
  - name: config
    configMap:
      name: {{ include "rotator.fullname" . }}
  - name: tmp
    emptyDir:
      sizeLimit: 64Mi
  {{- with .Values.extraVolumes }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/*
Pod template metadata: labels, and a checksum of the configuration so that a changed
configuration rolls the pods.
*/}}
{{- define "rotator.podMetadata" -}}
labels:
  {{- include "rotator.labels" . | nindent 2 }}
  {{- with .Values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
annotations:
  checksum/config: {{ include "rotator.config" . | sha256sum }}
  {{- with .Values.podAnnotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
