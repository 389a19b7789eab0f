// The `log` and `admin` sections.

#include <limits>

#include "sluice/config/config_parser.hpp"
#include "sluice/config/dns_config.hpp"
#include "sluice/config/yaml_values.hpp"

namespace sluice::config_yaml {

LogConfig ConfigParser::parse_log(const YAML::Node& map) {
  LogConfig log;
  KeyReader keys(map, "log", diag_);
  keys.read("level", log.level,
            one_of<std::string>({{"trace", "trace"},
                                 {"debug", "debug"},
                                 {"info", "info"},
                                 {"warn", "warn"},
                                 {"error", "error"}}));
  keys.read("format", log.format, one_of<LogFormat>({{"text", LogFormat::text}, {"json", LogFormat::json}}));
  keys.read("access_log", log.access_log, bool_value);
  keys.finish();
  return log;
}

AdminConfig ConfigParser::parse_admin(const YAML::Node& map) {
  AdminConfig admin;
  KeyReader keys(map, "admin", diag_);
  Endpoint bind;
  if (keys.read("bind", bind, bind_endpoint_value, Need::required)) admin.bind = bind;
  keys.read("worker_timeout", admin.worker_timeout, duration_value(Zero::refused));
  keys.finish();
  return admin;
}

}  // namespace sluice::config_yaml
