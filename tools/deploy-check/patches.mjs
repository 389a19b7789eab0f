// kustomize's `patches:` and `images:` for kustomize.mjs, as far as deploy/ uses them:
//   - patches given by `path` or inline `patch`, applied to the objects a `target` selects (group,
//     version, kind, name, namespace as anchored regular expressions, as kustomize matches them) or,
//     for a strategic merge patch without a target, to the object of its own kind and name;
//   - a JSON 6902 patch (a YAML list of operations): add, remove, replace;
//   - a strategic merge patch (an object): maps merge, null deletes a key, a list is replaced (a
//     list Kubernetes merges by a key, such as containers or env, is refused when both sides have
//     it: deploy/ patches none, and this renderer does not merge them);
//   - images: name, newName, newTag, digest on every containers[] and initContainers[] image.
// Anything else is an error, so that a rendering this module cannot reproduce is never trusted.

import { parseAllDocuments } from "yaml";

// The lists Kubernetes' types tag patchStrategy merge (by their patchMergeKey; finalizers as a set): a
// strategic merge patch merges them element by element, which is refused below. Every other list
// (args, command, tolerations, envFrom, nodeSelectorTerms...) is replaced whole, as here.
const MERGED_LISTS = new Set([
  // PodSpec
  "containers", "initContainers", "ephemeralContainers", "volumes", "imagePullSecrets", "hostAliases",
  "topologySpreadConstraints", "resourceClaims", "schedulingGates",
  // Container; ports is ServiceSpec's too
  "env", "volumeMounts", "volumeDevices", "ports",
  // ObjectMeta; ServiceAccount
  "finalizers", "ownerReferences", "secrets",
]);

function parsePatch(fail, text, where) {
  const docs = parseAllDocuments(text);
  if (docs.length !== 1 || docs[0].errors.length) fail(`${where}: not one YAML document`);
  return docs[0].toJS();
}

const anchored = (pattern, value) => new RegExp(`^(?:${pattern})$`).test(value ?? "");

function selects(target, obj) {
  const [group, version] = obj.apiVersion.includes("/") ? obj.apiVersion.split("/") : ["", obj.apiVersion];
  const fields = { group, version, kind: obj.kind, name: obj.metadata.name, namespace: obj.metadata.namespace };
  return Object.entries(target).every(([key, pattern]) => anchored(pattern, fields[key]));
}

// --- JSON 6902 ---------------------------------------------------------------------------------------

function pointer(fail, path) {
  if (!path.startsWith("/")) fail(`JSON patch path '${path}' does not start with /`);
  return path.slice(1).split("/").map((s) => s.replaceAll("~1", "/").replaceAll("~0", "~"));
}

function applyOperation(fail, obj, op) {
  if (!["add", "remove", "replace"].includes(op.op)) fail(`JSON patch op '${op.op}' is not supported by this renderer`);
  const keys = pointer(fail, op.path);
  const last = keys.pop();
  let parent = obj;
  for (const key of keys) {
    parent = parent?.[Array.isArray(parent) ? Number(key) : key];
    if (parent === undefined || parent === null || typeof parent !== "object") fail(`JSON patch path '${op.path}' does not exist`);
  }
  if (Array.isArray(parent)) {
    const index = last === "-" ? parent.length : Number(last);
    const inRange = Number.isInteger(index) && index >= 0 && index <= parent.length - (op.op === "add" ? 0 : 1);
    if (!inRange) fail(`JSON patch path '${op.path}': no index ${last}`);
    if (op.op === "add") parent.splice(index, 0, structuredClone(op.value));
    else if (op.op === "remove") parent.splice(index, 1);
    else parent[index] = structuredClone(op.value);
    return;
  }
  if (op.op !== "add" && !(last in parent)) fail(`JSON patch path '${op.path}' does not exist`);
  if (op.op === "remove") delete parent[last];
  else parent[last] = structuredClone(op.value);
}

// --- strategic merge ---------------------------------------------------------------------------------

function strategicMerge(fail, base, patch) {
  const out = structuredClone(base ?? {});
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith("$")) fail(`strategic merge patch directive '${key}' is not supported by this renderer`);
    if (value === null) delete out[key];
    else if (Array.isArray(value) && MERGED_LISTS.has(key) && out[key] !== undefined) {
      fail(`strategic merge patch of the list '${key}': merging by key is not supported by this renderer`);
    } else if (typeof value === "object" && !Array.isArray(value) && typeof out[key] === "object" && !Array.isArray(out[key])) {
      out[key] = strategicMerge(fail, out[key], value);
    } else out[key] = structuredClone(value);
  }
  return out;
}

// --- the transformers ----------------------------------------------------------------------------------

// Applies the kustomization's `patches:` to `objects` in place. `readFile(relative)` reads a file
// of the kustomization (load restrictor included); `fail(message)` throws.
export function applyPatches(fail, objects, specs, readFile) {
  for (const [i, spec] of specs.entries()) {
    const where = `patches[${i}]`;
    for (const key of Object.keys(spec)) {
      if (!["path", "patch", "target"].includes(key)) fail(`${where}: key '${key}' is not supported by this renderer`);
    }
    if ((spec.path === undefined) === (spec.patch === undefined)) fail(`${where}: give exactly one of path and patch`);
    const patch = parsePatch(fail, spec.path ? readFile(spec.path) : spec.patch, spec.path ?? where);
    const target = spec.target ?? (Array.isArray(patch) ? null : { kind: patch?.kind, name: patch?.metadata?.name });
    if (spec.target == null && Array.isArray(patch)) fail(`${where}: a JSON patch needs a target`);
    if (spec.target == null && (!target.kind || !target.name)) {
      fail(`${where}: a strategic merge patch without a target needs its own kind and metadata.name`);
    }
    if (!target.kind && !target.name) fail(`${where}: the target names neither a kind nor a name`);
    for (const key of Object.keys(target)) {
      if (!["group", "version", "kind", "name", "namespace"].includes(key)) fail(`${where}: target key '${key}' is not supported by this renderer`);
    }
    const matched = objects.filter((obj) => selects(target, obj));
    if (matched.length === 0) fail(`${where}: the target ${JSON.stringify(target)} selects no object`);
    for (const obj of matched) {
      if (Array.isArray(patch)) {
        for (const op of patch) applyOperation((m) => fail(`${where}: ${m}`), obj, op);
      } else {
        // The object keeps its own kind and name (a patch with a target may name another).
        const body = { ...patch, metadata: { ...patch.metadata } };
        for (const key of ["apiVersion", "kind"]) delete body[key];
        for (const key of ["name", "namespace"]) delete body.metadata[key];
        const merged = strategicMerge((m) => fail(`${where}: ${m}`), obj, body);
        for (const key of Object.keys(obj)) delete obj[key];
        Object.assign(obj, merged);
      }
    }
  }
}

// The image name without its tag or digest: "sluice:dev" -> "sluice", "host:5000/x:1" -> "host:5000/x".
function imageName(image) {
  const noDigest = image.split("@")[0];
  const slash = noDigest.lastIndexOf("/");
  const colon = noDigest.lastIndexOf(":");
  return colon > slash ? noDigest.slice(0, colon) : noDigest;
}

function rewriteImage(entry, image) {
  if (imageName(image) !== entry.name) return image;
  let tag = image.slice(imageName(image).length).split("@")[0];
  if (entry.newTag !== undefined) tag = `:${entry.newTag}`;
  if (entry.digest !== undefined) return `${entry.newName ?? entry.name}@${entry.digest}`;
  return `${entry.newName ?? entry.name}${tag}`;
}

// Applies the kustomization's `images:` to every container and init container of `objects`.
export function applyImages(fail, objects, entries) {
  for (const entry of entries) {
    for (const key of Object.keys(entry)) {
      if (!["name", "newName", "newTag", "digest"].includes(key)) fail(`images: key '${key}' is not supported by this renderer`);
    }
    if (!entry.name) fail("images: an entry without name");
  }
  const visit = (value) => {
    if (Array.isArray(value)) return value.forEach(visit);
    if (value === null || typeof value !== "object") return;
    for (const [key, child] of Object.entries(value)) {
      if ((key === "containers" || key === "initContainers") && Array.isArray(child)) {
        for (const c of child) {
          if (typeof c?.image === "string") for (const entry of entries) c.image = rewriteImage(entry, c.image);
        }
      }
      visit(child);
    }
  };
  visit(objects);
}
