// The checks of how Prometheus and Grafana see Sluice, for validate.mjs: the alerts every setup
// needs and their runbook sections, the labels both Prometheus overlays store (Sluice's own
// service/backend/node kept apart from the target's namespace/pod, job="sluice"), what
// kube-prometheus-stack needs of the operator overlay (release label, RBAC, the dashboard
// ConfigMap), and the dashboard's namespace/pod scoping. `check(ok, what, detail)` records a result.

const NAMESPACE = "sluice";
const JOB = "sluice";  // the job label of Sluice's targets in both overlays

// GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to hyphens.
const anchorOf = (heading) => heading.trim().toLowerCase().replace(/[^\w\- ]/g, "").replace(/ /g, "-");

export function runbookAnchors(markdown) {
  return new Set([...markdown.matchAll(/^#{1,6} (.+)$/gm)].map((m) => anchorOf(m[1])));
}

// Every alert links a section of docs/runbook.md, and the alerts a Sluice setup needs exist.
export function checkAlerts(check, label, rules, anchors) {
  const alerts = rules.groups.flatMap((g) => g.rules).filter((r) => r.alert);
  for (const rule of alerts) {
    const url = rule.annotations?.runbook_url ?? "";
    const anchor = url.match(/^docs\/runbook\.md#(.+)$/)?.[1];
    check(anchor !== undefined && anchors.has(anchor),
          `${label}: alert ${rule.alert}: runbook_url is a section of docs/runbook.md`, url);
  }
  const has = (re) => alerts.some((r) => re.test(r.expr));
  check(has(/sluice_config_last_reload_successful\s*==\s*0/), `${label}: an alert on a rejected config reload`);
  check(has(/by \([^)]*\bservice\b[^)]*\) \(sluice_backend_up\)\s*==\s*0/) && has(/sluice_backend_set_size/),
        `${label}: an alert on every backend of a service down (fixed backends and empty backend sets)`);
  check(has(new RegExp(`up\\{job="${JOB}"\\}\\s*==\\s*0`)), `${label}: an alert on Sluice's scrape failing (up{job="${JOB}"} == 0)`);
}

// The sluice_* and process_* series names of a promtool test file's input series.
export function testSeriesNames(tests) {
  return (tests.tests ?? []).flatMap((t) => (t.input_series ?? []).map((s) => s.series.match(/^[^{\s]+/)[0]));
}

// plain-prometheus stores what the ServiceMonitor stores: namespace, pod and job from the target.
export function checkPlainLabels(check, label, promConfig) {
  const relabels = promConfig.scrape_configs.flatMap((s) => s.relabel_configs ?? []);
  const sets = (target, source) => relabels.some((r) => r.target_label === target && r.source_labels?.includes(source) &&
                                                        (r.action ?? "replace") === "replace");
  check(sets("namespace", "__meta_kubernetes_namespace") && sets("pod", "__meta_kubernetes_pod_name"),
        `${label}: prometheus.yml stores the target's namespace and pod`);
  check(sets("job", "__meta_kubernetes_pod_label_app_kubernetes_io_name"),
        `${label}: prometheus.yml sets job from app.kubernetes.io/name (job="${JOB}" for Sluice)`);
  check(!relabels.some((r) => ["service", "backend", "node"].includes(r.target_label)),
        `${label}: prometheus.yml sets none of Sluice's own labels service, backend, node`);
}

// What kube-prometheus(-stack) needs: the release label, read access to the namespace, Sluice's
// labels honoured, and the dashboard for Grafana's sidecar.
export function checkOperator(check, label, objects, { monitor, admin, dashboardText }) {
  const release = (o) => o?.metadata.labels?.release;
  const rule = objects.find((o) => o.kind === "PrometheusRule");
  check(release(monitor) === "kube-prometheus-stack" && release(rule) === "kube-prometheus-stack",
        `${label}: ServiceMonitor and PrometheusRule labelled release=kube-prometheus-stack`,
        `${release(monitor)}, ${release(rule)}`);

  check(monitor.spec.endpoints.every((e) => e.honorLabels === true),
        `${label}: ServiceMonitor honorLabels: Sluice's service/backend/node win over the target's (no exported_service)`);
  check(monitor.spec.endpoints.every((e) => (e.relabelings ?? []).some((r) => r.action === "labeldrop" && r.regex === "service")),
        `${label}: ServiceMonitor drops the target's own service label (service is always a Sluice service)`);
  const touches = (name) => monitor.spec.endpoints.some((e) => (e.relabelings ?? []).some((r) =>
    r.targetLabel === name || (r.action === "labeldrop" && new RegExp(`^(?:${r.regex})$`).test(name))));
  check(!touches("namespace") && !touches("pod"), `${label}: ServiceMonitor keeps the target's namespace and pod labels`);
  check(admin.metadata.labels?.[monitor.spec.jobLabel] === JOB,
        `${label}: ServiceMonitor jobLabel ${monitor.spec.jobLabel} gives job="${JOB}"`, admin.metadata.labels?.[monitor.spec.jobLabel]);

  const role = objects.find((o) => o.kind === "Role");
  const canRead = (resource) => role?.rules.some((r) => r.apiGroups.includes("") && r.resources.includes(resource) &&
                                                         ["get", "list", "watch"].every((v) => r.verbs.includes(v)));
  check(role?.metadata.namespace === NAMESPACE && ["services", "endpoints", "pods"].every(canRead),
        `${label}: a Role in ${NAMESPACE} may get, list and watch services, endpoints and pods`);
  const binding = objects.find((o) => o.kind === "RoleBinding" && o.roleRef.kind === "Role" && o.roleRef.name === role?.metadata.name);
  for (const [namespace, name] of [["monitoring", "prometheus-k8s"], ["monitoring", "kube-prometheus-stack-prometheus"]]) {
    check(Boolean(binding?.subjects.some((s) => s.kind === "ServiceAccount" && s.name === name && s.namespace === namespace)),
          `${label}: the RoleBinding grants the Role to ServiceAccount ${namespace}/${name}`);
  }

  const dashboards = objects.filter((o) => o.kind === "ConfigMap" && o.metadata.labels?.grafana_dashboard === "1");
  check(dashboards.length === 1 && Object.values(dashboards[0].data ?? {}).join() === dashboardText,
        `${label}: one ConfigMap labelled grafana_dashboard: "1" holds deploy/grafana/sluice-dashboard.json as it is`);
}

// The dashboard's namespace and pod variables, its CPU, memory and reload panels, and every query
// scoped by the variables.
export function checkDashboardScope(check, label, dashboard, exprs) {
  const vars = new Map((dashboard.templating?.list ?? []).map((v) => [v.name, v]));
  for (const name of ["namespace", "pod"]) {
    const v = vars.get(name);
    check(v?.type === "query" && new RegExp(`label_values\\(sluice_build_info[^,]*, ${name}\\)`).test(v.definition ?? ""),
          `${label}: a ${name} variable from label_values(sluice_build_info, ${name})`);
  }
  check(/namespace=~"\$namespace", pod=~"\$pod"/.test(vars.get("service")?.definition ?? ""),
        `${label}: the service variable lists the services of the chosen namespace and pod`);
  check(exprs.some((e) => /rate\(process_cpu_seconds_total\b/.test(e)), `${label}: a panel shows CPU (process_cpu_seconds_total)`);
  check(exprs.some((e) => /\bprocess_resident_memory_bytes\b/.test(e)), `${label}: a panel shows memory (process_resident_memory_bytes)`);
  check(exprs.some((e) => /\bsluice_config_reloads_total\b/.test(e)), `${label}: a panel shows config reloads`);
  const unscoped = exprs.flatMap((e) => [...e.matchAll(/\b((?:sluice|process)_\w+)(\{[^}]*\})?/g)])
    .filter((m) => !(m[2] ?? "").includes('namespace=~"$namespace", pod=~"$pod"')).map((m) => m[1]);
  check(unscoped.length === 0, `${label}: every sluice_/process_ selector filters on $namespace and $pod`, unscoped.join(", "));
}
