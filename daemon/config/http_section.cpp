// The top-level `http` section: timeouts and limits of `mode: http` listeners.

#include "sluice/config/config_parser.hpp"
#include "sluice/config/yaml_values.hpp"

namespace sluice::config_yaml {

HttpConfig ConfigParser::parse_http(const YAML::Node& map) {
  HttpConfig http;
  KeyReader keys(map, "http", diag_);
  keys.read("request_timeout", http.request_timeout, duration_value(Zero::refused));
  keys.read("response_timeout", http.response_timeout, duration_value(Zero::refused));
  // Below 256 bytes not even an ordinary request line with a Host header fits.
  keys.read("max_header_bytes", http.max_header_bytes, uint_value(256, 1024 * 1024));
  keys.read("pool_idle_timeout", http.pool_idle_timeout, duration_value(Zero::refused));
  keys.read("pool_max_idle", http.pool_max_idle, uint_value(0, 100000));
  keys.read("forwarded", http.forwarded, bool_value);
  // Each request in flight may hold a response buffer (HttpExchange::kAheadBufferBytes).
  keys.read("pipeline_depth", http.pipeline_depth, uint_value(1, 64));
  keys.finish();
  return http;
}

}  // namespace sluice::config_yaml
