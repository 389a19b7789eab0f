#!/usr/bin/env node
// Offline validation of deploy/: renders every kustomization (kustomize.mjs), validates each object
// against the Kubernetes and Prometheus Operator schemas (kubernetes-models, strict about unknown
// fields) and KEDA's (schemas/), and checks what a schema cannot: Pod Security "restricted", that
// Services select pods and name their ports, that the mounted Sluice config is config/minikube.yaml
// (deploy/scaling/pool/sluice.yaml in the scaling overlays) and agrees with the manifests (ports, nodes, drain time), that alert rules and the dashboard use
// only the metric contract, and that the autoscalers of deploy/scaling follow Sluice's
// recommendation (scaling.mjs). Writes files for promtool into --work. Run by scripts/validate-deploy.sh.
//
//   node validate.mjs --repo ROOT --work DIR [--metrics FILE]
//     --metrics: a /metrics scrape of the real daemon; referenced metrics must appear in it too.

import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { isDeepStrictEqual, parseArgs } from "node:util";
import { parse as parseYaml, stringify } from "yaml";
import { render, isClusterScoped } from "./kustomize.mjs";
import { METRIC_CONTRACT, contractFamily, parseExposition, seriesNames } from "./metrics-contract.mjs";
import { checkScaling, crdModel } from "./scaling.mjs";
import {
  checkAlerts, checkDashboardScope, checkOperator, checkPlainLabels, runbookAnchors, testSeriesNames,
} from "./monitoring.mjs";

const require = createRequire(import.meta.url);
const { values: args } = parseArgs({
  options: { repo: { type: "string" }, work: { type: "string" }, metrics: { type: "string" } },
});
if (!args.repo || !args.work) {
  console.error("usage: validate.mjs --repo ROOT --work DIR [--metrics FILE]");
  process.exit(2);
}
const repo = path.resolve(args.repo);
const work = path.resolve(args.work);
const rel = (p) => path.relative(repo, p);
const NAMESPACE = "sluice";
const IMAGE_USER = 10001;  // the Dockerfile's USER

// --- reporting -------------------------------------------------------------------------------------

let passed = 0;
let repeated = 0;
const failures = [];
const printed = new Set();  // passed checks, without their kustomization prefix
function check(ok, what, detail = "") {
  if (ok) {
    passed++;
    // An overlay repeats every check of the base it includes: show those once.
    const generic = what.replace(/^deploy\/[^:]+: /, "");
    if (printed.has(generic)) {
      repeated++;
    } else {
      printed.add(generic);
      console.log(`  ok    ${what}`);
    }
  } else {
    failures.push(what);
    console.log(`  FAIL  ${what}${detail ? `: ${detail}` : ""}`);
  }
  return ok;
}
function section(title) {
  if (repeated) console.log(`  ok    (${repeated} more checks, the same as above for the objects it shares)`);
  repeated = 0;
  console.log(`\n${title}`);
}
const readText = (p) => readFileSync(path.join(repo, p), "utf8");

function parseDuration(text) {
  const m = /^(\d+)(ms|s|m|h)$/.exec(String(text));
  if (!m) throw new Error(`not a duration: ${text}`);
  return Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2]];
}
const portOf = (address) => Number(String(address).match(/:(\d+)$/)?.[1]);

// --- schemas ---------------------------------------------------------------------------------------

// The model class of an object: kubernetes-models for the built-in API groups, the operator's
// models for monitoring.coreos.com, schemas/*.json for KEDA (scaling.mjs).
function modelClass(obj) {
  const apiVersion = obj.apiVersion;
  if (apiVersion.startsWith("keda.sh/")) return crdModel(obj);
  const module = apiVersion.startsWith("monitoring.coreos.com/")
    ? `@kubernetes-models/prometheus-operator/${apiVersion}`
    : `kubernetes-models/${apiVersion}`;
  try {
    return require(module)[obj.kind] ?? null;
  } catch {
    return null;
  }
}

// The generated validators accept unknown fields (as the OpenAPI schema does), so a typo such as
// `readinessProbes` would pass. To catch it, validate through proxies that record which keys the
// validator reads: a key of an object whose schema lists properties, never read, is unknown.
// Objects the validator never looks into (free-form schemas) are not judged.
function unknownFields(Model, obj) {
  const info = new Map();  // proxy -> { target, keys the validator read, whether it looked inside }
  const wrap = (value) => {
    if (value === null || typeof value !== "object") return value;
    const array = Array.isArray(value);
    const target = array ? value.map(wrap) : Object.fromEntries(Object.entries(value).map(([k, v]) => [k, wrap(v)]));
    const seen = { target, keys: new Set(), inspected: false, array };
    const note = (key) => {
      if (typeof key === "string") {
        seen.keys.add(key);
        seen.inspected = true;
      }
    };
    const proxy = new Proxy(target, {
      get(t, key, receiver) { note(key); return Reflect.get(t, key, receiver); },
      has(t, key) { note(key); return Reflect.has(t, key); },
      ownKeys(t) { seen.inspected = true; Reflect.ownKeys(t).forEach(note); return Reflect.ownKeys(t); },
    });
    info.set(proxy, seen);
    return proxy;
  };
  const root = wrap(obj);
  try {
    Model.prototype.validate.call(root);
  } catch {
    return [];  // schema errors are reported by the plain validation
  }
  const unknown = [];
  const walk = (proxy, where) => {
    const seen = info.get(proxy);
    if (!seen) return;
    const join = (key) => (seen.array ? `${where}[${key}]` : where ? `${where}.${key}` : key);
    if (!seen.array && seen.inspected) {
      for (const key of Object.keys(seen.target)) if (!seen.keys.has(key)) unknown.push(join(key));
    }
    for (const [key, child] of Object.entries(seen.target)) walk(child, join(key));
  };
  walk(root, "");
  return unknown;
}

function validateSchemas(label, objects) {
  for (const obj of objects) {
    const id = `${obj.kind} ${obj.metadata.name}`;
    const Model = modelClass(obj);
    if (!check(Model !== null, `${label}: ${id}: known kind ${obj.apiVersion} ${obj.kind}`)) continue;
    let error = null;
    try {
      new Model(obj).validate();
    } catch (e) {
      error = e.message;
    }
    check(error === null, `${label}: ${id}: valid against the ${obj.apiVersion} schema`, error ?? "");
    const unknown = error === null ? unknownFields(Model, obj) : [];
    check(unknown.length === 0, `${label}: ${id}: no unknown fields`, unknown.join(", "));
    if (!isClusterScoped(obj)) {
      check(obj.metadata.namespace === NAMESPACE, `${label}: ${id}: in namespace ${NAMESPACE}`,
            `namespace ${obj.metadata.namespace}`);
    }
    check(obj.metadata.labels?.["app.kubernetes.io/part-of"] === "sluice",
          `${label}: ${id}: labelled app.kubernetes.io/part-of=sluice`);
  }
}

// --- pods ------------------------------------------------------------------------------------------

// Pod templates of the workload kinds, as { id, spec, meta, obj }.
function podTemplates(objects) {
  const out = [];
  for (const obj of objects) {
    if (["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"].includes(obj.kind)) {
      out.push({ id: `${obj.kind} ${obj.metadata.name}`, spec: obj.spec.template.spec, meta: obj.spec.template.metadata, obj });
    } else if (obj.kind === "CronJob") {
      out.push({ id: `CronJob ${obj.metadata.name}`, spec: obj.spec.jobTemplate.spec.template.spec,
                 meta: obj.spec.jobTemplate.spec.template.metadata, obj });
    } else if (obj.kind === "Pod") {
      out.push({ id: `Pod ${obj.metadata.name}`, spec: obj.spec, meta: obj.metadata, obj });
    }
  }
  return out;
}
const allContainers = (spec) => [...(spec.initContainers ?? []), ...(spec.containers ?? []), ...(spec.ephemeralContainers ?? [])];

// The Pod Security Standard "restricted" (which includes "baseline"), as the API server's admission
// checks it, and this project's own rules for every container.
const RESTRICTED_VOLUMES = ["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"];
function checkPodSecurity(label, { id, spec, obj }) {
  const serves = !["Job", "CronJob"].includes(obj.kind);  // a Job's pod is behind no Service
  const pod = spec.securityContext ?? {};
  const what = (s) => `${label}: ${id}: ${s}`;
  check(!spec.hostNetwork && !spec.hostPID && !spec.hostIPC, what("no host network, PID or IPC namespace"));
  const volumeTypes = (spec.volumes ?? []).flatMap((v) => Object.keys(v).filter((k) => k !== "name"));
  const badVolumes = volumeTypes.filter((t) => !RESTRICTED_VOLUMES.includes(t));
  check(badVolumes.length === 0, what("only volume types restricted allows"), badVolumes.join(", "));
  check((pod.sysctls ?? []).length === 0, what("no sysctls"));
  for (const c of allContainers(spec)) {
    const sc = c.securityContext ?? {};
    const cwhat = (s) => what(`container ${c.name}: ${s}`);
    const runAsNonRoot = sc.runAsNonRoot ?? pod.runAsNonRoot;
    const runAsUser = sc.runAsUser ?? pod.runAsUser;
    const seccomp = (sc.seccompProfile ?? pod.seccompProfile)?.type;
    const caps = sc.capabilities ?? {};
    check(sc.privileged !== true, cwhat("not privileged"));
    check(sc.allowPrivilegeEscalation === false, cwhat("allowPrivilegeEscalation: false"));
    check(runAsNonRoot === true, cwhat("runAsNonRoot: true"));
    check(Number.isInteger(runAsUser) && runAsUser !== 0, cwhat("runs as a numeric non-root UID"), `runAsUser ${runAsUser}`);
    check(seccomp === "RuntimeDefault" || seccomp === "Localhost", cwhat("seccompProfile RuntimeDefault"), `${seccomp}`);
    check((caps.drop ?? []).includes("ALL"), cwhat("capabilities drop ALL"));
    check((caps.add ?? []).every((cap) => cap === "NET_BIND_SERVICE"), cwhat("adds no capability but NET_BIND_SERVICE"));
    check(!(c.ports ?? []).some((p) => p.hostPort), cwhat("no hostPort"));
    check((sc.procMount ?? "Default") === "Default", cwhat("default procMount"));
    // This project's rules on top of the standard.
    check(sc.readOnlyRootFilesystem === true, cwhat("readOnlyRootFilesystem: true"));
    const r = c.resources ?? {};
    check(["cpu", "memory"].every((k) => r.requests?.[k] && r.limits?.[k]), cwhat("cpu and memory requests and limits"));
    check(/:[\w.-]+$/.test(c.image) && !c.image.endsWith(":latest"), cwhat(`image ${c.image} has a fixed tag`));
    if (serves) check(c.readinessProbe !== undefined, cwhat("has a readiness probe"));
  }
  check(spec.automountServiceAccountToken === false || spec.serviceAccountName !== undefined,
        what("no API token unless it has its own ServiceAccount"));
}

// A pod template port by name or number.
function containerPort(spec, port) {
  for (const c of spec.containers ?? []) {
    for (const p of c.ports ?? []) if (p.name === port || p.containerPort === port) return p;
  }
  return null;
}
const selects = (selector, labels) =>
  Object.keys(selector ?? {}).length > 0 && Object.entries(selector).every(([k, v]) => labels?.[k] === v);

function checkServices(label, objects) {
  const pods = podTemplates(objects);
  for (const svc of objects.filter((o) => o.kind === "Service")) {
    const matched = pods.filter((p) => p.obj.metadata.namespace === svc.metadata.namespace && selects(svc.spec.selector, p.meta.labels));
    const what = (s) => `${label}: Service ${svc.metadata.name}: ${s}`;
    if (!check(matched.length === 1, what("selects the pods of exactly one workload"), `${matched.length} workloads`)) continue;
    for (const port of svc.spec.ports) {
      const target = port.targetPort ?? port.port;
      check(containerPort(matched[0].spec, target) !== null, what(`port ${port.name} targets container port ${target} of ${matched[0].id}`));
    }
  }
}

// --- the Sluice config and the manifests that must agree with it ------------------------------------

// The Sluice config a kustomization mounts: the scaling overlays replace deploy/base's with the pool's,
// the experiment with its own.
const POOL_CONFIG = "deploy/scaling/pool/sluice.yaml";
const sluiceConfigFile = (dir) => (dir.startsWith("deploy/scaling/") ? POOL_CONFIG
  : dir === "deploy/experiment" ? "deploy/experiment/sluice.yaml" : "config/minikube.yaml");

// The experiment's Sluice runs on a node no backend is pinned to, and keeps backends off it.
function checkSluiceNode(label, objects) {
  const pods = podTemplates(objects);
  const sluice = pods.find((p) => p.id === "Deployment sluice");
  const node = sluice?.spec.nodeSelector?.["kubernetes.io/hostname"];
  const backendNodes = pods.filter((p) => p.meta.labels?.["app.kubernetes.io/name"] === "sluice-backend")
    .map((p) => p.spec.nodeSelector?.["kubernetes.io/hostname"]);
  check(node !== undefined && !backendNodes.includes(node),
        `${label}: Sluice pinned to node ${node}, which no backend is pinned to`, backendNodes.join(","));
  const anti = sluice?.spec.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? [];
  check(anti.some((t) => t.topologyKey === "kubernetes.io/hostname" &&
                         t.labelSelector?.matchLabels?.["app.kubernetes.io/name"] === "sluice-backend"),
        `${label}: Sluice's required pod anti-affinity keeps sluice-backend pods off its node`);
}

function checkSluice(label, objects, configFile) {
  const config = parseYaml(readText(configFile));
  const find = (kind, name) => objects.find((o) => o.kind === kind && o.metadata.name === name);
  const what = (s) => `${label}: ${s}`;

  const cm = find("ConfigMap", "sluice-config");
  if (!check(cm !== undefined, what("ConfigMap sluice-config exists"))) return;
  check(cm.data?.["sluice.yaml"] === readText(configFile),
        what(`ConfigMap sluice-config key sluice.yaml is byte-identical to ${configFile}`));

  const deploy = find("Deployment", "sluice");
  if (!check(deploy !== undefined, what("Deployment sluice exists"))) return;
  const spec = deploy.spec.template.spec;
  const c = spec.containers.find((x) => x.name === "sluice");
  if (!check(c !== undefined, what("Deployment sluice has container sluice"))) return;

  const volume = (spec.volumes ?? []).find((v) => v.configMap?.name === "sluice-config");
  const mount = volume && (c.volumeMounts ?? []).find((m) => m.name === volume.name);
  check(mount?.mountPath === "/etc/sluice" && mount.subPath === undefined && mount.subPathExpr === undefined,
        what("config mounted as the directory /etc/sluice (no subPath: ConfigMap updates reach the pod)"));
  const configArg = (c.args ?? []).join(" ").match(/(?:--config|-c)[ =](\S+)/)?.[1] ?? "/etc/sluice/sluice.yaml";
  check(configArg === "/etc/sluice/sluice.yaml", what(`sluice reads ${configArg}, the mounted key`));

  const adminPort = portOf(config.admin?.bind);
  check(config.admin?.bind?.startsWith("0.0.0.0:"), what("config admin.bind listens on all pod addresses (probes, Prometheus)"));
  check(containerPort(spec, "admin")?.containerPort === adminPort, what(`container port admin is the config's admin port ${adminPort}`));
  for (const listener of config.listeners ?? []) {
    check(containerPort(spec, portOf(listener.bind)) !== null, what(`container exposes listener ${listener.name} port ${portOf(listener.bind)}`));
  }
  for (const [name, probe] of [["readiness", c.readinessProbe], ["liveness", c.livenessProbe]]) {
    const target = probe?.httpGet && containerPort(spec, probe.httpGet.port);
    check(probe?.httpGet?.path === "/healthz" && target?.containerPort === adminPort,
          what(`${name} probe GETs /healthz on the admin port`));
  }
  const annotations = deploy.spec.template.metadata.annotations ?? {};
  check(annotations["prometheus.io/scrape"] === "true" && Number(annotations["prometheus.io/port"]) === adminPort &&
        annotations["prometheus.io/path"] === "/metrics", what("prometheus.io annotations point at admin /metrics"));

  const drain = parseDuration(config.drain_timeout ?? "25s");
  const preStop = c.lifecycle?.preStop?.exec?.command;
  const preStopSeconds = preStop?.[0]?.endsWith("sleep") ? Number(preStop[1]) : c.lifecycle?.preStop?.sleep?.seconds ?? 0;
  const grace = spec.terminationGracePeriodSeconds ?? 30;
  check(grace >= preStopSeconds + drain + 1,
        what(`terminationGracePeriodSeconds ${grace} >= preStop ${preStopSeconds}s + drain_timeout ${drain}s + 1s to exit`));
  check(deploy.spec.replicas === 1, what("one Sluice replica (one queue)"));

  // Each backend of the config is the node-pinned Service of the same name, on its node.
  for (const service of config.services ?? []) {
    for (const backend of service.backends ?? []) {
      const bwhat = (s) => what(`backend ${backend.name}: ${s}`);
      const m = /^([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local:(\d+)$/.exec(backend.address);
      if (!check(m !== null, bwhat(`address ${backend.address} is a Service DNS name`))) continue;
      const [, svcName, ns, port] = m;
      check(ns === NAMESPACE, bwhat(`Service is in namespace ${NAMESPACE}`));
      const svc = find("Service", svcName);
      if (!check(svc !== undefined, bwhat(`Service ${svcName} exists`))) continue;
      const svcPort = svc.spec.ports.find((p) => p.port === Number(port));
      check(svcPort !== undefined, bwhat(`Service ${svcName} has port ${port}`));
      const workload = podTemplates(objects).find((p) => selects(svc.spec.selector, p.meta.labels));
      if (!check(workload !== undefined, bwhat(`Service ${svcName} selects a workload`))) continue;
      check(workload.obj.spec.replicas === 1, bwhat("one backend pod behind the Service"));
      check(workload.spec.nodeSelector?.["kubernetes.io/hostname"] === backend.node,
            bwhat(`pods pinned to node ${backend.node}`), JSON.stringify(workload.spec.nodeSelector));
      const bc = workload.spec.containers[0];
      const argv = [...(bc.command ?? []), ...(bc.args ?? [])].join(" ");
      check(argv.includes(`--name ${backend.name}`) && argv.includes("sluice-backend"),
            bwhat(`runs sluice-backend --name ${backend.name}`), argv);
      check((bc.env ?? []).some((e) => e.name === "NODE_NAME" && e.valueFrom?.fieldRef?.fieldPath === "spec.nodeName"),
            bwhat("NODE_NAME comes from spec.nodeName"));
      check(svcPort && containerPort(workload.spec, svcPort.targetPort)?.containerPort === portOf(argv.match(/--listen (\S+)/)?.[1]),
            bwhat("Service targets the port sluice-backend listens on"));
    }
  }
}

// --- rules and dashboard ---------------------------------------------------------------------------

let live = null;  // { types, samples } of a real /metrics, when given
function checkMetricNames(what, expr) {
  for (const series of seriesNames(expr)) {
    const family = contractFamily(series);
    check(family !== null, `${what}: ${series} is in the metric contract (DESIGN.md section 4)`);
    if (live && family) {
      check(live.samples.has(series) || live.types.has(series),
            `${what}: ${series} appears in the real daemon's /metrics`);
      if (live.types.has(family)) {
        check(live.types.get(family) === METRIC_CONTRACT[family], `${what}: ${family} is a ${METRIC_CONTRACT[family]} in /metrics`,
              live.types.get(family));
      }
    }
  }
}

function checkRules(rules, label) {
  const all = rules.groups.flatMap((g) => g.rules);
  for (const rule of all) {
    const what = `${label}: alert ${rule.alert ?? rule.record}`;
    check(["warning", "critical"].includes(rule.labels?.severity), `${what}: severity warning or critical`);
    check(Boolean(rule.annotations?.summary && rule.annotations?.description), `${what}: summary and description`);
    checkMetricNames(what, rule.expr);
  }
  checkAlerts(check, label, rules, runbookAnchors(readText("docs/runbook.md")));
  const has = (re) => all.some((r) => r.alert && re.test(r.expr));
  check(has(/sluice_service_queue_length/), `${label}: an alert on the queue growing`);
  check(has(/sluice_backend_up\s*==\s*0/), `${label}: an alert on a backend down`);
  check(has(/sluice_backend_connect_failures_total/), `${label}: an alert on connect failures`);
}

function checkDashboard(file) {
  const label = rel(file);
  let d;
  try {
    d = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    check(false, `${label}: parses as JSON`, e.message);
    return;
  }
  check(true, `${label}: parses as JSON`);
  check(Boolean(d.uid && d.title && Number.isInteger(d.schemaVersion)), `${label}: has uid, title and schemaVersion`);
  const dsVar = (d.templating?.list ?? []).find((v) => v.type === "datasource" && v.query === "prometheus");
  check(dsVar !== undefined, `${label}: has a Prometheus datasource variable`);
  const panels = (d.panels ?? []).flatMap((p) => (p.type === "row" ? p.panels ?? [] : [p]));
  const ids = panels.map((p) => p.id);
  check(panels.length > 0 && new Set(ids).size === ids.length, `${label}: ${panels.length} panels with unique ids`);
  const records = [];
  for (const p of panels) {
    const what = `${label}: panel "${p.title}"`;
    const targets = p.targets ?? [];
    check(targets.length > 0 && targets.every((t) => t.expr), `${what}: has PromQL targets`);
    check([p.datasource, ...targets.map((t) => t.datasource)].every((ds) => ds?.uid === `\${${dsVar?.name}}`),
          `${what}: uses the datasource variable`);
    check(Boolean(p.gridPos && p.gridPos.w > 0 && p.gridPos.h > 0), `${what}: has a grid position`);
    for (const t of targets) {
      checkMetricNames(`${what} ${t.refId}`, t.expr ?? "");
      // Grafana's variables, replaced by what they stand for, so that promtool parses the PromQL.
      const expr = (t.expr ?? "").replaceAll("$__rate_interval", "5m").replaceAll("$__interval", "1m")
        .replaceAll("$__range", "1h").replace(/\$\{?(\w+)\}?/g, ".*");
      records.push({ record: `dashboard:panel${p.id}_${t.refId}`, expr });
    }
  }
  const exprs = panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? ""));
  check(exprs.some((e) => /\bsluice_service_queue_length\b(?!_)/.test(e)), `${label}: a panel shows the queue length`);
  check(exprs.some((e) => /histogram_quantile\([^,]+,.*\bsluice_service_queue_wait_seconds_bucket\b/.test(e)),
        `${label}: a panel shows queue wait quantiles (histogram_quantile over sluice_service_queue_wait_seconds_bucket)`);
  check(exprs.some((e) => /sum by \(node\)\s*\(sluice_backend_connections_active\b(?!_)/.test(e)),
        `${label}: a panel shows active connections per node`);
  checkDashboardScope(check, label, d, exprs);
  writeFileSync(path.join(work, "dashboard.rules.yaml"), stringify({ groups: [{ name: "dashboard", rules: records }] }));
}

// --- Dockerfile --------------------------------------------------------------------------------------

function checkDockerfile(config, renderedPods) {
  const text = readText("Dockerfile").replace(/\\\n/g, " ");
  const lines = text.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  const instr = (name) => lines.filter((l) => l.toUpperCase().startsWith(`${name} `)).map((l) => l.slice(name.length + 1).trim());
  const froms = instr("FROM");
  check(froms[0]?.startsWith("debian:bookworm ") && froms.at(-1) === "debian:bookworm-slim",
        "Dockerfile: builds FROM debian:bookworm, runs FROM debian:bookworm-slim", froms.join(" | "));
  check(instr("RUN").some((r) => r.includes("scripts/install-deps.sh")), "Dockerfile: build stage uses scripts/install-deps.sh");
  check(instr("RUN").some((r) => /-DSLUICE_TESTS=OFF/.test(r) && /CMAKE_BUILD_TYPE=Release/.test(r)), "Dockerfile: Release build without tests");
  check(instr("USER").at(-1) === `${IMAGE_USER}:${IMAGE_USER}`, `Dockerfile: runs as numeric USER ${IMAGE_USER}:${IMAGE_USER}`);
  const podUsers = renderedPods.filter((p) => p.spec.containers.some((c) => c.image.startsWith("sluice:")))
    .map((p) => p.spec.securityContext?.runAsUser);
  check(podUsers.every((u) => u === IMAGE_USER), `Dockerfile: pods running the image use its UID ${IMAGE_USER}`, podUsers.join(","));
  check(JSON.stringify(JSON.parse(instr("ENTRYPOINT").at(-1) ?? "null")) === '["/usr/local/bin/sluice"]',
        'Dockerfile: ENTRYPOINT ["/usr/local/bin/sluice"]');
  check(JSON.stringify(JSON.parse(instr("CMD").at(-1) ?? "null")) === '["--config","/etc/sluice/sluice.yaml"]',
        'Dockerfile: CMD ["--config","/etc/sluice/sluice.yaml"]');
  check(text.includes("/usr/local/bin/sluice-backend"), "Dockerfile: installs /usr/local/bin/sluice-backend");
  check(instr("COPY").some((c) => c === "config/minikube.yaml /etc/sluice/sluice.yaml"), "Dockerfile: default config is config/minikube.yaml");
  const exposed = instr("EXPOSE").flatMap((e) => e.split(/\s+/)).map((p) => Number(p.split("/")[0]));
  const wanted = [portOf(config.admin.bind), ...config.listeners.map((l) => portOf(l.bind)), 8000];
  check(wanted.every((p) => exposed.includes(p)), `Dockerfile: EXPOSEs ${wanted.join(", ")}`, exposed.join(","));
  const ignore = existsSync(path.join(repo, ".dockerignore")) ? readText(".dockerignore") : "";
  check(["build*/", "results/", "node_modules/"].every((p) => ignore.split("\n").includes(p)),
        ".dockerignore: leaves out build*/, results/, node_modules/");
}

// --- main ------------------------------------------------------------------------------------------

mkdirSync(work, { recursive: true });
if (args.metrics) live = parseExposition(readFileSync(args.metrics, "utf8"));
const config = parseYaml(readText("config/minikube.yaml"));

section("config");
check(readText("deploy/base/sluice.yaml") === readText("config/minikube.yaml"),
      "deploy/base/sluice.yaml is byte-identical to config/minikube.yaml");
check(config.workers === undefined || config.workers === 1,
      "config/minikube.yaml runs one worker: one shared queue per service, the M/M/c the experiment compares with",
      String(config.workers));

const subdirs = (dir) => readdirSync(path.join(repo, dir)).sort().map((d) => `${dir}/${d}`);
// deploy/grafana is a part of the operator overlay, not a deployment of its own.
const kustomizations = ["deploy/base", ...subdirs("deploy/overlays"), ...subdirs("deploy/scaling"), "deploy/experiment"];
const rendered = {};
const scalingRules = [];  // the autoscalers' PromQL, for promtool
const scalingContext = { check, repo, selects, podTemplates, rules: scalingRules };
for (const dir of kustomizations) {
  section(`render ${dir}`);
  try {
    rendered[dir] = render(path.join(repo, dir));
    check(true, `${dir}: renders ${rendered[dir].length} objects`);
    writeFileSync(path.join(work, `${dir.replaceAll("/", "_")}.yaml`), rendered[dir].map((o) => stringify(o)).join("---\n"));
  } catch (e) {
    check(false, `${dir}: renders`, e.message);
    continue;
  }
  const objects = rendered[dir];
  validateSchemas(dir, objects);
  for (const pod of podTemplates(objects)) checkPodSecurity(dir, pod);
  checkServices(dir, objects);
  checkSluice(dir, objects, sluiceConfigFile(dir));
  if (dir.startsWith("deploy/scaling/")) checkScaling(dir, dir, objects, scalingContext);
  if (dir === "deploy/experiment") checkSluiceNode(dir, objects);
}
writeFileSync(path.join(work, "scaling.rules.yaml"), stringify({ groups: [{ name: "scaling", rules: scalingRules }] }));

section("Prometheus: plain (deploy/overlays/plain-prometheus)");
const plainDir = "deploy/overlays/plain-prometheus";
const plainRules = parseYaml(readText(`${plainDir}/sluice-rules.yaml`));
checkRules(plainRules, `${plainDir}/sluice-rules.yaml`);
const ruleTests = `${plainDir}/sluice-rules.test.yaml`;
for (const series of new Set(testSeriesNames(parseYaml(readText(ruleTests))))) checkMetricNames(`${ruleTests}: input series`, series);
const plain = rendered[plainDir] ?? [];
const promCm = plain.find((o) => o.kind === "ConfigMap" && o.metadata.name === "prometheus-config");
if (check(promCm !== undefined, `${plainDir}: ConfigMap prometheus-config`)) {
  // promtool checks the configuration as mounted, with its rule file beside it.
  mkdirSync(path.join(work, "prometheus"), { recursive: true });
  for (const [key, value] of Object.entries(promCm.data)) writeFileSync(path.join(work, "prometheus", key), value);
  const promConfig = parseYaml(promCm.data["prometheus.yml"]);
  // Debian's promtool is built without Kubernetes service discovery and refuses the key, so it
  // checks a copy with static targets instead (everything else as mounted); the discovery block
  // itself is checked here.
  const forPromtool = structuredClone(promConfig);
  for (const job of forPromtool.scrape_configs) {
    if (job.kubernetes_sd_configs) {
      delete job.kubernetes_sd_configs;
      job.static_configs = [{ targets: ["127.0.0.1:9100"] }];
    }
  }
  writeFileSync(path.join(work, "prometheus", "prometheus.static-sd.yml"), stringify(forPromtool));
  const sd = promConfig.scrape_configs.flatMap((s) => s.kubernetes_sd_configs ?? []);
  check(sd.length > 0 && sd.every((s) => s.role === "pod" && isDeepStrictEqual(s.namespaces?.names, [NAMESPACE])),
        `${plainDir}: prometheus.yml discovers pods in namespace ${NAMESPACE} only`);
  const keeps = promConfig.scrape_configs.flatMap((s) => s.relabel_configs ?? [])
    .some((r) => r.action === "keep" && r.source_labels?.includes("__meta_kubernetes_pod_annotation_prometheus_io_scrape"));
  check(keeps, `${plainDir}: prometheus.yml keeps only pods annotated prometheus.io/scrape`);
  checkPlainLabels(check, plainDir, promConfig);
  check((promConfig.rule_files ?? []).every((f) => f in promCm.data), `${plainDir}: rule files are in the ConfigMap`);
  const prom = plain.find((o) => o.kind === "Deployment" && o.metadata.name === "prometheus");
  const sa = prom?.spec.template.spec.serviceAccountName;
  const role = plain.find((o) => o.kind === "Role" || o.kind === "ClusterRole");
  const binding = plain.find((o) => (o.kind === "RoleBinding" || o.kind === "ClusterRoleBinding") && o.roleRef.name === role?.metadata.name);
  check(plain.some((o) => o.kind === "ServiceAccount" && o.metadata.name === sa), `${plainDir}: Prometheus runs as its ServiceAccount ${sa}`);
  check(Boolean(role?.rules.some((r) => r.resources.includes("pods") && ["list", "watch"].every((v) => r.verbs.includes(v)))),
        `${plainDir}: its Role may list and watch pods`);
  check(Boolean(binding?.subjects.some((s) => s.kind === "ServiceAccount" && s.name === sa && s.namespace === NAMESPACE)),
        `${plainDir}: the binding grants the Role to that ServiceAccount`);
}

section("Prometheus Operator (deploy/overlays/prometheus-operator)");
const opDir = "deploy/overlays/prometheus-operator";
const op = rendered[opDir] ?? [];
const promRule = op.find((o) => o.kind === "PrometheusRule");
if (check(promRule !== undefined, `${opDir}: PrometheusRule exists`)) {
  check(isDeepStrictEqual(promRule.spec, plainRules), `${opDir}: PrometheusRule spec equals ${plainDir}/sluice-rules.yaml`);
  writeFileSync(path.join(work, "prometheusrule.rules.yaml"), stringify(promRule.spec));
}
const monitor = op.find((o) => o.kind === "ServiceMonitor");
const admin = op.find((o) => o.kind === "Service" && o.metadata.name === "sluice-admin");
if (check(monitor !== undefined && admin !== undefined, `${opDir}: ServiceMonitor and Service sluice-admin exist`)) {
  check(selects(monitor.spec.selector.matchLabels, admin.metadata.labels), `${opDir}: ServiceMonitor selects Service sluice-admin`);
  const others = op.filter((o) => o.kind === "Service" && o !== admin && selects(monitor.spec.selector.matchLabels, o.metadata.labels));
  check(others.length === 0, `${opDir}: ServiceMonitor selects no other Service`, others.map((o) => o.metadata.name).join(","));
  check(monitor.spec.namespaceSelector?.matchNames?.includes(NAMESPACE), `${opDir}: ServiceMonitor watches namespace ${NAMESPACE}`);
  check(monitor.spec.endpoints.every((e) => admin.spec.ports.some((p) => p.name === e.port) && e.path === "/metrics"),
        `${opDir}: ServiceMonitor scrapes /metrics on the admin port`);
  checkOperator(check, opDir, op, { monitor, admin, dashboardText: readText("deploy/grafana/sluice-dashboard.json") });
}

section("Grafana dashboard");
checkDashboard(path.join(repo, "deploy/grafana/sluice-dashboard.json"));

section("Dockerfile");
checkDockerfile(config, podTemplates(rendered["deploy/base"] ?? []));

console.log(`\nvalidate.mjs: ${passed} checks passed, ${failures.length} failed`);
if (failures.length) {
  console.log(failures.map((f) => `  failed: ${f}`).join("\n"));
  process.exit(1);
}
