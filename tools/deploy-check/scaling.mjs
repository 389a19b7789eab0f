// Checks of the scaling overlays (deploy/scaling/*) that a schema cannot make: the backend pool
// has a headless Service, at most one autoscaler resizes it, and that autoscaler (a KEDA
// ScaledObject or an HPA on prometheus-adapter's External metric) makes replicas equal Sluice's
// sluice_service_recommended_backends gauge of a configured service; the Sluice config the overlay
// mounts sends that service to the pool (a backend set on the headless Service) and bounds its
// recommendation as the autoscaler bounds the replicas. Also the JSON-schema models
// for the objects kubernetes-models has no schema for (KEDA), and the adapter's rules file.
// Used by validate.mjs.

import { readFileSync, existsSync } from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import Ajv from "ajv";
import { parse as parseYaml } from "yaml";

const require = createRequire(import.meta.url);
const here = path.dirname(new URL(import.meta.url).pathname);
const { HorizontalPodAutoscalerBehavior } = require("kubernetes-models/autoscaling/v2");

// The gauge the autoscalers follow: exported once `scaling:` is configured for a service.
export const SCALING_GAUGE = "sluice_service_recommended_backends";

const ajv = new Ajv({ allErrors: true, strict: true });
const loadSchema = (file) => ajv.compile(JSON.parse(readFileSync(path.join(here, "schemas", file), "utf8")));
// ajv's messages, with the name of an unknown field (ajv keeps it apart, in params).
const schemaErrors = (validate) => (validate.errors ?? [])
  .map((e) => `data${e.instancePath} ${e.message}${e.params?.additionalProperty ? `: '${e.params.additionalProperty}'` : ""}`)
  .join(", ");

// A model class, as kubernetes-models has, for a kind validated by one of schemas/*.json.
function schemaModel(file) {
  const validate = loadSchema(file);
  return class {
    constructor(obj) { Object.assign(this, obj); }
    validate() { if (!validate(this)) throw new Error(schemaErrors(validate)); }
  };
}
const CRD_MODELS = { "keda.sh/v1alpha1/ScaledObject": schemaModel("keda.sh_v1alpha1_ScaledObject.json") };
export const crdModel = (obj) => CRD_MODELS[`${obj.apiVersion}/${obj.kind}`] ?? null;

const adapterConfigValid = loadSchema("prometheus-adapter-config.json");

// The metadata keys of KEDA's prometheus scaler (keda.sh/docs/2.15/scalers/prometheus), all strings.
const PROMETHEUS_TRIGGER_KEYS = ["serverAddress", "query", "threshold", "activationThreshold", "namespace",
  "customHeaders", "ignoreNullValues", "queryParameters", "unsafeSsl", "authModes"];

// The Service and port an in-cluster URL names (http://NAME.NAMESPACE.svc.cluster.local:PORT).
function serviceOfUrl(objects, url, port) {
  const m = /^https?:\/\/([a-z0-9-]+)\.([a-z0-9-]+)\.svc(?:\.cluster\.local)?(?::(\d+))?\/?$/.exec(url ?? "");
  if (!m) return null;
  const svc = objects.find((o) => o.kind === "Service" && o.metadata.name === m[1] && o.metadata.namespace === m[2]);
  const p = Number(m[3] ?? port);
  return svc?.spec.ports.some((sp) => sp.port === p) ? svc : null;
}

// The Sluice config in the rendered ConfigMap sluice-config (key sluice.yaml), or null.
function renderedSluiceConfig(what, objects, check) {
  const cm = objects.find((o) => o.kind === "ConfigMap" && o.metadata.name === "sluice-config");
  let config = null;
  let error = "no ConfigMap sluice-config with key sluice.yaml";
  if (typeof cm?.data?.["sluice.yaml"] === "string") {
    try {
      config = parseYaml(cm.data["sluice.yaml"]);
      error = "";
    } catch (e) {
      error = e.message;
    }
  }
  return check(config !== null, what("the rendered Sluice config (ConfigMap sluice-config) parses"), error) ? config : null;
}

// checkScaling(label, dir, objects, ctx): ctx has check(ok, what, detail), repo,
// selects(selector, labels), podTemplates(objects), and rules (PromQL records collected for promtool).
export function checkScaling(label, dir, objects, ctx) {
  const { check } = ctx;
  const what = (s) => `${label}: ${s}`;
  const config = renderedSluiceConfig(what, objects, check);
  if (config === null) return;
  ctx = { ...ctx, config };
  const scalers = objects.filter((o) => o.kind === "ScaledObject" || o.kind === "HorizontalPodAutoscaler");
  check(scalers.length <= 1, what("at most one autoscaler (two would fight over the replicas)"),
        scalers.map((o) => `${o.kind} ${o.metadata.name}`).join(", "));

  // Headless Services: one A record per ready pod, which Sluice can follow.
  const pods = ctx.podTemplates(objects);
  const headless = objects.filter((o) => o.kind === "Service" && o.spec.clusterIP === "None");
  for (const svc of headless) {
    check(svc.spec.publishNotReadyAddresses === false,
          what(`Service ${svc.metadata.name}: publishNotReadyAddresses: false (only ready pods in DNS)`));
  }

  for (const scaler of scalers) {
    const id = `${scaler.kind} ${scaler.metadata.name}`;
    const spec = scaler.spec;
    const ref = spec.scaleTargetRef;
    const target = pods.find((p) => p.obj.kind === (ref.kind ?? "Deployment") && p.obj.metadata.name === ref.name);
    if (!check(target !== undefined && (ref.apiVersion ?? "apps/v1") === "apps/v1",
               what(`${id}: scales Deployment ${ref.name} of this overlay`))) continue;
    const argv = [...(target.spec.containers[0].command ?? []), ...(target.spec.containers[0].args ?? [])].join(" ");
    check(argv.includes("sluice-backend"), what(`${id}: its target runs sluice-backend`), argv);
    check(target.spec.nodeSelector?.["kubernetes.io/hostname"] === undefined,
          what(`${id}: its target is not pinned to one node`));
    check(headless.some((svc) => ctx.selects(svc.spec.selector, target.meta.labels)),
          what(`${id}: a headless Service selects its target's pods`));

    const keda = scaler.kind === "ScaledObject";
    const min = keda ? spec.minReplicaCount ?? 0 : spec.minReplicas ?? 1;
    const max = keda ? spec.maxReplicaCount ?? 100 : spec.maxReplicas;
    check(Number.isInteger(min) && min >= 1 && min <= max, what(`${id}: 1 <= min replicas ${min} <= max ${max}`));
    const behavior = keda ? spec.advanced?.horizontalPodAutoscalerConfig?.behavior : spec.behavior;
    let error = "";
    try {
      new HorizontalPodAutoscalerBehavior(behavior ?? {}).validate();
    } catch (e) {
      error = e.message;
    }
    check(error === "", what(`${id}: HPA behavior valid against the autoscaling/v2 schema`), error);
    check(Number.isInteger(behavior?.scaleDown?.stabilizationWindowSeconds),
          what(`${id}: sets a scale-down stabilisation window`));
    const service = keda ? checkScaledObject(what, id, scaler, objects, ctx) : checkAdapterHpa(what, id, dir, scaler, objects, ctx);
    if (service !== null) checkPoolConfig(what, id, service, { min, max, target, headless }, ctx);
  }
}

// The service a query or selector asks for must be one Sluice is configured with, that follows the
// scaled pool and recommends within the autoscaler's bounds: the gauge is the replica count only if
// Sluice's model counts the same backends and clamps to the same min and max.
function checkPoolConfig(what, id, name, { min, max, target, headless }, ctx) {
  const { check } = ctx;
  const services = ctx.config.services ?? [];
  const service = services.find((s) => s.name === name);
  if (!check(service !== undefined, what(`${id}: asks for service "${name}" of the rendered Sluice config`),
             `services: ${services.map((s) => s.name).join(", ")}`)) return;
  const swhat = (s) => what(`Sluice service ${name}: ${s}`);
  // The headless Services of the scaled Deployment, as the names and ports a backend set resolves.
  const pool = headless.filter((svc) => ctx.selects(svc.spec.selector, target.meta.labels))
    .flatMap((svc) => svc.spec.ports.map((p) => `${svc.metadata.name}.${svc.metadata.namespace}.svc.cluster.local:${p.port}`));
  const set = (service.backend_sets ?? []).find((b) => pool.includes(b.address));
  if (check(set !== undefined, swhat(`a backend set follows the headless Service of ${target.id} (${pool.join(", ")})`),
            `backend_sets: ${(service.backend_sets ?? []).map((b) => b.address).join(", ") || "none"}`)) {
    check((set.max_backends ?? 64) >= max,
          swhat(`backend set ${set.name}: max_backends ${set.max_backends ?? 64} >= the autoscaler's max ${max}`));
  }
  const scaling = service.scaling;
  if (!check(scaling !== undefined, swhat(`has scaling: (it exports ${SCALING_GAUGE})`))) return;
  check((scaling.max_backends ?? 64) === max,
        swhat(`scaling.max_backends equals ${id}'s max replicas ${max}`), `max_backends ${scaling.max_backends ?? 64}`);
  check((scaling.min_backends ?? 1) === min,
        swhat(`scaling.min_backends equals ${id}'s min replicas ${min}`), `min_backends ${scaling.min_backends ?? 1}`);
}

// Returns the service the query asks for, or null.
function checkScaledObject(what, id, so, objects, ctx) {
  const { check } = ctx;
  const triggers = so.spec.triggers;
  const t = triggers[0];
  if (!check(triggers.length === 1 && t.type === "prometheus", what(`${id}: one prometheus trigger`))) return null;
  const m = t.metadata;
  const unknown = Object.keys(m).filter((k) => !PROMETHEUS_TRIGGER_KEYS.includes(k));
  check(unknown.length === 0, what(`${id}: prometheus trigger metadata has only known keys`), unknown.join(", "));
  check(["serverAddress", "query", "threshold"].every((k) => m[k]), what(`${id}: serverAddress, query and threshold set`));
  check(serviceOfUrl(objects, m.serverAddress, 80) !== null,
        what(`${id}: serverAddress ${m.serverAddress} is a Prometheus Service and port of this overlay`));
  // AverageValue with threshold 1: the HPA wants ceil(gauge / 1) replicas, the gauge itself.
  check((t.metricType ?? "AverageValue") === "AverageValue" && Number(m.threshold) === 1,
        what(`${id}: metricType AverageValue and threshold 1 (replicas == the gauge)`),
        `metricType ${t.metricType}, threshold ${m.threshold}`);
  const q = /^max by \(service\) \(sluice_service_recommended_backends\{service="([^"]+)"\}\)$/.exec(m.query ?? "");
  check(q !== null, what(`${id}: query is max by (service) (${SCALING_GAUGE}{service="..."})`), m.query);
  ctx.rules.push({ record: `scaling:${so.metadata.name.replaceAll("-", "_")}:keda_query`, expr: m.query ?? "" });
  // An absent gauge read as 0 would scale to the minimum exactly when the signal is lost.
  check(m.ignoreNullValues === "false" && so.spec.fallback !== undefined,
        what(`${id}: an absent gauge is an error (ignoreNullValues "false") and falls back to fixed replicas`));
  return q?.[1] ?? null;
}

// Returns the service the HPA's selector asks for, or null.
function checkAdapterHpa(what, id, dir, hpa, objects, ctx) {
  const { check } = ctx;
  const metrics = hpa.spec.metrics ?? [];
  const ext = metrics[0]?.external;
  if (!check(metrics.length === 1 && metrics[0].type === "External" && ext,
             what(`${id}: one External metric`))) return null;
  check(ext.metric.name === SCALING_GAUGE, what(`${id}: metric ${SCALING_GAUGE}`), ext.metric.name);
  const service = ext.metric.selector?.matchLabels?.service;
  if (!check(typeof service === "string", what(`${id}: selector matchLabels picks a service`))) return null;
  checkAdapter(what, id, dir, hpa, service, objects, ctx);
  return service;
}

// prometheus-adapter, installed by helm with helm-values.yaml, its rules from this overlay's ConfigMap.
function checkAdapter(what, id, dir, hpa, service, objects, ctx) {
  const { check } = ctx;
  // AverageValue 1: the HPA wants ceil(metric / 1) replicas, the gauge itself.
  const ext = hpa.spec.metrics[0].external;
  check(ext.target.type === "AverageValue" && Number(ext.target.averageValue) === 1,
        what(`${id}: target AverageValue 1 (replicas == the gauge)`), JSON.stringify(ext.target));

  const valuesFile = path.join(ctx.repo, dir, "helm-values.yaml");
  if (!check(existsSync(valuesFile), what(`${dir}/helm-values.yaml exists (the adapter's helm values)`))) return;
  const values = parseYaml(readFileSync(valuesFile, "utf8"));
  check(serviceOfUrl(objects, values.prometheus?.url, values.prometheus?.port) !== null,
        what(`helm-values.yaml: prometheus.url and port are a Prometheus Service of this overlay`),
        `${values.prometheus?.url} port ${values.prometheus?.port}`);
  const sc = values.securityContext ?? {};
  check(sc.allowPrivilegeEscalation === false && sc.runAsNonRoot === true && sc.capabilities?.drop?.includes("ALL") &&
        sc.seccompProfile?.type === "RuntimeDefault",
        what("helm-values.yaml: the adapter's securityContext passes Pod Security restricted"));
  const cm = objects.find((o) => o.kind === "ConfigMap" && o.metadata.name === values.rules?.existing);
  if (!check(cm !== undefined && "config.yaml" in (cm.data ?? {}),
             what(`helm-values.yaml: rules.existing names a ConfigMap with key config.yaml`), values.rules?.existing)) return;
  const config = parseYaml(cm.data["config.yaml"]);
  check(adapterConfigValid(config), what(`ConfigMap ${cm.metadata.name}: config.yaml valid against the adapter's config schema`),
        schemaErrors(adapterConfigValid));
  const rule = (config?.externalRules ?? []).find((r) => r.name?.as === SCALING_GAUGE);
  if (!check(rule !== undefined, what(`ConfigMap ${cm.metadata.name}: an externalRule serves ${SCALING_GAUGE}`))) return;
  check(new RegExp(`^'?${SCALING_GAUGE}\\{`).test(rule.seriesQuery), what(`externalRule: seriesQuery selects ${SCALING_GAUGE}`),
        rule.seriesQuery);
  check(rule.resources?.overrides?.namespace?.resource === "namespace",
        what("externalRule: the series' namespace label is the Kubernetes namespace"));
  check(/<<\.Series>>\{<<\.LabelMatchers>>\}/.test(rule.metricsQuery) && /^max by \(/.test(rule.metricsQuery),
        what("externalRule: metricsQuery is max by (...) over <<.Series>>{<<.LabelMatchers>>}"), rule.metricsQuery);
  // The query as the adapter sends it for this HPA, for promtool.
  const expr = rule.metricsQuery.replaceAll("<<.Series>>", SCALING_GAUGE)
    .replaceAll("<<.LabelMatchers>>", `namespace="${hpa.metadata.namespace}",service="${service}"`)
    .replaceAll("<<.GroupBy>>", "namespace");
  ctx.rules.push({ record: `scaling:${hpa.metadata.name.replaceAll("-", "_")}:adapter_query`, expr });
}
