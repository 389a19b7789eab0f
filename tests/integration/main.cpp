// doctest main for the integration tests, plus a listener that prints the output of every daemon a
// test case started when that test case fails.

#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <csignal>
#include <ostream>

#include "daemon_process.hpp"

namespace {

class DaemonOutputOnFailure : public doctest::IReporter {
 public:
  explicit DaemonOutputOnFailure(const doctest::ContextOptions& options) : out_(*options.cout) {}

  void test_case_start(const doctest::TestCaseData&) override { sluice::it::take_transcripts(); }
  void test_case_end(const doctest::CurrentTestCaseStats& stats) override {
    const auto transcripts = sluice::it::take_transcripts();
    if (stats.testCaseSuccess) return;
    for (const auto& transcript : transcripts) out_ << transcript;
    out_.flush();
  }

  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}

 private:
  std::ostream& out_;
};

}  // namespace

REGISTER_LISTENER("daemon-output", 1, DaemonOutputOnFailure);

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);  // a peer that closes early must be an error return, not a death
  doctest::Context context(argc, argv);
  return context.run();
}
