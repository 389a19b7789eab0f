// A small kustomize: renders the subset of kustomization.yaml that deploy/ uses, the way
// `kubectl kustomize` does, for machines without kubectl. Anything outside that subset is an error
// rather than silently ignored, so the rendering can be trusted.
//
// Supported: resources (files, and directories holding a kustomization: bases and overlays),
// namespace, labels (includeSelectors: false), configMapGenerator (files, literals, options.labels
// and annotations; behavior create, replace or merge) with generatorOptions.disableNameSuffixHash:
// true, patches and images (patches.mjs). Like kustomize, files must lie in or below the
// kustomization's directory; only other kustomizations may be outside it.

import { existsSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { parseAllDocuments } from "yaml";
import { applyImages, applyPatches } from "./patches.mjs";

const KUSTOMIZATION_FILES = ["kustomization.yaml", "kustomization.yml", "Kustomization"];
const SUPPORTED_KEYS = new Set([
  "apiVersion", "kind", "namespace", "labels", "resources", "configMapGenerator", "generatorOptions",
  "patches", "images",
]);

// Kinds that have no namespace: the namespace transformer leaves them alone.
const CLUSTER_SCOPED = new Set([
  "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PersistentVolume",
  "StorageClass", "PriorityClass", "IngressClass", "RuntimeClass", "ValidatingWebhookConfiguration",
  "MutatingWebhookConfiguration", "APIService", "Node",
]);

// kustomize's default ("legacy") output order: by kind, what others depend on first (so that applying
// the output in one pass works: the Namespace before what lives in it), then by kind and name.
const ORDER_FIRST = [
  "Namespace", "ResourceQuota", "StorageClass", "CustomResourceDefinition", "ServiceAccount",
  "PodSecurityPolicy", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding", "ConfigMap",
  "Secret", "Endpoints", "Service", "LimitRange", "PriorityClass", "PersistentVolume",
  "PersistentVolumeClaim", "Deployment", "StatefulSet", "CronJob", "PodDisruptionBudget",
];
const ORDER_LAST = ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"];

export class KustomizeError extends Error {}

function fail(dir, message) {
  throw new KustomizeError(`${path.relative(process.cwd(), dir) || "."}: ${message}`);
}

export function isClusterScoped(obj) {
  return CLUSTER_SCOPED.has(obj.kind);
}

export function resourceId(obj) {
  const ns = isClusterScoped(obj) ? "" : obj.metadata?.namespace ?? "";
  return `${obj.apiVersion}/${obj.kind}/${ns}/${obj.metadata?.name}`;
}

function kustomizationFile(dir) {
  const found = KUSTOMIZATION_FILES.map((f) => path.join(dir, f)).filter((f) => existsSync(f));
  if (found.length !== 1) fail(dir, found.length ? "more than one kustomization file" : "no kustomization.yaml");
  return found[0];
}

// A path named in a kustomization, which must stay in or below `root` (kustomize's load restrictor).
function pathInRoot(root, relative) {
  const resolved = path.resolve(root, relative);
  if (resolved !== root && !resolved.startsWith(root + path.sep)) {
    fail(root, `'${relative}' is not in or below the kustomization's directory (kustomize refuses it)`);
  }
  return resolved;
}

function parseYamlDocuments(file) {
  const objects = [];
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    if (doc.errors.length) throw new KustomizeError(`${file}: ${doc.errors[0].message}`);
    const obj = doc.toJS();
    if (obj === null) continue;  // an empty document, e.g. after a trailing ---
    if (typeof obj !== "object" || !obj.apiVersion || !obj.kind || !obj.metadata?.name) {
      throw new KustomizeError(`${file}: a document without apiVersion, kind and metadata.name`);
    }
    objects.push(obj);
  }
  return objects;
}

function generateConfigMap(dir, spec, options) {
  const known = new Set(["name", "behavior", "files", "literals", "options"]);
  for (const key of Object.keys(spec)) {
    if (!known.has(key)) fail(dir, `configMapGenerator key '${key}' is not supported by this renderer`);
  }
  for (const key of Object.keys(spec.options ?? {})) {
    if (!["labels", "annotations"].includes(key)) fail(dir, `configMapGenerator options key '${key}' is not supported by this renderer`);
  }
  if (options.disableNameSuffixHash !== true) {
    fail(dir, `configMapGenerator '${spec.name}': name suffix hashes are not implemented here; ` +
              "set generatorOptions.disableNameSuffixHash: true");
  }
  const data = {};
  const put = (key, value) => {
    if (key in data) fail(dir, `configMapGenerator '${spec.name}': key '${key}' given twice`);
    data[key] = value;
  };
  for (const entry of spec.files ?? []) {
    const [key, file] = entry.includes("=") ? entry.split(/=(.*)/s, 2) : [path.basename(entry), entry];
    put(key, readFileSync(pathInRoot(dir, file), "utf8"));
  }
  for (const entry of spec.literals ?? []) {
    const [key, value] = entry.split(/=(.*)/s, 2);
    put(key, value ?? "");
  }
  const metadata = { name: spec.name };
  for (const key of ["labels", "annotations"]) if (spec.options?.[key]) metadata[key] = { ...spec.options[key] };
  return { apiVersion: "v1", kind: "ConfigMap", metadata, data };
}

// Adds a generated ConfigMap to the objects of the resources, as kustomize's generator behavior
// says: create (the default) a new one; replace or merge the one of the same name from a base. Like
// kustomize, the result keeps the old name and namespace and the old labels and annotations under
// the new; replace takes only the new data, merge the old data with the new over it.
function addGenerated(dir, objects, spec, generated) {
  const behavior = spec.behavior ?? "create";
  if (!["create", "replace", "merge"].includes(behavior)) {
    fail(dir, `configMapGenerator '${spec.name}': behavior '${behavior}' is not create, replace or merge`);
  }
  const matches = objects.filter((o) => o.kind === "ConfigMap" && o.metadata.name === spec.name);
  if (behavior === "create") {
    if (matches.length) fail(dir, `configMapGenerator '${spec.name}': a ConfigMap of that name exists; use behavior replace or merge`);
    objects.push(generated);
    return;
  }
  if (matches.length !== 1) {
    fail(dir, `configMapGenerator '${spec.name}': behavior ${behavior} needs exactly one ConfigMap '${spec.name}' ` +
              `from the resources, found ${matches.length}`);
  }
  const old = matches[0];
  const merged = { ...generated, metadata: { name: old.metadata.name } };
  if (old.metadata.namespace !== undefined) merged.metadata.namespace = old.metadata.namespace;
  for (const key of ["labels", "annotations"]) {
    const both = { ...old.metadata[key], ...generated.metadata[key] };
    if (Object.keys(both).length) merged.metadata[key] = both;
  }
  if (behavior === "merge") {
    merged.data = { ...old.data, ...generated.data };
    if (old.binaryData) merged.binaryData = old.binaryData;
  }
  objects[objects.indexOf(old)] = merged;
}

function applyLabels(dir, objects, labelSpecs) {
  for (const spec of labelSpecs) {
    const known = new Set(["pairs", "includeSelectors", "includeTemplates"]);
    for (const key of Object.keys(spec)) {
      if (!known.has(key)) fail(dir, `labels key '${key}' is not supported by this renderer`);
    }
    if (spec.includeSelectors) fail(dir, "labels with includeSelectors: true are not supported by this renderer");
    for (const obj of objects) {
      obj.metadata.labels = { ...obj.metadata.labels, ...spec.pairs };
      if (spec.includeTemplates && obj.spec?.template?.metadata) {
        obj.spec.template.metadata.labels = { ...obj.spec.template.metadata.labels, ...spec.pairs };
      }
    }
  }
}

function applyNamespace(dir, objects, namespace) {
  for (const obj of objects) {
    if (obj.kind === "Namespace") {
      // kustomize renames a lone Namespace object; deploy/ never relies on that.
      if (obj.metadata.name !== namespace) fail(dir, `Namespace '${obj.metadata.name}' is not '${namespace}'`);
      continue;
    }
    if (!isClusterScoped(obj)) obj.metadata.namespace = namespace;
    if (obj.kind === "RoleBinding" || obj.kind === "ClusterRoleBinding") {
      for (const subject of obj.subjects ?? []) {
        // kustomize's handling of subjects has changed across versions: state it explicitly.
        if (subject.kind === "ServiceAccount" && !subject.namespace) {
          fail(dir, `${obj.kind} '${obj.metadata.name}': give ServiceAccount subjects an explicit namespace`);
        }
      }
    }
  }
}

function sortLikeKustomize(objects) {
  const rank = (obj) => {
    const first = ORDER_FIRST.indexOf(obj.kind);
    if (first >= 0) return first;
    const last = ORDER_LAST.indexOf(obj.kind);
    return last >= 0 ? ORDER_FIRST.length + 1 + last : ORDER_FIRST.length;
  };
  const key = (obj) => `${obj.kind}/${obj.metadata.namespace ?? ""}/${obj.metadata.name}`;
  return [...objects].sort((a, b) => rank(a) - rank(b) || (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

// Renders the kustomization in `dir` and returns its objects (plain JS values).
export function render(dir, seen = []) {
  dir = path.resolve(dir);
  if (seen.includes(dir)) fail(dir, "a cycle of kustomizations");
  const file = kustomizationFile(dir);
  const docs = parseAllDocuments(readFileSync(file, "utf8"));
  if (docs.length !== 1 || docs[0].errors.length) fail(dir, `cannot parse ${path.basename(file)}`);
  const k = docs[0].toJS() ?? {};
  for (const key of Object.keys(k)) {
    if (!SUPPORTED_KEYS.has(key)) fail(dir, `kustomization key '${key}' is not supported by this renderer`);
  }
  if (k.kind && k.kind !== "Kustomization") fail(dir, `kind '${k.kind}' is not Kustomization`);
  const options = k.generatorOptions ?? {};
  for (const key of Object.keys(options)) {
    if (key !== "disableNameSuffixHash") fail(dir, `generatorOptions key '${key}' is not supported by this renderer`);
  }

  let objects = [];
  for (const entry of k.resources ?? []) {
    if (path.isAbsolute(entry)) fail(dir, `resource '${entry}' is an absolute path (kustomize refuses it)`);
    const target = path.resolve(dir, entry);
    if (!existsSync(target)) fail(dir, `resource '${entry}' does not exist`);
    if (statSync(target).isDirectory()) {
      objects.push(...render(target, [...seen, dir]));       // a base: may be outside this directory
    } else {
      objects.push(...parseYamlDocuments(pathInRoot(dir, entry)));
    }
  }
  for (const spec of k.configMapGenerator ?? []) addGenerated(dir, objects, spec, generateConfigMap(dir, spec, options));

  // kustomize's order of the built-in transformers: patches, namespace, labels, images.
  const failHere = (message) => fail(dir, message);
  applyPatches(failHere, objects, k.patches ?? [], (file) => readFileSync(pathInRoot(dir, file), "utf8"));
  if (k.namespace) applyNamespace(dir, objects, k.namespace);
  applyLabels(dir, objects, k.labels ?? []);
  applyImages(failHere, objects, k.images ?? []);

  const ids = new Set();
  for (const obj of objects) {
    const id = resourceId(obj);
    if (ids.has(id)) fail(dir, `${id} is defined twice`);
    ids.add(id);
  }
  objects = sortLikeKustomize(objects);
  return objects;
}
