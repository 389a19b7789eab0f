#include "proxy_peers.hpp"

#include <sys/stat.h>

#include <fstream>
#include <stdexcept>
#include <thread>

#include "client.hpp"

namespace sluice::it {

namespace {

// Polls until `address` accepts a connection (the server has started), up to 10 s.
void wait_accepting(const Address& address, const std::string& what) {
  const auto deadline = Clock::now() + 10s;
  for (Client probe; Client::try_connect(address, 200ms, probe) != 0;) {
    if (Clock::now() >= deadline) throw std::runtime_error(what + " did not listen on " + address.to_string());
    std::this_thread::sleep_for(20ms);  // the polling period
  }
}

}  // namespace

ProxyProtocolNginx::ProxyProtocolNginx(const std::string& nginx) {
  ::chmod(directory.path().c_str(), 0755);  // the workers run as nobody
  http = Address{"127.0.0.1", free_port()};
  stream = Address{"127.0.0.1", free_port()};
  const std::string conf = directory.path() + "/nginx.conf";
  const std::string answer = R"("$proxy_protocol_addr $proxy_protocol_port\n")";
  std::ofstream(conf) << "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n"
                      << "worker_processes 1;\ndaemon off;\npid " << directory.path() << "/nginx.pid;\n"
                      << "error_log stderr;\nevents { worker_connections 256; }\n"
                      << "http {\n  access_log off;\n  server {\n    listen " << http.to_string()
                      << " proxy_protocol;\n    location / { return 200 " << answer << "; }\n"
                      << "    location = /xff { return 200 \"$http_x_forwarded_for\\n\"; }\n  }\n}\n"
                      << "stream {\n  server {\n    listen " << stream.to_string() << " proxy_protocol;\n"
                      << "    return " << answer << ";\n  }\n}\n";
  process = std::make_unique<DaemonProcess>(Command{{nginx, "-p", directory.path(), "-c", conf}});
  wait_accepting(http, "nginx");
  wait_accepting(stream, "nginx");
}

FrontHaproxy::FrontHaproxy(const std::string& haproxy, const Address& sluice, int version) {
  address = Address{"127.0.0.1", free_port()};
  const std::string conf = directory.path() + "/haproxy.cfg";
  std::ofstream(conf) << "defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n"
                      << "listen front\n  bind " << address.to_string() << "\n  server sluice " << sluice.to_string()
                      << (version == 2 ? " send-proxy-v2\n" : " send-proxy\n");
  process = std::make_unique<DaemonProcess>(Command{{haproxy, "-db", "-f", conf}});
  wait_accepting(address, "haproxy");
}

}  // namespace sluice::it
