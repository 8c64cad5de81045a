{{/* A host name of this environment: <name>.<domain>; the domain comes from the root Application. */}}
{{- define "apps.host" -}}
{{ .name }}.{{ required "domain: the root Application passes the cluster's domain (helm parameter domain)" .root.Values.domain }}
{{- end -}}

{{/* Ingress annotations that make cert-manager issue the `tls` certificate from the ACME ClusterIssuer. */}}
{{- define "apps.tlsAnnotations" -}}
cert-manager.io/cluster-issuer: {{ .Values.clusterIssuer }}
{{- end -}}

{{/* An upstream chart source, pinned in values.yaml `charts`. */}}
{{- define "apps.chartSource" -}}
{{- $chart := index .root.Values.charts .key -}}
- repoURL: {{ $chart.repoURL }}
  chart: {{ $chart.chart }}
  targetRevision: {{ $chart.version }}
{{- end -}}

{{/* This repository as a source. */}}
{{- define "apps.repo" -}}
repoURL: {{ required "repoURL: the root Application passes this repository's URL" .Values.repoURL }}
targetRevision: {{ required "targetRevision: the root Application passes the branch" .Values.targetRevision }}
{{- end -}}

{{/*
One platform Application: an upstream chart with our values from gitops/platform/<component>/ (values.yaml, and
<env>.yaml where this environment differs; a missing <env>.yaml is allowed) plus the host-dependent values
(.values, YAML), synced into .namespace at sync wave .wave.
*/}}
{{- define "apps.platform" -}}
{{- $env := .root.Values.environment -}}
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: platform-{{ .component }}-{{ $env }}
  namespace: argocd
  annotations:
    argocd.argoproj.io/sync-wave: {{ .wave | quote }}
  finalizers:
    - resources-finalizer.argocd.argoproj.io
spec:
  project: default
  sources:
    {{- include "apps.chartSource" (dict "root" .root "key" .component) | nindent 4 }}
      helm:
        releaseName: {{ .component }}
        ignoreMissingValueFiles: true
        valueFiles:
          - $values/gitops/platform/{{ .component }}/values.yaml
          - $values/gitops/platform/{{ .component }}/{{ $env }}.yaml
        {{- with .values }}
        valuesObject:
          {{- . | nindent 10 }}
        {{- end }}
    - {{ include "apps.repo" .root | indent 6 | trim }}
      ref: values
  destination:
    server: https://kubernetes.default.svc
    namespace: {{ .namespace }}
  {{- include "apps.syncPolicy" . | nindent 2 }}
{{- end -}}

{{/*
Automated sync with prune and self-heal (git is the only way in), retried with the newest commit: CRDs,
Secrets or a database may still be on their way, and a fix pushed meanwhile is picked up.
*/}}
{{- define "apps.syncPolicy" -}}
syncPolicy:
  automated:
    prune: true
    selfHeal: true
  retry:
    limit: 10
    refresh: true
    backoff:
      duration: 10s
      factor: 2
      maxDuration: 5m
  syncOptions:
    {{- if .createNamespace }}
    - CreateNamespace=true     # nothing the bootstrap must create there first
    {{- else }}
    - CreateNamespace=false    # the bootstrap creates it, with the Secrets this application reads
    {{- end }}
    {{- if .serverSideApply }}
    # Server-side apply: some CRDs exceed the 256 KiB last-applied-configuration annotation of client-side apply.
    - ServerSideApply=true
    {{- end }}
{{- end -}}
