// HttpSession's writes. Bytes for a side are appended to that side's open write (a pooled
// StringWrite, LoopResources::writes) and sent at once; while the backend's bytes are being parsed
// the client's are held until the parser returns (flush_client), so that a response head and the
// body bytes that came with it leave in one write.

#include "sluice/proxy/http_session.hpp"
#include "sluice/worker/loop_resources.hpp"

namespace sluice {

std::string* HttpSession::open_write(bool to_client) {
  if (state_ == State::closing) return nullptr;
  if (!to_client && connection_ == nullptr) return nullptr;
  StringWrite*& open = open_[to_client ? 1 : 0];
  if (open == nullptr) {
    open = resources_.writes.take();
    open->to_client = to_client;
    open->session = this;
  }
  return &open->bytes;
}

void HttpSession::write(bool to_client, std::string_view bytes) {
  if (bytes.empty()) return;
  if (std::string* out = open_write(to_client)) {
    out->append(bytes);
    send(to_client);
  }
}

void HttpSession::write_taking(bool to_client, std::string& bytes) {
  if (bytes.empty()) return;
  if (std::string* out = open_write(to_client)) {
    // A tunnel's reads are as large as a read: handed over, not copied.
    if (out->empty()) {
      out->swap(bytes);
    } else {
      out->append(bytes);
    }
    send(to_client);
  }
  bytes.clear();
}

void HttpSession::flush_client() {
  batching_client_ = false;
  send(true);
}

void HttpSession::send(bool to_client) {
  if (to_client && batching_client_) return;
  StringWrite* op = std::exchange(open_[to_client ? 1 : 0], nullptr);
  if (op == nullptr) return;
  // The state or the connection may have changed since the bytes were appended.
  uv_stream_t* stream = to_client ? client_.stream() : (connection_ != nullptr ? connection_->stream() : nullptr);
  if (op->bytes.empty() || state_ == State::closing || stream == nullptr) {
    resources_.writes.give_back(op);
    return;
  }
  if (!to_client && slot_ != nullptr) stats_.sent_to_backend(*slot_, op->bytes.size());
  uv_buf_t buf = uv_buf_init(op->bytes.data(), static_cast<unsigned>(op->bytes.size()));
  // Written now when the socket takes it (a reply's few hundred bytes nearly always): no write
  // request completing on the next loop turn, whose completion libuv follows with an epoll_ctl.
  // What the socket does not take (or an error, reported by uv_write's callback) is queued.
  const int written = uv_try_write(stream, &buf, 1);
  if (written == static_cast<int>(buf.len)) {
    resources_.writes.give_back(op);
    return;
  }
  if (written > 0) {
    op->sent = static_cast<std::size_t>(written);
    buf = uv_buf_init(buf.base + written, buf.len - static_cast<unsigned>(written));
  }
  op->req.data = op;
  (to_client ? client_unsent_ : backend_unsent_) += buf.len;
  const int rc = uv_write(&op->req, stream, &buf, 1, [](uv_write_t* req, int status) {
    auto* written = owner<StringWrite>(req);
    written->session->on_written(written, status);
  });
  if (rc != 0) on_written(op, rc);
}

void HttpSession::on_written(StringWrite* op, int status) {
  const bool to_client = op->to_client;
  (to_client ? client_unsent_ : backend_unsent_) -= op->bytes.size() - op->sent;
  resources_.writes.give_back(op);
  if (status < 0 && status != UV_ECANCELED) {
    if (to_client) {
      finish("reset", true);
    } else if (state_ == State::tunnel) {
      finish("reset", true);
    } else {
      backend_failed("backend_reset");
    }
    return;
  }
  if (state_ == State::closing) {
    if (client_unsent_ == 0 && backend_unsent_ == 0) finish(to_client ? "done" : "closed");
    return;
  }
  if (state_ == State::tunnel) {
    update_reading();
    update_backend_reading();
    return;
  }
  if (to_client) {
    pump_response();
  } else {
    pump_request();
  }
  update_backend_reading();
  maybe_end_exchange();
}

}  // namespace sluice
