// `wanwu serve`: a checkpoint behind an HTTP endpoint. POST /predict takes an image (multipart
// field `image`, or the raw bytes) and answers its top-k classes as JSON; GET /health, GET /metrics
// (Prometheus) and GET / (an upload page) come with it.
//
// The answer for an image is the one `wanwu predict` prints for the same file and checkpoint: both
// go through the same preprocessing, forward and top-k code (common.hpp). Around that, the shape
// is that of a server exposed to clients it does not trust: handler threads decode in parallel and
// an inference thread batches them (serve_batcher.hpp); every limit (upload size, pixels declared
// in the header, read and write timeouts, a bounded queue) is checked before the work it protects,
// every error is JSON naming what was wrong, no request path reaches the file system, and SIGINT or
// SIGTERM stops accepting, answers what was accepted, and exits 0.
//
// cpp-httplib (Debian libcpp-httplib-dev) is optional at build time: without it the command says
// so rather than the whole program failing to build.
#include <cstdio>
#include <iostream>
#include <string>

#include "commands.hpp"
#include "common.hpp"

#if WANWU_CLI_HAVE_HTTPLIB
#include <httplib.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <atomic>
#include <chrono>
#include <cmath>
#include <thread>

#include "serve_batcher.hpp"
#include "serve_metrics.hpp"
#include "serve_page.hpp"
#endif

namespace wanwu::cli {

namespace {
const std::vector<FlagSpec> kFlags = {
    {"checkpoint", Takes::value, "checkpoint written by wanwu train (model, classes, preprocessing)", "FILE"},
    {"host", Takes::value, "address to listen on (default 127.0.0.1: this machine only)", "ADDR"},
    {"port", Takes::value, "TCP port (default 8080; 0 picks a free one); the bound address is printed", "N"},
    {"max-batch", Takes::value, "most images per forward pass (default 32)", "N"},
    {"max-delay-ms", Takes::value, "longest wait for a batch to fill after its first image (default 5)", "MS"},
    {"max-upload-mb", Takes::value, "largest request body, MiB; larger is 413 (default 16)", "MB"},
    {"max-pixels", Takes::value, "largest image, width x height from its header; larger is 413 (default 67108864)",
     "N"},
    {"queue", Takes::value, "images waiting for the model at most; beyond, 503 + Retry-After (default 256)", "N"},
    {"threads", Takes::value, "HTTP worker threads, i.e. connections served at once (default 64)", "N"},
    {"timeout-s", Takes::value, "read and write timeout per request, seconds (default 10)", "S"},
    {"topk", Takes::value, "classes per answer unless ?topk=N asks otherwise (default 5)", "K"},
    {"device", Takes::value, "cpu|cuda (default: cuda when available)", "DEV"},
};
const char* kUsageLine =
    "wanwu serve --checkpoint C.safetensors [--host 127.0.0.1] [--port 8080] [--max-batch 32] [--max-delay-ms 5] "
    "[--max-upload-mb 16] [--max-pixels N] [--queue 256] [--threads 64] [--timeout-s 10] [--topk 5]";
const char* kAbout =
    "Serves a checkpoint over HTTP:\n"
    "  POST /predict[?topk=N]  multipart field 'image', or a raw image body (image/*, application/octet-stream)\n"
    "                          -> {\"class_id\", \"label\", \"prob\", \"topk\": [{\"class_id\", \"label\", \"prob\"}...]}\n"
    "  GET  /health            -> {\"status\": \"ok\", \"model\", \"classes\"}\n"
    "  GET  /metrics           Prometheus text: requests, errors by kind, batch sizes, latency, inference time\n"
    "  GET  /                  an HTML page to upload an image and see the answer\n"
    "Errors are JSON {\"error\": \"...\"}. Concurrent requests are batched. SIGINT/SIGTERM: stop accepting, answer\n"
    "what was accepted, exit 0.";
}  // namespace

#if !WANWU_CLI_HAVE_HTTPLIB

int run_serve(int argc, char** argv) {
  Args a("serve", kFlags, argc, argv, 2, false);
  if (a.help()) {
    std::cout << help_text(kUsageLine, kAbout, kFlags);
    return 0;
  }
  throw RunError("serve: this wanwu was built without cpp-httplib (apt-get install libcpp-httplib-dev, then rebuild)");
}

#else

namespace {

using Clock = std::chrono::steady_clock;

int g_stop_pipe[2] = {-1, -1};
extern "C" void on_stop_signal(int sig) {
  const auto b = static_cast<unsigned char>(sig);
  const ssize_t r = ::write(g_stop_pipe[1], &b, 1);
  (void)r;
}

struct ServeOptions {
  std::string host;
  int port = 8080;
  int64_t max_batch = 32;
  int64_t max_delay_ms = 5;
  int64_t max_upload_mb = 16;
  int64_t max_pixels = int64_t(64) << 20;
  int64_t queue = 256;
  int64_t threads = 64;
  double timeout_s = 10;
  int64_t topk = 5;
};

// Error messages quote what the client sent (a path, a Content-Type, a field name), which need
// not be UTF-8: invalid bytes are replaced rather than thrown over (json::dump's default).
void set_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n", "application/json");
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// A library message without its "decode_image: " prefix: the client did not call a function.
std::string client_message(std::string s) {
  if (s.rfind("decode_image: ", 0) == 0) s = s.substr(14);
  if (const auto at = s.find("(DecodeOptions::max_pixels)"); at != std::string::npos)
    s.replace(at, 27, "(--max-pixels)");
  return s;
}

class Server {
 public:
  Server(LoadedModel& m, Device device, const ServeOptions& o)
      : m_(m),
        device_(device),
        o_(o),
        classes_(m.model->num_classes()),
        transform_(data::eval_transform(m.preprocess.preset)),
        batcher_(*m.model, device, m.preprocess.preset.size, 3, o.max_batch,
                 std::chrono::microseconds(o.max_delay_ms * 1000), o.queue, metrics_) {
    const auto sec = static_cast<time_t>(o.timeout_s);
    const auto usec = static_cast<time_t>(std::lround((o.timeout_s - static_cast<double>(sec)) * 1e6));
    svr_.set_read_timeout(sec, usec);
    svr_.set_write_timeout(sec, usec);
    svr_.set_keep_alive_max_count(1000);
    // httplib writes the status line and headers, then the body, in separate sends: with Nagle's
    // algorithm the body waits for the client's delayed ACK, 40 ms on Linux, on every answer.
    svr_.set_tcp_nodelay(true);
    svr_.set_payload_max_length(static_cast<size_t>(o.max_upload_mb) << 20);
    // httplib listens with a backlog of 5: a burst of connections beyond that waits for the
    // client's SYN retransmission (a second or more). The listening socket is remembered here so
    // that bind() can raise the backlog (see there).
    svr_.set_socket_options([this](socket_t sock) {
      httplib::default_socket_options(sock);
      if (listen_fd_ < 0) listen_fd_ = static_cast<int>(sock);
    });
    const size_t threads = static_cast<size_t>(o.threads);
    svr_.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };

    svr_.Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(kServePage, "text/html; charset=utf-8");
    });
    svr_.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      set_json(res, 200, {{"status", stopping_ ? "stopping" : "ok"}, {"model", m_.arch}, {"classes", classes_}});
    });
    svr_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics_.render(m_.arch, device_.str(), o_.max_batch, memory_stats(device_), device_.is_cpu()),
                      "text/plain; version=0.0.4");
    });
    // With a content reader the handler reads the body itself, chunk by chunk: it keeps only the
    // `image` field, and it can hold the whole body to one deadline, not only each read.
    svr_.Post("/predict", [this](const httplib::Request& req, httplib::Response& res,
                                 const httplib::ContentReader& read) { predict(req, res, read); });
    svr_.Get("/predict", [this](const httplib::Request&, httplib::Response& res) {
      res.set_header("Allow", "POST");
      fail(res, 405, "method_not_allowed", "use POST /predict with an image (GET / has an upload page)");
    });
    // Responses httplib makes itself (no route, body over the limit, a request it could not parse
    // or read in time) get a JSON body here; ours already have one.
    svr_.set_error_handler(httplib::Server::HandlerWithResponse(
        [this](const httplib::Request& req, httplib::Response& res) {
          if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
          library_error(req, res);
          return httplib::Server::HandlerResponse::Handled;
        }));
    svr_.set_exception_handler([this](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "unknown exception";
      try {
        if (ep) std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      fail(res, 500, "internal", "internal error: " + what);
    });
    svr_.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      metrics_.count_response(req.path, res.status);
    });
  }

  // Binds, or a RunError naming the address.
  int bind() {
    int port = o_.port;
    if (port == 0) {
      port = svr_.bind_to_any_port(o_.host);
      if (port < 0) throw RunError("serve: cannot listen on " + o_.host + " (any port)");
    } else if (!svr_.bind_to_port(o_.host, port)) {
      throw RunError("serve: cannot listen on " + o_.host + ":" + std::to_string(port) +
                     " (in use, or not an address of this machine; --port 0 picks a free port)");
    }
    // listen() again on a listening socket only updates its backlog (Linux, BSD).
    if (listen_fd_ >= 0) ::listen(listen_fd_, SOMAXCONN);
    return port;
  }
  void listen() { svr_.listen_after_bind(); }
  // Stops accepting connections. Safe from any thread, and to call repeatedly.
  void stop_accepting() {
    stopping_ = true;
    svr_.stop();
  }
  // The inference loop, on the thread that loaded the model (serve_batcher.hpp says why); returns
  // once stop_model() was called and every queued request is answered.
  void run_model() { batcher_.run(); }
  // After listen() returned (every handler has answered): make run_model() return.
  void stop_model() { batcher_.stop(); }
  int64_t in_flight() const { return metrics_.in_flight.load(); }
  int64_t answered() const { return answered_.load(); }

 private:
  void fail(httplib::Response& res, int status, const std::string& kind, const std::string& message) {
    metrics_.count_error(kind);
    set_json(res, status, {{"error", message}});
  }

  // Requests that never reached a handler: no route, or a request line or headers httplib could
  // not parse or read in time.
  void library_error(const httplib::Request& req, httplib::Response& res) {
    if (res.status == 404)
      return fail(res, 404, "not_found",
                  "no such page: " + req.method + " " + req.path + " (try POST /predict, GET /health, GET /metrics, GET /)");
    if (res.status == 413)
      return fail(res, 413, "payload_too_large",
                  "request body is over the limit of --max-upload-mb " + std::to_string(o_.max_upload_mb));
    if (res.status >= 500) return fail(res, res.status, "internal", "internal error (HTTP " + std::to_string(res.status) + ")");
    if (res.status == 400)
      return fail(res, 400, "bad_request",
                  "malformed request line or headers, or headers not received within --timeout-s " +
                      json(o_.timeout_s).dump() + " s");
    fail(res, res.status, "bad_request",
         res.status == 414 ? "request URI too long" : "bad request (HTTP " + std::to_string(res.status) + ")");
  }

  void predict(const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& read) {
    const auto t0 = Clock::now();
    struct InFlight {
      std::atomic<int64_t>& n;
      explicit InFlight(std::atomic<int64_t>& c) : n(c) { ++n; }
      ~InFlight() { --n; }
    } guard(metrics_.in_flight);

    // The body is read in full even when it will be refused (wrong type): what is left unread on
    // a keep-alive connection would be parsed as the next request.
    const std::string ct = lower(req.get_header_value("Content-Type"));
    const bool multipart = req.is_multipart_form_data();
    const bool raw = !multipart && (ct.empty() || ct.rfind("image/", 0) == 0 || ct.rfind("application/octet-stream", 0) == 0);
    const auto deadline = t0 + std::chrono::duration<double>(o_.timeout_s);
    std::string image, fields;
    bool keep = raw, have_field = false, late = false;
    const auto take = [&](const char* data, size_t n) {
      if (Clock::now() > deadline) {
        late = true;
        return false;
      }
      if (keep) image.append(data, n);
      return true;
    };
    bool complete = false;
    if (multipart) {
      complete = read(
          [&](const httplib::MultipartFormData& f) {
            keep = f.name == "image" && !have_field;
            have_field = have_field || keep;
            fields += (fields.empty() ? "'" : ", '") + f.name + "'";
            return true;
          },
          take);
    } else {
      complete = read(take);
    }
    if (!complete) {
      res.set_header("Connection", "close");
      const std::string expected = req.get_header_value("Content-Length");
      if (res.status == 413)
        return fail(res, 413, "payload_too_large",
                    "request body" + (expected.empty() ? std::string() : " of " + expected + " bytes") +
                        " is over the limit of --max-upload-mb " + std::to_string(o_.max_upload_mb) + " (" +
                        std::to_string(o_.max_upload_mb << 20) + " bytes)");
      if (late || Clock::now() - t0 >= std::chrono::duration<double>(0.9 * o_.timeout_s))
        return fail(res, 408, "timeout",
                    "request body not received within --timeout-s " + json(o_.timeout_s).dump() + " s" +
                        (expected.empty() ? std::string() : " (Content-Length " + expected + ")"));
      return fail(res, 400, "bad_request",
                  multipart ? "malformed or incomplete multipart body" : "incomplete request body");
    }
    if (!multipart && !raw)
      return fail(res, 415, "unsupported_media_type",
                  "Content-Type '" + req.get_header_value("Content-Type") +
                      "' is not accepted; send multipart/form-data with a field 'image', or the image itself as "
                      "image/jpeg, image/png or application/octet-stream");
    if (multipart && !have_field)
      return fail(res, 400, "missing_field",
                  "multipart body has no field 'image'" +
                      (fields.empty() ? std::string(" (no fields)") : " (fields: " + fields + ")"));
    const std::string source = multipart ? "form field 'image'" : "request body";
    if (image.empty()) return fail(res, 400, "empty_body", source + " is empty; expected an image");

    int64_t k = o_.topk;
    if (req.has_param("topk")) {
      const std::string v = req.get_param_value("topk");
      int64_t parsed = 0;
      const auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), parsed);
      if (ec != std::errc() || p != v.data() + v.size() || parsed < 1)
        return fail(res, 400, "bad_request", "topk must be an integer >= 1, got '" + v + "'");
      k = parsed;
    }
    k = std::min(k, classes_);

    // Decode and preprocess here, on the handler's thread, in parallel with other requests. The
    // header (and its pixel count) is checked before any pixel buffer is allocated.
    batcher_.announce();
    data::Image input;
    try {
      data::DecodeOptions opt;
      opt.max_pixels = o_.max_pixels;
      input = preprocess_image(
          transform_, data::decode_image_memory(reinterpret_cast<const uint8_t*>(image.data()), image.size(),
                                                "the " + source, opt));
    } catch (const data::ImageTooLargeError& e) {
      batcher_.withdraw();
      return fail(res, 413, "too_many_pixels", client_message(e.what()));
    } catch (const IOError& e) {
      batcher_.withdraw();
      return fail(res, 422, "bad_image", client_message(e.what()));
    } catch (...) {
      batcher_.withdraw();
      throw;
    }

    const int64_t side = m_.preprocess.preset.size;
    if (input.type() != data::PixelType::f32 || input.height() != side || input.width() != side ||
        input.channels() != 3) {
      batcher_.withdraw();
      return fail(res, 500, "internal",
                  "preprocessing gave " + input.describe() + ", not the model's " + std::to_string(side) + "x" +
                      std::to_string(side) + "x3 input");
    }

    std::vector<float> probs(static_cast<size_t>(classes_));
    Batcher::Slot slot;
    slot.input = &input;
    slot.probs = probs.data();
    switch (batcher_.submit(slot)) {
      case Batcher::Submit::full:
        res.set_header("Retry-After", "1");
        return fail(res, 503, "queue_full",
                    "server busy: " + std::to_string(o_.queue) + " images already wait for the model (--queue); retry");
      case Batcher::Submit::stopping:
        res.set_header("Retry-After", "1");
        return fail(res, 503, "shutting_down", "server is shutting down");
      case Batcher::Submit::queued: break;
    }
    batcher_.wait(slot);
    if (!slot.error.empty()) return fail(res, 500, "internal", "inference failed: " + slot.error);

    const json top = topk_json(probs.data(), classes_, k, m_.classes);
    json out = top[0];
    out["topk"] = top;
    set_json(res, 200, out);
    ++answered_;
    metrics_.latency.observe(std::chrono::duration<double>(Clock::now() - t0).count());
  }

  LoadedModel& m_;
  Device device_;
  ServeOptions o_;
  int64_t classes_;
  data::Compose transform_;
  ServeMetrics metrics_;
  Batcher batcher_;
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> answered_{0};
  std::atomic<int> listen_fd_{-1};
  httplib::Server svr_;
};

}  // namespace

int run_serve(int argc, char** argv) {
  Args a("serve", kFlags, argc, argv, 2, false);
  if (a.help()) {
    std::cout << help_text(kUsageLine, kAbout, kFlags);
    return 0;
  }
  ServeOptions o;
  const std::string checkpoint = a.required("checkpoint");
  o.host = a.str("host", "127.0.0.1");
  if (o.host.empty()) throw UsageError("serve: --host is empty (e.g. 127.0.0.1, or 0.0.0.0 for every interface)");
  o.port = static_cast<int>(a.integer("port", 8080, 0));
  if (o.port > 65535) throw UsageError("serve: --port must be <= 65535, got " + a.str("port"));
  o.max_batch = a.integer("max-batch", 32, 1);
  // The batch buffer and the thread pool are allocated up front: refuse sizes that are typos.
  if (o.max_batch > 4096) throw UsageError("serve: --max-batch must be <= 4096, got " + a.str("max-batch"));
  o.max_delay_ms = a.integer("max-delay-ms", 5, 0);
  o.max_upload_mb = a.integer("max-upload-mb", 16, 1);
  if (o.max_upload_mb > 2047) throw UsageError("serve: --max-upload-mb must be <= 2047 (the decoder's 2 GiB), got " +
                                               a.str("max-upload-mb"));
  o.max_pixels = a.integer("max-pixels", o.max_pixels, 1);
  o.queue = a.integer("queue", 256, 1);
  o.threads = a.integer("threads", 64, 1);
  if (o.threads > 4096) throw UsageError("serve: --threads must be <= 4096, got " + a.str("threads"));
  o.timeout_s = a.number("timeout-s", 10, 0.001, 86400);
  o.topk = a.integer("topk", 5, 1);
  const Device device = pick_device(a, "serve");

  // SIGINT/SIGTERM: the handler only writes the signal number to a pipe (all a handler may
  // safely do); a watcher thread reads it and stops the server. Threads this command starts
  // (the HTTP thread and httplib's workers) block the two signals, so their system calls are
  // not interrupted; the watcher unblocks them, so the signal has a thread to land on, and threads
  // started before this point (a BLAS pool) run the same handler. SIGPIPE is ignored: a client
  // that hangs up mid-answer must cost a failed write, not the process.
  if (::pipe2(g_stop_pipe, O_CLOEXEC) != 0) throw RunError("serve: cannot create a pipe for signal handling");
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  LoadedModel m = load_checkpoint(checkpoint, device);
  Server server(m, device, o);
  const int port = server.bind();

  std::atomic<bool> listening_done{false};
  std::thread watcher([&] {
    pthread_sigmask(SIG_UNBLOCK, &sigs, nullptr);
    unsigned char sig = 0;
    while (::read(g_stop_pipe[0], &sig, 1) < 0 && errno == EINTR) {
    }
    if (!listening_done) {
      std::cerr << "wanwu serve: " << (sig == SIGINT ? "SIGINT" : "SIGTERM")
                << ": stopped accepting; finishing " << server.in_flight() << " requests in flight\n";
    }
    // stop() only takes effect once listen has started; repeat until it has returned.
    while (!listening_done) {
      server.stop_accepting();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });

  const std::string where = o.host.find(':') != std::string::npos ? "[" + o.host + "]" : o.host;
  std::cerr << "wanwu serve: " << m.arch << " (" << m.model->num_classes() << " classes, "
            << m.preprocess.preset.size << "x" << m.preprocess.preset.size << " input) on " << device.str()
            << "; max-batch " << o.max_batch << ", max-delay " << o.max_delay_ms << " ms, queue " << o.queue
            << ", " << o.threads << " threads\n";
  std::cout << "serving on http://" << where << ":" << port << std::endl;

  // HTTP on a thread of its own, the model on this one, which loaded it (serve_batcher.hpp).
  std::thread http([&] {
    server.listen();  // returns once stopped and every accepted connection has been answered
    listening_done = true;
    const unsigned char wake = 0;  // the watcher, if no signal came (listen failed)
    if (::write(g_stop_pipe[1], &wake, 1) < 0) std::cerr << "wanwu serve: cannot wake the signal watcher\n";
    server.stop_model();
  });
  server.run_model();
  http.join();
  watcher.join();
  std::cerr << "wanwu serve: stopped; answered " << server.answered() << " predictions\n";
  return 0;
}

#endif

}  // namespace wanwu::cli
