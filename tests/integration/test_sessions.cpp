// A session's connect that fails at once (uv_tcp_connect itself returns the error) is reported on
// the next loop turn, never from inside the service's dispatch: the retry and the release of the
// slot go through the queue like any other, and every queued client is served.

#include <doctest/doctest.h>

#include <vector>

#include "test_support.hpp"

#include "harness.hpp"

using namespace sluice::it;

TEST_CASE("a backend whose connect fails at once: queued clients are retried on the good one, all served") {
  NameServer good("good");
  // TCP to the broadcast address is refused by the kernel inside connect(2) (ENETUNREACH).
  const Address unreachable{"255.255.255.255", 9};
  // per_backend: clients queued for the failing backend (one slot) are dispatched to it from its
  // queue (the connect fails inside that walk), and their one retry goes to the good one.
  ServiceSpec service{.retries = 1,
                      .backends = {{.name = "unreachable", .address = unreachable, .max_connections = 1},
                                   {.name = "good", .address = good.address()}},
                      .queue = QueueSpec{.mode = "per_backend", .max_length = 100, .timeout = "5s"}};
  DaemonProcess daemon(single_service_config(service));
  const Address proxy = daemon.wait_listening_on("web");

  constexpr int kClients = 8;
  std::vector<Client> clients;
  for (int i = 0; i < kClients; ++i) clients.push_back(Client::connect(proxy));
  for (int i = 0; i < kClients; ++i) {
    const ReadResult result = clients[i].read_until_end(5s);
    INFO("client " << i << " ended with " << result.end << " after \"" << result.data << "\"");
    CHECK(result.end == End::eof);
    CHECK(result.data == "good\n");
  }
  CHECK(good.accepted() == kClients);
  const std::string failed = "connect_failed service=web backend=unreachable address=255.255.255.255:9 error=ENETUNREACH";
  CHECK_MESSAGE(daemon.wait_for_line(failed, 2s).has_value(), "no line containing: " << failed);
}
