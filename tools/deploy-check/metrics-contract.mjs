// The Sluice metric families that DESIGN.md section 4 (and the README) promise, with their types, and
// the process_* families of the Sluice process that the dashboard shows.
// Dashboards and alert rules may only use these; scripts/validate-deploy.sh also checks them against
// a live /metrics when a sluice binary is at hand.
export const METRIC_CONTRACT = {
  sluice_listener_connections_accepted_total: "counter",
  sluice_listener_connections_rejected_total: "counter",
  sluice_listener_connections_active: "gauge",
  sluice_service_queue_length: "gauge",
  sluice_service_queue_wait_seconds: "histogram",
  sluice_service_queue_length_seconds_total: "counter",
  sluice_backend_up: "gauge",
  sluice_backend_max_connections: "gauge",
  sluice_backend_connections_active: "gauge",
  sluice_backend_queue_length: "gauge",
  sluice_backend_connections_total: "counter",
  sluice_backend_connect_failures_total: "counter",
  sluice_backend_resolve_failures_total: "counter",
  sluice_backend_state_changes_total: "counter",
  sluice_backend_queue_wait_seconds: "histogram",
  sluice_backend_connect_seconds: "histogram",
  sluice_backend_session_seconds: "histogram",
  sluice_backend_connections_active_seconds_total: "counter",
  sluice_backend_busy_seconds_total: "counter",
  sluice_backend_queue_length_seconds_total: "counter",
  sluice_backend_received_bytes_total: "counter",
  sluice_backend_sent_bytes_total: "counter",
  // The scaling signal (README "The scaling signal"): only for services with `scaling`, once warmed up.
  sluice_service_arrival_rate: "gauge",
  sluice_service_mean_service_seconds: "gauge",
  sluice_service_offered_load: "gauge",
  sluice_service_utilisation: "gauge",
  sluice_service_predicted_queue_wait_seconds: "gauge",
  sluice_service_recommended_backends: "gauge",
  sluice_service_recommended_slots: "gauge",
  sluice_service_arrival_cv: "gauge",
  sluice_service_service_cv: "gauge",
  sluice_service_scaling_corrected: "gauge",
  sluice_config_reloads_total: "counter",
  sluice_config_last_reload_successful: "gauge",
  sluice_config_generation: "gauge",
  sluice_backend_set_size: "gauge",
  sluice_build_info: "gauge",
  process_cpu_seconds_total: "counter",
  process_resident_memory_bytes: "gauge",
};

const HISTOGRAM_SUFFIXES = ["_bucket", "_sum", "_count"];

// The sluice_* and process_* series names that a PromQL expression mentions.
export function seriesNames(expr) {
  return [...new Set(expr.match(/\b(?:sluice|process)_[a-zA-Z0-9_]+\b/g) ?? [])];
}

// The family of a series name (`x_bucket` of histogram `x` is `x`), or null when it is not in the
// contract or uses a suffix its type does not have.
export function contractFamily(series) {
  if (METRIC_CONTRACT[series] && METRIC_CONTRACT[series] !== "histogram") return series;
  for (const suffix of HISTOGRAM_SUFFIXES) {
    const base = series.endsWith(suffix) ? series.slice(0, -suffix.length) : null;
    if (base && METRIC_CONTRACT[base] === "histogram") return base;
  }
  return null;
}

// Families and sample names of a Prometheus text exposition: { types: Map(family -> type), samples: Set }.
export function parseExposition(text) {
  const types = new Map();
  const samples = new Set();
  for (const line of text.split("\n")) {
    const type = line.match(/^# TYPE (\S+) (\S+)/);
    if (type) types.set(type[1], type[2]);
    else if (line && !line.startsWith("#")) samples.add(line.match(/^[^{\s]+/)[0]);
  }
  return { types, samples };
}
