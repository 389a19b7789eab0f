#!/usr/bin/env node
// Prints the rendered manifests of a kustomization, like `kubectl kustomize DIR`:
//   node tools/deploy-check/render.mjs deploy/overlays/plain-prometheus
import { stringify } from "yaml";
import { render, KustomizeError } from "./kustomize.mjs";

const dir = process.argv[2];
if (!dir || process.argv.length > 3 || dir === "-h" || dir === "--help") {
  console.error("usage: render.mjs KUSTOMIZATION_DIR");
  process.exit(2);
}
try {
  process.stdout.write(render(dir).map((obj) => stringify(obj, { lineWidth: 0 })).join("---\n"));
} catch (error) {
  if (!(error instanceof KustomizeError)) throw error;
  console.error(`render: ${error.message}`);
  process.exit(1);
}
