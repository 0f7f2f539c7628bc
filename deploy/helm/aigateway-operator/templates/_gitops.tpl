{{/*
What keeps an object every deployment tool would otherwise delete (bundled objects, our
CRDs): "aigw.withKeep" takes an annotations dict and returns it (as YAML) with
- helm.sh/resource-policy: keep — Helm (and Flux's helm-controller, which runs Helm) skips
  it on uninstall and when an upgrade no longer renders it;
- argocd.argoproj.io/sync-options: Prune=false,Delete=false — Argo CD treats Helm's keep as
  Delete=false only (kept when the Application is deleted) and still prunes an object that
  left the render (argo-cd #17819); Prune=false stops that. Options the object already had
  (e.g. ServerSideApply=true) are kept after ours;
- kustomize.toolkit.fluxcd.io/prune: disabled — Flux's kustomize-controller skips it in its
  garbage collection when the rendered chart is applied as plain manifests.
*/}}
{{- define "aigw.withKeep" -}}
{{- $annotations := deepCopy (default dict .) -}}
{{- $options := list "Prune=false" "Delete=false" -}}
{{- range splitList "," (default "" (get $annotations "argocd.argoproj.io/sync-options")) -}}
{{- $option := trim . -}}
{{- if and $option (not (hasPrefix "Prune=" $option)) (not (hasPrefix "Delete=" $option)) -}}
{{- $options = append $options $option -}}
{{- end -}}
{{- end -}}
{{- $_ := set $annotations "helm.sh/resource-policy" "keep" -}}
{{- $_ = set $annotations "argocd.argoproj.io/sync-options" (join "," $options) -}}
{{- $_ = set $annotations "kustomize.toolkit.fluxcd.io/prune" "disabled" -}}
{{- toYaml $annotations -}}
{{- end -}}
