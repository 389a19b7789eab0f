// Prints the library's Erlang C and M/M/c mean wait for each "c lambda mu" line read on stdin, as
// "c lambda mu C Wq" with every digit a double holds ("none none" when rho >= 1), for
// queueing_crosscheck.py to compare with scripts/experiment/queueing.py.

#include <cinttypes>
#include <cstdio>
#include <exception>

#include "sluice/scaling/erlang_c.hpp"

int main() {
  std::uint32_t c = 0;
  double lambda = 0, mu = 0;
  int fields = 0;
  try {
    while ((fields = std::scanf("%" SCNu32 " %lf %lf", &c, &lambda, &mu)) == 3) {
      const sluice::scaling::Queue q{.lambda = lambda, .mu = mu, .slots = c};
      const auto erlang = sluice::scaling::erlang_c(c, lambda / mu);
      const auto wait = sluice::scaling::mean_wait(q);
      std::printf("%" PRIu32 " %.17g %.17g ", c, lambda, mu);
      if (erlang && wait) {
        std::printf("%.17g %.17g\n", *erlang, *wait);
      } else {
        std::printf("none none\n");
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "erlang_grid: %s\n", e.what());
    return 1;
  }
  if (fields != EOF) {
    std::fprintf(stderr, "erlang_grid: expected lines of \"c lambda mu\"\n");
    return 1;
  }
  return 0;
}
