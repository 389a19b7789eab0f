#include "loadgen.hpp"

#include <netinet/in.h>
#include <uv.h>

#include <algorithm>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

#include "../common/hr_timer.hpp"
#include "../common/random.hpp"
#include "http_response.hpp"
#include "sluice/uv/handle.hpp"

namespace sluice::tools {

const char* error_name(RequestError error) {
  switch (error) {
    case RequestError::none: return "";
    case RequestError::connect_failed: return "connect_failed";
    case RequestError::closed: return "closed";
    case RequestError::reset: return "reset";
    case RequestError::timeout: return "timeout";
    case RequestError::malformed: return "malformed";
    case RequestError::unfinished: return "unfinished";
  }
  return "?";
}

namespace {

constexpr std::uint64_t kSweepIntervalMs = 20;  // timeouts and the drain deadline are checked this often
constexpr std::size_t kReadBufferBytes = 64 * 1024;

class Generator;

// One request on its own connection (new-connection mode). Freed in its close callback; libuv runs
// the connect, write and shutdown callbacks (cancelled, if need be) before that.
struct Exchange {
  uv_tcp_t tcp{};
  uv_connect_t connect{};
  uv_write_t write{};
  uv_shutdown_t shutdown{};
  Generator* generator = nullptr;
  std::size_t record = 0;
  std::string input;
  bool finished = false;                      // the record is final
  std::list<Exchange*>::iterator in_flight;  // position in Generator::exchanges_, while !finished
};

// One keep-alive connection (persistent mode). Freed in its close callback; a broken one is replaced by
// a new Channel in the same slot when the next request is given to that slot.
struct Channel {
  uv_tcp_t tcp{};
  uv_connect_t connect{};
  Generator* generator = nullptr;
  std::uint32_t index = 0;
  bool connected = false;
  bool closing = false;
  std::deque<std::size_t> outstanding;  // written (or waiting for the connect), answered in this order
  std::deque<std::size_t> unsent;       // given to this slot before the connect completed
  std::string input;
};

class Generator {
 public:
  explicit Generator(const LoadOptions& options);
  LoadResult run();

 private:
  // Arrivals.
  void begin_arrivals();
  void on_arrivals_due();
  void fire(std::uint64_t scheduled_ns);
  void end_arrivals();
  bool arrivals_bounded_out() const;

  // New-connection mode.
  void start_exchange(std::size_t record);
  void on_exchange_connect(Exchange& x, int status);
  void on_exchange_read(Exchange& x, ssize_t nread);
  void finish_exchange(Exchange& x, RequestError error, const HttpResponse* response);

  // Persistent mode.
  Channel* open_channel(std::uint32_t index);
  void on_channel_connect(Channel& channel, int status);
  void on_channel_read(Channel& channel, ssize_t nread);
  void send_on_channel(Channel& channel, std::size_t record);
  void fail_channel(Channel& channel, RequestError error);
  std::uint32_t choose_channel();

  // Records and the end of the run.
  void complete(std::size_t record, const HttpResponse& response);
  void fail(std::size_t record, RequestError error);
  void sweep();
  void maybe_finish();
  void shut_down();
  static void on_signal(uv_signal_t* handle, int signum);

  const LoadOptions options_;
  std::string request_text_;
  uv_loop_t loop_{};
  std::unique_ptr<HrTimerQueue> timers_;
  uv_timer_t sweep_timer_{};
  uv_signal_t sigint_{};
  uv_signal_t sigterm_{};
  ArrivalProcess arrival_process_;
  Random spread_random_;
  LoadResult result_;
  std::map<std::string, std::int32_t> backend_index_;  // "NAME\nNODE" -> index

  double next_offset_ns_ = 0;  // the next arrival, relative to start_ns
  std::uint64_t arrivals_ = 0;
  bool arrivals_done_ = false;
  std::uint64_t drain_deadline_ns_ = 0;
  std::uint64_t outstanding_ = 0;  // records sent (or assigned) and not final yet
  bool shutting_down_ = false;
  int signals_ = 0;
  std::string setup_error_;

  std::list<Exchange*> exchanges_;  // new-connection: in flight, oldest first
  std::vector<Channel*> channels_;  // persistent: the current connection of each slot (null: none)
  std::uint32_t channels_connected_ = 0;
  std::uint64_t round_robin_next_ = 0;
  char read_buffer_[kReadBufferBytes];
};

Generator::Generator(const LoadOptions& options)
    : options_(options),
      arrival_process_(options.rate, options.profile, options.seed, static_cast<double>(options.duration_ns)),
      spread_random_(options.seed ^ 0x5bd1e9955bd1e995ULL) {
  request_text_ = "GET " + options_.path + " HTTP/1.1\r\nHost: " + options_.host + "\r\n";
  if (options_.mode == LoadMode::new_connection) request_text_ += "Connection: close\r\n";
  request_text_ += "\r\n";
}

LoadResult Generator::run() {
  int rc = uv_loop_init(&loop_);
  if (rc < 0) throw std::runtime_error(std::string("uv_loop_init: ") + uv_strerror(rc));
  timers_ = std::make_unique<HrTimerQueue>(&loop_);
  // Only resource exhaustion can fail these, and then no run can be measured.
  auto must = [](int code, const char* what) {
    if (code < 0) throw std::runtime_error(std::string(what) + ": " + uv_strerror(code));
  };
  must(uv_timer_init(&loop_, &sweep_timer_), "uv_timer_init");
  must(uv_signal_init(&loop_, &sigint_), "uv_signal_init");
  must(uv_signal_init(&loop_, &sigterm_), "uv_signal_init");
  sweep_timer_.data = sigint_.data = sigterm_.data = this;
  must(uv_timer_start(
           &sweep_timer_, [](uv_timer_t* t) { static_cast<Generator*>(t->data)->sweep(); }, kSweepIntervalMs,
           kSweepIntervalMs),
       "uv_timer_start");
  must(uv_signal_start(&sigint_, on_signal, SIGINT), "uv_signal_start");
  must(uv_signal_start(&sigterm_, on_signal, SIGTERM), "uv_signal_start");

  std::uint64_t expected = options_.requests;
  if (expected == 0) {
    const double seconds = static_cast<double>(options_.duration_ns) / 1e9;
    const double mean = options_.profile ? options_.profile->expected(0, seconds) : options_.rate * seconds;
    expected = static_cast<std::uint64_t>(mean * 1.1) + 1024;
  }
  result_.records.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(expected, 4'000'000)));

  if (options_.mode == LoadMode::persistent) {
    channels_.assign(options_.connections, nullptr);
    for (std::uint32_t i = 0; i < options_.connections; ++i) channels_[i] = open_channel(i);
  } else {
    begin_arrivals();
  }

  uv_run(&loop_, UV_RUN_DEFAULT);
  timers_.reset();
  uv_run(&loop_, UV_RUN_DEFAULT);  // the timer queue's close callback
  rc = uv_loop_close(&loop_);
  if (rc < 0) throw std::runtime_error(std::string("uv_loop_close: ") + uv_strerror(rc));
  if (!setup_error_.empty()) throw std::runtime_error(setup_error_);
  if (result_.end_ns == 0) result_.end_ns = uv_hrtime();
  return std::move(result_);
}

// ------------------------------------------------------------------------------------------------------------
// Arrivals.

void Generator::begin_arrivals() {
  result_.start_ns = uv_hrtime();
  next_offset_ns_ = arrival_process_.next_ns();
  if (arrivals_bounded_out()) return end_arrivals();
  timers_->schedule(result_.start_ns + static_cast<std::uint64_t>(next_offset_ns_), [this] { on_arrivals_due(); });
}

bool Generator::arrivals_bounded_out() const {
  if (options_.requests > 0 && arrivals_ >= options_.requests) return true;
  return options_.duration_ns > 0 && next_offset_ns_ >= static_cast<double>(options_.duration_ns);
}

// Sends every arrival that is due (more than one when the loop woke late), then sleeps until the next.
void Generator::on_arrivals_due() {
  if (arrivals_done_) return;
  const std::uint64_t now = uv_hrtime();
  std::uint64_t next = result_.start_ns + static_cast<std::uint64_t>(next_offset_ns_);
  while (next <= now) {
    fire(next);
    next_offset_ns_ = arrival_process_.next_ns();
    if (arrivals_bounded_out()) return end_arrivals();
    next = result_.start_ns + static_cast<std::uint64_t>(next_offset_ns_);
  }
  timers_->schedule(next, [this] { on_arrivals_due(); });
}

void Generator::fire(std::uint64_t scheduled_ns) {
  ++arrivals_;
  const std::size_t record = result_.records.size();
  result_.records.emplace_back();
  result_.records[record].scheduled_ns = scheduled_ns;
  ++outstanding_;
  if (options_.mode == LoadMode::new_connection) return start_exchange(record);

  const std::uint32_t index = choose_channel();
  Channel* channel = channels_[index];
  if (channel == nullptr) channel = channels_[index] = open_channel(index);  // replaces a broken one
  result_.records[record].connection = index;
  if (channel == nullptr) return fail(record, RequestError::connect_failed);
  if (channel->connected) {
    send_on_channel(*channel, record);
  } else {
    channel->unsent.push_back(record);
  }
}

void Generator::end_arrivals() {
  if (arrivals_done_) return;
  arrivals_done_ = true;
  result_.arrivals_end_ns = uv_hrtime();
  drain_deadline_ns_ = result_.arrivals_end_ns + options_.drain_timeout_ns;
  maybe_finish();
}

// ------------------------------------------------------------------------------------------------------------
// New-connection mode.

void Generator::start_exchange(std::size_t record) {
  auto x = std::make_unique<Exchange>();
  x->generator = this;
  x->record = record;
  x->tcp.data = x->connect.data = x.get();
  RequestRecord& r = result_.records[record];
  if (uv_tcp_init(&loop_, &x->tcp) < 0) {
    r.sent_ns = uv_hrtime();
    return fail(record, RequestError::connect_failed);
  }
  Exchange& exchange = *x.release();  // freed in the close callback from here on
  exchange.in_flight = exchanges_.insert(exchanges_.end(), &exchange);
  (void)uv_tcp_nodelay(&exchange.tcp, 1);  // latency only: a failure changes no result
  r.sent_ns = uv_hrtime();
  const int rc = uv_tcp_connect(&exchange.connect, &exchange.tcp, sluice::as_sockaddr(&options_.target),
                                [](uv_connect_t* req, int status) {
                                  auto* e = static_cast<Exchange*>(req->data);
                                  e->generator->on_exchange_connect(*e, status);
                                });
  if (rc < 0) finish_exchange(exchange, RequestError::connect_failed, nullptr);
}

void Generator::on_exchange_connect(Exchange& x, int status) {
  if (status == UV_ECANCELED || x.finished) return;
  if (status < 0) return finish_exchange(x, RequestError::connect_failed, nullptr);
  RequestRecord& r = result_.records[x.record];
  r.connected_ns = uv_hrtime();
  sockaddr_storage local{};
  int length = sizeof local;
  if (uv_tcp_getsockname(&x.tcp, sluice::as_sockaddr(&local), &length) == 0) {
    r.local_port = ntohs(sluice::as_ipv4(sluice::as_sockaddr(&local))->sin_port);  // same offset for IPv6
  }
  auto* stream = sluice::as_stream(&x.tcp);
  uv_buf_t buf = uv_buf_init(request_text_.data(), static_cast<unsigned>(request_text_.size()));
  if (uv_write(&x.write, stream, &buf, 1, nullptr) < 0) return finish_exchange(x, RequestError::reset, nullptr);
  // The request is all we send: a FIN after it lets the proxy finish the client side early.
  if (options_.half_close && uv_shutdown(&x.shutdown, stream, nullptr) < 0) {
    return finish_exchange(x, RequestError::reset, nullptr);
  }
  const int rc = uv_read_start(
      stream,
      [](uv_handle_t* h, std::size_t, uv_buf_t* b) {
        auto* e = static_cast<Exchange*>(h->data);
        *b = uv_buf_init(e->generator->read_buffer_, sizeof e->generator->read_buffer_);
      },
      [](uv_stream_t* s, ssize_t nread, const uv_buf_t* b) {
        auto* e = static_cast<Exchange*>(s->data);
        if (nread > 0) e->input.append(b->base, static_cast<std::size_t>(nread));
        e->generator->on_exchange_read(*e, nread);
      });
  if (rc < 0) finish_exchange(x, RequestError::reset, nullptr);
}

void Generator::on_exchange_read(Exchange& x, ssize_t nread) {
  if (x.finished || nread == 0) return;
  HttpResponse response;
  const bool eof = nread == UV_EOF;
  if (nread < 0 && !eof) return finish_exchange(x, RequestError::reset, nullptr);
  switch (take_response(x.input, response, eof)) {
    case ResponseParse::complete:
      return finish_exchange(x, RequestError::none, &response);
    case ResponseParse::malformed:
      return finish_exchange(x, RequestError::malformed, nullptr);
    case ResponseParse::incomplete:
      if (eof) finish_exchange(x, RequestError::closed, nullptr);  // turned away before any answer
      return;
  }
}

// Makes the record final and closes the connection (the response is complete: nothing more to read).
void Generator::finish_exchange(Exchange& x, RequestError error, const HttpResponse* response) {
  if (x.finished) return;
  x.finished = true;
  exchanges_.erase(x.in_flight);
  if (response != nullptr) {
    complete(x.record, *response);
  } else {
    fail(x.record, error);
  }
  uv_close(sluice::as_handle(&x.tcp), [](uv_handle_t* h) { delete static_cast<Exchange*>(h->data); });
  maybe_finish();
}

// ------------------------------------------------------------------------------------------------------------
// Persistent mode.

Channel* Generator::open_channel(std::uint32_t index) {
  auto channel = std::make_unique<Channel>();
  channel->generator = this;
  channel->index = index;
  channel->tcp.data = channel->connect.data = channel.get();
  if (uv_tcp_init(&loop_, &channel->tcp) < 0) return nullptr;
  Channel* c = channel.release();  // freed in the close callback from here on
  (void)uv_tcp_nodelay(&c->tcp, 1);  // latency only: a failure changes no result
  const int rc = uv_tcp_connect(&c->connect, &c->tcp, sluice::as_sockaddr(&options_.target),
                                [](uv_connect_t* req, int status) {
                                  auto* ch = static_cast<Channel*>(req->data);
                                  ch->generator->on_channel_connect(*ch, status);
                                });
  if (rc < 0) {
    c->closing = true;
    uv_close(sluice::as_handle(&c->tcp), [](uv_handle_t* h) { delete static_cast<Channel*>(h->data); });
    return nullptr;
  }
  return c;
}

void Generator::on_channel_connect(Channel& channel, int status) {
  if (status == UV_ECANCELED || channel.closing) return;
  if (status < 0) {
    if (result_.start_ns == 0) {  // before the first arrival: the run cannot be what was asked
      setup_error_ = "cannot open persistent connection " + std::to_string(channel.index) + " to " +
                     options_.target_text + ": " + uv_strerror(status);
      channels_[channel.index] = nullptr;
      channel.closing = true;
      uv_close(sluice::as_handle(&channel.tcp),
               [](uv_handle_t* h) { delete static_cast<Channel*>(h->data); });
      return shut_down();
    }
    return fail_channel(channel, RequestError::connect_failed);
  }
  channel.connected = true;
  const int rc = uv_read_start(
      sluice::as_stream(&channel.tcp),
      [](uv_handle_t* h, std::size_t, uv_buf_t* b) {
        auto* ch = static_cast<Channel*>(h->data);
        *b = uv_buf_init(ch->generator->read_buffer_, sizeof ch->generator->read_buffer_);
      },
      [](uv_stream_t* s, ssize_t nread, const uv_buf_t* b) {
        auto* ch = static_cast<Channel*>(s->data);
        if (nread > 0) ch->input.append(b->base, static_cast<std::size_t>(nread));
        ch->generator->on_channel_read(*ch, nread);
      });
  if (rc < 0) return fail_channel(channel, RequestError::reset);
  while (!channel.unsent.empty() && !channel.closing) {
    const std::size_t record = channel.unsent.front();
    channel.unsent.pop_front();
    send_on_channel(channel, record);
  }
  if (result_.start_ns == 0 && ++channels_connected_ == options_.connections && !shutting_down_) begin_arrivals();
}

void Generator::send_on_channel(Channel& channel, std::size_t record) {
  RequestRecord& r = result_.records[record];
  r.sent_ns = uv_hrtime();
  sockaddr_storage local{};
  int length = sizeof local;
  if (uv_tcp_getsockname(&channel.tcp, sluice::as_sockaddr(&local), &length) == 0) {
    r.local_port = ntohs(sluice::as_ipv4(sluice::as_sockaddr(&local))->sin_port);
  }
  channel.outstanding.push_back(record);
  auto* write = new uv_write_t;
  uv_buf_t buf = uv_buf_init(request_text_.data(), static_cast<unsigned>(request_text_.size()));
  const int rc = uv_write(write, sluice::as_stream(&channel.tcp), &buf, 1,
                          [](uv_write_t* req, int) { delete req; });  // errors show up on the read side
  if (rc < 0) {
    delete write;
    fail_channel(channel, RequestError::reset);
  }
}

void Generator::on_channel_read(Channel& channel, ssize_t nread) {
  if (channel.closing || nread == 0) return;
  const bool eof = nread == UV_EOF;
  if (nread < 0 && !eof) return fail_channel(channel, RequestError::reset);
  for (;;) {
    HttpResponse response;
    const ResponseParse parsed = take_response(channel.input, response, eof);
    if (parsed == ResponseParse::malformed) return fail_channel(channel, RequestError::malformed);
    if (parsed == ResponseParse::incomplete) break;
    if (channel.outstanding.empty()) return fail_channel(channel, RequestError::malformed);  // unasked for
    const std::size_t record = channel.outstanding.front();
    channel.outstanding.pop_front();
    complete(record, response);
    if (response.close) return fail_channel(channel, RequestError::closed);  // the rest will not be answered
  }
  if (eof) return fail_channel(channel, RequestError::closed);
  maybe_finish();
}

// The connection is done for: its unanswered requests get `error`, and the slot reconnects on its next
// request.
void Generator::fail_channel(Channel& channel, RequestError error) {
  if (channel.closing) return;
  channel.closing = true;
  if (channels_[channel.index] == &channel) channels_[channel.index] = nullptr;
  for (const std::size_t record : channel.outstanding) fail(record, error);
  for (const std::size_t record : channel.unsent) fail(record, error);
  channel.outstanding.clear();
  channel.unsent.clear();
  uv_close(sluice::as_handle(&channel.tcp), [](uv_handle_t* h) { delete static_cast<Channel*>(h->data); });
  maybe_finish();
}

std::uint32_t Generator::choose_channel() {
  const std::uint32_t k = options_.connections;
  switch (options_.spread) {
    case Spread::round_robin:
      return static_cast<std::uint32_t>(round_robin_next_++ % k);
    case Spread::random:
      return static_cast<std::uint32_t>(spread_random_.below(k));
    case Spread::idle_first: {
      // As a client connection pool does: the first idle connection, else the least loaded one.
      std::uint32_t best = 0;
      std::size_t best_load = SIZE_MAX;
      for (std::uint32_t i = 0; i < k; ++i) {
        const Channel* c = channels_[i];
        const std::size_t load = c == nullptr ? 0 : c->outstanding.size() + c->unsent.size();
        if (load < best_load) {
          best = i;
          best_load = load;
          if (load == 0) break;
        }
      }
      return best;
    }
  }
  return 0;
}

// ------------------------------------------------------------------------------------------------------------
// Records and the end of the run.

void Generator::complete(std::size_t record, const HttpResponse& response) {
  RequestRecord& r = result_.records[record];
  r.done_ns = uv_hrtime();
  r.status = static_cast<std::uint16_t>(response.status);
  r.service_ns = response.service_ns;
  r.backend_wait_ns = response.backend_wait_ns;
  r.service_elapsed_ns = response.service_elapsed_ns;
  if (!response.backend.empty()) {
    const auto [it, inserted] = backend_index_.emplace(response.backend + "\n" + response.node,
                                                       static_cast<std::int32_t>(result_.backend_names.size()));
    if (inserted) {
      result_.backend_names.push_back(response.backend);
      result_.backend_nodes.push_back(response.node);
    }
    r.backend = it->second;
  }
  if (outstanding_ > 0) --outstanding_;
}

void Generator::fail(std::size_t record, RequestError error) {
  RequestRecord& r = result_.records[record];
  if (r.sent_ns == 0) r.sent_ns = uv_hrtime();
  r.error = error;
  if (outstanding_ > 0) --outstanding_;
}

void Generator::sweep() {
  const std::uint64_t now = uv_hrtime();
  const std::uint64_t timeout = options_.request_timeout_ns;
  while (!exchanges_.empty()) {
    Exchange& oldest = *exchanges_.front();
    if (result_.records[oldest.record].sent_ns + timeout > now) break;
    finish_exchange(oldest, RequestError::timeout, nullptr);
  }
  for (Channel* channel : channels_) {
    if (channel == nullptr || channel->outstanding.empty()) continue;
    if (result_.records[channel->outstanding.front()].sent_ns + timeout <= now) {
      fail_channel(*channel, RequestError::timeout);
    }
  }
  if (arrivals_done_ && !shutting_down_ && now >= drain_deadline_ns_) shut_down();  // the rest: unfinished
}

void Generator::maybe_finish() {
  if (arrivals_done_ && outstanding_ == 0 && !shutting_down_) shut_down();
}

// Closes every handle; uv_run returns once their close callbacks have run.
void Generator::shut_down() {
  if (shutting_down_) return;
  shutting_down_ = true;
  result_.end_ns = uv_hrtime();
  if (!arrivals_done_) {
    arrivals_done_ = true;
    result_.arrivals_end_ns = result_.end_ns;
  }
  timers_->close();
  uv_close(sluice::as_handle(&sweep_timer_), nullptr);
  uv_close(sluice::as_handle(&sigint_), nullptr);
  uv_close(sluice::as_handle(&sigterm_), nullptr);
  while (!exchanges_.empty()) finish_exchange(*exchanges_.front(), RequestError::unfinished, nullptr);
  for (Channel*& channel : channels_) {
    if (channel == nullptr) continue;
    Channel* c = channel;
    channel = nullptr;
    for (const std::size_t record : c->outstanding) fail(record, RequestError::unfinished);
    for (const std::size_t record : c->unsent) fail(record, RequestError::unfinished);
    c->outstanding.clear();
    c->unsent.clear();
    c->closing = true;
    uv_close(sluice::as_handle(&c->tcp), [](uv_handle_t* h) { delete static_cast<Channel*>(h->data); });
  }
  for (RequestRecord& r : result_.records) {  // anything else still open (none expected) ends the same way
    if (r.done_ns == 0 && r.error == RequestError::none) r.error = RequestError::unfinished;
  }
  outstanding_ = 0;
}

// The first signal ends the arrivals (answers are still awaited, up to the drain timeout); a second one
// ends the run at once.
void Generator::on_signal(uv_signal_t* handle, int) {
  auto* g = static_cast<Generator*>(handle->data);
  if (++g->signals_ == 1 && g->result_.start_ns != 0) {
    g->result_.interrupted = true;
    g->end_arrivals();
    return;
  }
  g->result_.interrupted = true;
  g->end_arrivals();
  g->shut_down();
}

}  // namespace

LoadResult run_load(const LoadOptions& options) {
  auto generator = std::make_unique<Generator>(options);  // big read buffer: not on the stack
  return generator->run();
}

}  // namespace sluice::tools
