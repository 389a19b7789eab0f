#include "stream_echo.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "client.hpp"
#include "data.hpp"

namespace sluice::it {

StreamOutcome stream_echo(const Address& proxy, std::uint64_t size, std::uint64_t seed, Millis stall_timeout) {
  StreamOutcome outcome;
  try {
    Client client = Client::connect(proxy, 5s);
    ByteStream source(seed);
    Sha256 sent_hash;
    Sha256 received_hash;
    std::vector<char> out(128 * 1024);
    std::vector<char> in(256 * 1024);
    std::size_t out_begin = 0;
    std::size_t out_end = 0;
    std::uint64_t generated = 0;
    bool write_shut = false;
    for (;;) {
      if (out_begin == out_end && generated < size) {
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(out.size(), size - generated));
        source.fill(out.data(), n);
        sent_hash.update(out.data(), n);
        generated += n;
        out_begin = 0;
        out_end = n;
      }
      if (out_begin == out_end && !write_shut) {
        client.shutdown_write();
        write_shut = true;
      }
      pollfd p{client.fd(), static_cast<short>(POLLIN | (out_begin < out_end ? POLLOUT : 0)), 0};
      const int ready = ::poll(&p, 1, static_cast<int>(stall_timeout.count()));
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) {
        outcome.failure = "no progress for " + std::to_string(stall_timeout.count()) + " ms";
        break;
      }
      if ((p.revents & (POLLOUT | POLLERR)) && out_begin < out_end) {
        const ssize_t n = ::send(client.fd(), out.data() + out_begin, out_end - out_begin, MSG_NOSIGNAL);
        if (n > 0) {
          out_begin += static_cast<std::size_t>(n);
          outcome.sent += static_cast<std::uint64_t>(n);
        } else if (errno != EAGAIN && errno != EINTR) {
          outcome.failure = "send: " + errno_text(errno);
          break;
        }
      }
      if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
        const ssize_t n = ::recv(client.fd(), in.data(), in.size(), 0);
        if (n > 0) {
          received_hash.update(in.data(), static_cast<std::size_t>(n));
          outcome.received += static_cast<std::uint64_t>(n);
        } else if (n == 0) {
          if (!write_shut) outcome.failure = "EOF before everything was sent";
          break;
        } else if (errno != EAGAIN && errno != EINTR) {
          outcome.failure = "recv: " + errno_text(errno);
          break;
        }
      }
    }
    outcome.sent_sha = sent_hash.hex();
    outcome.received_sha = received_hash.hex();
  } catch (const std::exception& e) {
    outcome.failure = e.what();
  }
  return outcome;
}

std::vector<StreamOutcome> stream_echo_concurrently(const Address& proxy, int connections, std::uint64_t size,
                                                    std::uint64_t first_seed, Millis stall_timeout) {
  std::vector<StreamOutcome> outcomes(static_cast<std::size_t>(connections));
  std::vector<std::jthread> clients;
  for (int i = 0; i < connections; ++i) {
    clients.emplace_back([&, i] { outcomes[i] = stream_echo(proxy, size, first_seed + i, stall_timeout); });
  }
  clients.clear();  // joins
  return outcomes;
}

void check_streams_intact(const std::vector<StreamOutcome>& outcomes, std::uint64_t size) {
  for (std::size_t i = 0; i < outcomes.size(); ++i) {
    INFO("connection " << i << ": " << outcomes[i].failure);
    CHECK(outcomes[i].failure.empty());
    CHECK(outcomes[i].sent == size);
    CHECK(outcomes[i].received == size);
    CHECK(outcomes[i].received_sha == outcomes[i].sent_sha);
  }
}

}  // namespace sluice::it
