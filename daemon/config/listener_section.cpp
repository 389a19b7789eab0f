// A `listeners` item: bind address, service, limits, allow list, PROXY protocol.

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
  auto read_cidrs = [&](const char* key, std::vector<Cidr>& into) {
    for (const YAML::Node& item : keys.read_list(key, Need::optional)) {
      std::string why;
      if (auto cidr = cidr_value(item, why)) {
        into.push_back(*cidr);
      } else {
        diag_.error(item.Mark(), std::string(key) + ": " + why);
      }
    }
  };
  read_cidrs("allow", listener.allow);
  keys.read("idle_timeout", listener.idle_timeout, duration_value(Zero::refused));
  keys.read("backlog", listener.backlog, uint_value(1, 65535));
  keys.read("splice", listener.splice, bool_value);
  keys.read("accept_proxy", listener.accept_proxy, bool_value);
  keys.read("accept_proxy_timeout", listener.accept_proxy_timeout, duration_value(Zero::refused));
  read_cidrs("accept_proxy_from", listener.accept_proxy_from);
  if (!listener.accept_proxy && !listener.accept_proxy_from.empty()) {
    diag_.error(map["accept_proxy_from"].Mark(), "accept_proxy_from: needs accept_proxy: true");
  }
  keys.read("mode", listener.mode, one_of<ListenerMode>({{"tcp", ListenerMode::tcp}, {"http", ListenerMode::http}}));
  keys.finish();
  return listener;
}

}  // namespace sluice::config_yaml
