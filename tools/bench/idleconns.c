// idleconns: opens many idle TCP connections through a proxy (`open`), and is the backend that
// holds the other ends (`sink`), for scripts/bench.sh's memory-per-idle-connection and
// concurrent-connections figures. One epoll loop per process, no threads, no busy waiting; both
// modes stop by themselves (--max-seconds, and `sink` also when its parent dies).
//
//   idleconns sink --port-file FILE --count-file FILE [--max-seconds S]
//       listens on 127.0.0.1 (a free port chosen by the kernel, written to --port-file), accepts
//       everything, reads and discards, and keeps the number of open accepted connections in
//       --count-file (rewritten atomically at most every 100 ms, when it changed).
//   idleconns open --port P -n N [--host 127.0.0.1] [--parallel 256] [--max-seconds S]
//       opens N connections (at most --parallel connects in flight) and prints
//       `connected=X failed=Y seconds=T`; then holds them, sending nothing, until SIGTERM, SIGINT
//       or --max-seconds, and prints `held=H closed=C` (C: closed or reset by the other side
//       meanwhile) before it exits.
//
// Build: cc -O2 -Wall -Wextra -o idleconns tools/bench/idleconns.c   (scripts/bench.sh does)

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t g_stop = 0;

static void on_signal(int sig) {
  (void)sig;
  g_stop = 1;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char* what) {
  fprintf(stderr, "idleconns: %s: %s\n", what, strerror(errno));
  exit(2);
}

static void usage(void) {
  fprintf(stderr,
          "usage: idleconns sink --port-file FILE --count-file FILE [--max-seconds S]\n"
          "       idleconns open --port P -n N [--host IP] [--parallel K] [--max-seconds S]\n");
  exit(2);
}

static void raise_fd_limit(void) {
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

static void install_signals(void) {
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = on_signal;
  sigaction(SIGTERM, &action, NULL);
  sigaction(SIGINT, &action, NULL);
  signal(SIGPIPE, SIG_IGN);
}

static void write_file_atomically(const char* path, const char* text) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE* f = fopen(tmp, "w");
  if (f == NULL) die("open count/port file");
  fputs(text, f);
  fclose(f);
  if (rename(tmp, path) != 0) die("rename");
}

// --- sink ------------------------------------------------------------------------------------

static int run_sink(const char* port_file, const char* count_file, double max_seconds) {
  prctl(PR_SET_PDEATHSIG, SIGTERM);  // the driver went away: so do we
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listener < 0) die("socket");
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in address;
  memset(&address, 0, sizeof address);
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  if (bind(listener, (struct sockaddr*)&address, sizeof address) != 0) die("bind");
  if (listen(listener, 4096) != 0) die("listen");
  socklen_t length = sizeof address;
  getsockname(listener, (struct sockaddr*)&address, &length);

  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  struct epoll_event event = {.events = EPOLLIN, .data.fd = listener};
  epoll_ctl(ep, EPOLL_CTL_ADD, listener, &event);

  char text[64];
  snprintf(text, sizeof text, "0\n");
  write_file_atomically(count_file, text);
  snprintf(text, sizeof text, "%u\n", (unsigned)ntohs(address.sin_port));
  write_file_atomically(port_file, text);

  long open_count = 0, written_count = 0;
  double started = now_s(), last_write = 0;
  static char discard[4096];
  struct epoll_event events[256];
  while (!g_stop && now_s() - started < max_seconds) {
    int n = epoll_wait(ep, events, 256, 100);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == listener) {
        for (;;) {
          int client = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (client < 0) {
            if (errno == EMFILE || errno == ENFILE) fprintf(stderr, "idleconns sink: accept: %s\n", strerror(errno));
            break;
          }
          struct epoll_event ce = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = client};
          epoll_ctl(ep, EPOLL_CTL_ADD, client, &ce);
          ++open_count;
        }
        continue;
      }
      ssize_t got = read(fd, discard, sizeof discard);
      if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
        close(fd);  // also leaves the epoll set
        --open_count;
      }
    }
    double t = now_s();
    if (open_count != written_count && t - last_write >= 0.1) {
      snprintf(text, sizeof text, "%ld\n", open_count);
      write_file_atomically(count_file, text);
      written_count = open_count;
      last_write = t;
    }
  }
  return 0;
}

// --- open ------------------------------------------------------------------------------------

enum { kFree = 0, kConnecting = 1, kConnected = 2, kClosed = 3 };

static int run_open(const char* host, int port, long count, int parallel, double max_seconds) {
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  struct sockaddr_in address;
  memset(&address, 0, sizeof address);
  address.sin_family = AF_INET;
  address.sin_port = htons((unsigned short)port);
  if (inet_pton(AF_INET, host, &address.sin_addr) != 1) usage();

  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  // state by descriptor: descriptors are small integers below the fd limit
  struct rlimit limit;
  getrlimit(RLIMIT_NOFILE, &limit);
  size_t slots = (size_t)limit.rlim_cur + 16;
  unsigned char* state = calloc(slots, 1);
  if (state == NULL) die("calloc");

  long started_count = 0, in_flight = 0, connected = 0, failed = 0, closed = 0;
  double started = now_s();
  struct epoll_event events[512];
  static char discard[4096];
  int stop_opening = 0;
  int reported = 0;

  while (!g_stop && now_s() - started < max_seconds) {
    while (!stop_opening && started_count < count && in_flight < parallel) {
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        fprintf(stderr, "idleconns open: socket: %s (after %ld)\n", strerror(errno), started_count);
        failed += count - started_count;
        stop_opening = 1;
        break;
      }
      ++started_count;
      if ((size_t)fd >= slots) {
        close(fd);
        ++failed;
        continue;
      }
      int rc = connect(fd, (struct sockaddr*)&address, sizeof address);
      if (rc != 0 && errno != EINPROGRESS) {
        close(fd);
        ++failed;
        continue;
      }
      state[fd] = kConnecting;
      ++in_flight;
      struct epoll_event ce = {.events = EPOLLOUT | EPOLLRDHUP, .data.fd = fd};
      epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ce);
    }
    if (!reported && in_flight == 0 && (started_count == count || stop_opening)) {
      printf("connected=%ld failed=%ld seconds=%.3f\n", connected, failed, now_s() - started);
      fflush(stdout);
      reported = 1;
    }
    int n = epoll_wait(ep, events, 512, 100);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      unsigned ev = events[i].events;
      if (state[fd] == kConnecting) {
        --in_flight;
        int error = 0;
        socklen_t len = sizeof error;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len);
        if (error != 0 || (ev & (EPOLLERR | EPOLLHUP))) {
          close(fd);
          state[fd] = kFree;
          ++failed;
          continue;
        }
        state[fd] = kConnected;
        ++connected;
        struct epoll_event ce = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = fd};
        epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ce);
        if (!(ev & (EPOLLIN | EPOLLRDHUP))) continue;
      }
      if (state[fd] != kConnected) continue;
      ssize_t got = read(fd, discard, sizeof discard);
      if (got > 0 && !(ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) continue;
      if (got < 0 && errno == EAGAIN && !(ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) continue;
      // closed or reset by the proxy: keep the descriptor number out of use but stop watching
      epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
      close(fd);
      state[fd] = kClosed;
      ++closed;
    }
  }
  if (!reported) {
    printf("connected=%ld failed=%ld seconds=%.3f\n", connected, failed + in_flight, now_s() - started);
  }
  printf("held=%ld closed=%ld\n", connected - closed, closed);
  fflush(stdout);
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 2) usage();
  const char* mode = argv[1];
  const char *port_file = NULL, *count_file = NULL, *host = "127.0.0.1";
  long count = 0;
  int port = 0, parallel = 256;
  double max_seconds = 600;
  for (int i = 2; i < argc; ++i) {
    const char* flag = argv[i];
    if (i + 1 >= argc) usage();
    const char* value = argv[++i];
    if (strcmp(flag, "--port-file") == 0) port_file = value;
    else if (strcmp(flag, "--count-file") == 0) count_file = value;
    else if (strcmp(flag, "--host") == 0) host = value;
    else if (strcmp(flag, "--port") == 0) port = atoi(value);
    else if (strcmp(flag, "-n") == 0) count = atol(value);
    else if (strcmp(flag, "--parallel") == 0) parallel = atoi(value);
    else if (strcmp(flag, "--max-seconds") == 0) max_seconds = atof(value);
    else usage();
  }
  raise_fd_limit();
  install_signals();
  if (strcmp(mode, "sink") == 0) {
    if (port_file == NULL || count_file == NULL) usage();
    return run_sink(port_file, count_file, max_seconds);
  }
  if (strcmp(mode, "open") == 0) {
    if (port <= 0 || count <= 0 || parallel <= 0) usage();
    return run_open(host, port, count, parallel, max_seconds);
  }
  usage();
  return 2;
}
