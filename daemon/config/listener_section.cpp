// A `listeners` item: bind address, service, limits, allow list.

#include <limits>

#include "sluice/config/config_parser.hpp"
#include "sluice/config/dns_config.hpp"
#include "sluice/config/yaml_values.hpp"

namespace sluice::config_yaml {

ListenerConfig ConfigParser::parse_listener(const YAML::Node& map, std::string context) {
  ListenerConfig listener;
  KeyReader keys(map, std::move(context), diag_);
  read_item_name(keys, listener.name, listener_name_value, "listener", "", listener_names_, diag_);
  keys.read("bind", listener.bind, bind_endpoint_value, Need::required);
  if (const auto* service = keys.read("service", listener.service, name_value, Need::required)) {
    service_references_.push_back({keys.context(), listener.service, service->value.Mark()});
  }
  keys.read("max_connections", listener.max_connections,
            uint_value(1, std::numeric_limits<std::uint32_t>::max()));
  for (const YAML::Node& item : keys.read_list("allow", Need::optional)) {
    std::string why;
    if (auto cidr = cidr_value(item, why)) {
      listener.allow.push_back(*cidr);
    } else {
      diag_.error(item.Mark(), "allow: " + why);
    }
  }
  keys.read("idle_timeout", listener.idle_timeout, duration_value(Zero::refused));
  keys.read("backlog", listener.backlog, uint_value(1, 65535));
  keys.read("splice", listener.splice, bool_value);
  keys.read("accept_proxy", listener.accept_proxy, bool_value);
  keys.read("accept_proxy_timeout", listener.accept_proxy_timeout, duration_value(Zero::refused));
  keys.read("mode", listener.mode, one_of<ListenerMode>({{"tcp", ListenerMode::tcp}, {"http", ListenerMode::http}}));
  keys.finish();
  return listener;
}

}  // namespace sluice::config_yaml
