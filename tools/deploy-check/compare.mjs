#!/usr/bin/env node
// Compares this renderer's output for a kustomization with real kustomize output (for example
// `kubectl kustomize DIR`), object by object, and exits 1 on any difference. validate-deploy.sh runs
// it where a kubectl exists, to keep kustomize.mjs honest.
//   node compare.mjs KUSTOMIZATION_DIR KUSTOMIZE_OUTPUT.yaml
import { readFileSync } from "node:fs";
import { isDeepStrictEqual } from "node:util";
import { parseAllDocuments } from "yaml";
import { render, resourceId } from "./kustomize.mjs";

const [dir, file] = process.argv.slice(2);
if (!dir || !file) {
  console.error("usage: compare.mjs KUSTOMIZATION_DIR KUSTOMIZE_OUTPUT.yaml");
  process.exit(2);
}
const ours = new Map(render(dir).map((o) => [resourceId(o), o]));
const theirs = new Map(parseAllDocuments(readFileSync(file, "utf8")).map((d) => d.toJS()).filter(Boolean)
  .map((o) => [resourceId(o), o]));
const problems = [];
for (const id of new Set([...ours.keys(), ...theirs.keys()])) {
  if (!ours.has(id)) problems.push(`${id}: only in kustomize's output`);
  else if (!theirs.has(id)) problems.push(`${id}: only in ours`);
  else if (!isDeepStrictEqual(ours.get(id), theirs.get(id))) {
    problems.push(`${id}: differs:\n  ours:   ${JSON.stringify(ours.get(id))}\n  theirs: ${JSON.stringify(theirs.get(id))}`);
  }
}
const order = (ids) => [...ids].join("\n");
if (problems.length === 0 && order(ours.keys()) !== order(theirs.keys())) {
  problems.push(`objects in another order:\n  ours:   ${[...ours.keys()].join(" ")}\n  theirs: ${[...theirs.keys()].join(" ")}`);
}
if (problems.length) {
  console.log(`${dir}: ${problems.length} difference(s) from kustomize:\n${problems.join("\n")}`);
  process.exit(1);
}
console.log(`${dir}: the same ${ours.size} objects as kustomize`);
