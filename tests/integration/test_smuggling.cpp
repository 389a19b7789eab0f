// The request smuggling corpus (tests/data/smuggling.txt) against the real daemon's admin server,
// which reads requests with the one HTTP parser: each malformed or ambiguous request gets exactly
// one answer, 400 or 431, and the connection closed (nothing after it is read as a request), each
// valid but unusual one an ordinary answer (on a connection kept alive); the server is fine
// afterwards and exits cleanly.

#include <doctest/doctest.h>

#include <csignal>
#include <string>

#include "backends.hpp"
#include "client.hpp"
#include "daemon_process.hpp"
#include "harness.hpp"
#include "sluice/http/message.hpp"
#include "smuggling_corpus.hpp"

using namespace sluice::it;

namespace {

// The one answer to `request`, or 0 when the server closed without a whole one; `answers` counts
// the responses on the connection and `closed` says whether the server closed it on its own. A
// refused request must end the connection; after a valid one the server may keep it open (the
// admin server keeps connections alive), so then the first whole answer is enough.
int answer(const Address& server, const std::string& request, bool refused, std::size_t& answers, bool& closed) {
  Client client = Client::connect(server);
  client.send_all(request);
  sluice::http::MessageReader reader(sluice::http::Kind::response);
  if (refused) {
    const ReadResult result = client.read_until_end(5s);  // no FIN from us: the server must close
    closed = result.end == End::eof;
    reader.feed(result.data);
    reader.finish();
  } else {
    while (reader.messages().empty()) {
      if (reader.feed(client.read_exact(1, 5s)).stop == sluice::http::Stop::error) break;
    }
    closed = false;
  }
  answers = reader.messages().size();
  return answers == 0 ? 0 : reader.messages().front().head.status;
}

}  // namespace

TEST_CASE("smuggling: the admin server answers every malformed request of the corpus 400 or 431 and closes") {
  NameServer backend("backend");
  DaemonProcess daemon(name_servers_config({&backend}));
  daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);

  std::size_t refused = 0;
  for (const sluice::test::SmugglingCase& c : sluice::test::smuggling_corpus()) {
    CAPTURE(c.line);
    CAPTURE(c.name);
    std::size_t answers = 0;
    bool closed = false;
    const bool refuse = c.expect != "ok";
    const int status = answer(admin, c.request, refuse, answers, closed);
    CHECK(answers == 1);  // one request read, never a second one smuggled after it
    CHECK((closed || !refuse));
    if (!refuse) {
      CHECK((status == 200 || status == 405));  // /healthz, or a method the admin server does not serve
    } else {
      CHECK(status == std::stoi(c.expect));
      ++refused;
    }
  }
  CHECK(refused >= 40);

  std::size_t answers = 0;
  bool closed = false;
  CHECK(answer(admin, "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n", false, answers, closed) == 200);
  CHECK(backend.accepted() == 0);  // the admin server never forwards anything
  daemon.send_signal(SIGTERM);
  CHECK(daemon.wait_exit(10s) == 0);
}
