// Unix stream sockets that carry file descriptors (SCM_RIGHTS), which Node's own sockets cannot:
// a listener that accepts, and connections that read and write bytes with descriptors beside
// them. Each lives on the event loop as a uv_poll_t.
//
// Lifetime, the reason this file exists: a poll handle may be freed, and its descriptor closed,
// only in the uv_close callback, after libuv has let go of it. (The package this replaced kept
// the handle inside a garbage-collected object and closed the descriptor at once; under churn a
// collection freed a handle libuv was still closing, and the process aborted in
// uv__finish_close.) Here the JavaScript object owns a small wrapper; closing detaches it and
// hands the connection to libuv, which frees it in on_closed. After close() no callback ever
// reaches JavaScript.
#define _GNU_SOURCE // accept4, MSG_CMSG_CLOEXEC
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "unix_socket.h"

/** Descriptors one read takes at most; OpenSSH passes three, one per message. */
#define MAX_FDS_PER_READ 16
/** Bytes one read takes at most. */
#define MAX_READ (256 * 1024)
/** Reads per poll callback, so that one busy peer cannot starve the loop. */
#define READS_PER_WAKE 16

typedef struct {
  uv_poll_t poll; // first: the uv_handle_t* is the endpoint*
  int fd;
  bool listener;
  bool reading;
  bool want_write;
  bool closing;
  napi_env env;
  napi_ref callback;
  napi_async_context async;
} endpoint;

static napi_value throw_errno_code(napi_env env, const char *what, int err) {
  napi_value message, code, error;
  char text[200];
  snprintf(text, sizeof(text), "%s: %s", what, strerror(err));
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &message);
  const char *name = err == EPIPE ? "EPIPE" : err == ECONNRESET ? "ECONNRESET" : err == EAGAIN ? "EAGAIN" : err == ENOENT ? "ENOENT" : err == ECONNREFUSED ? "ECONNREFUSED" : "EIO";
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, message, &error);
  napi_value errno_value;
  napi_create_int32(env, err, &errno_value);
  napi_set_named_property(env, error, "errno", errno_value);
  napi_throw(env, error);
  return NULL;
}

/** Calls the endpoint's JavaScript callback as (event, a, b); never after close(). */
static void emit(endpoint *e, const char *event, napi_value a, napi_value b) {
  if (e->closing) return;
  napi_env env = e->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value fn, global, argv[3], result;
  napi_get_reference_value(env, e->callback, &fn);
  napi_get_global(env, &global);
  napi_create_string_utf8(env, event, NAPI_AUTO_LENGTH, &argv[0]);
  if (a) argv[1] = a;
  else napi_get_undefined(env, &argv[1]);
  if (b) argv[2] = b;
  else napi_get_undefined(env, &argv[2]);
  if (napi_make_callback(env, e->async, global, fn, 3, argv, &result) == napi_pending_exception) {
    napi_value exception;
    napi_get_and_clear_last_exception(env, &exception);
    napi_fatal_exception(env, exception); // as an exception thrown by any event handler
  }
  napi_close_handle_scope(env, scope);
}

static void emit_error(endpoint *e, const char *what, int err) {
  if (e->closing) return;
  napi_handle_scope scope;
  napi_open_handle_scope(e->env, &scope);
  napi_value message, error;
  char text[200];
  snprintf(text, sizeof(text), "%s: %s", what, strerror(err));
  napi_create_string_utf8(e->env, text, NAPI_AUTO_LENGTH, &message);
  napi_create_error(e->env, NULL, message, &error);
  emit(e, "error", error, NULL);
  napi_close_handle_scope(e->env, scope);
}

static void on_poll(uv_poll_t *handle, int status, int events);

/** Polls for what the endpoint wants now: readable while reading, writable while a write waits. */
static void update_poll(endpoint *e) {
  if (e->closing) return;
  int events = (e->reading ? UV_READABLE : 0) | (e->want_write ? UV_WRITABLE : 0);
  if (events == 0) uv_poll_stop(&e->poll);
  else uv_poll_start(&e->poll, events, on_poll);
}

static void on_closed(uv_handle_t *handle) {
  endpoint *e = (endpoint *)handle;
  close(e->fd); // only now: libuv has let go of the descriptor
  napi_delete_reference(e->env, e->callback);
  napi_async_destroy(e->env, e->async);
  free(e);
}

static void close_endpoint(endpoint *e) {
  if (e->closing) return;
  uv_poll_stop(&e->poll);
  e->closing = true;
  uv_close((uv_handle_t *)&e->poll, on_closed);
}

static void accept_ready(endpoint *e) {
  for (int i = 0; i < READS_PER_WAKE && !e->closing && e->reading; i++) {
    int fd = accept4(e->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd == -1) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED || errno == EINTR) return;
      // Out of descriptors and the like: say so, and keep listening.
      emit_error(e, "accept", errno);
      return;
    }
    napi_handle_scope scope;
    napi_open_handle_scope(e->env, &scope);
    napi_value value;
    napi_create_int32(e->env, fd, &value);
    emit(e, "accept", value, NULL);
    napi_close_handle_scope(e->env, scope);
  }
}

static void read_ready(endpoint *e) {
  for (int i = 0; i < READS_PER_WAKE && !e->closing && e->reading; i++) {
    int avail = 0;
    size_t size = 64 * 1024;
    if (ioctl(e->fd, FIONREAD, &avail) == 0 && avail > 0) size = avail < MAX_READ ? (size_t)avail : MAX_READ;
    char *data = malloc(size);
    if (!data) {
      emit_error(e, "read", ENOMEM);
      return;
    }
    union {
      char buf[CMSG_SPACE(MAX_FDS_PER_READ * sizeof(int))];
      struct cmsghdr align;
    } control;
    struct iovec iov = {.iov_base = data, .iov_len = size};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof(control.buf)};
    ssize_t n = recvmsg(e->fd, &msg, MSG_CMSG_CLOEXEC);
    if (n == -1) {
      int err = errno;
      free(data);
      if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) return;
      e->reading = false;
      update_poll(e);
      emit_error(e, "recvmsg", err);
      return;
    }
    int fds[MAX_FDS_PER_READ * 2];
    size_t nfds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t k = 0; k < count && nfds < sizeof(fds) / sizeof(fds[0]); k++) memcpy(&fds[nfds++], CMSG_DATA(c) + k * sizeof(int), sizeof(int));
    }
    napi_handle_scope scope;
    napi_open_handle_scope(e->env, &scope);
    napi_value buffer = NULL, fd_array = NULL;
    if (n > 0) {
      void *copy;
      napi_create_buffer_copy(e->env, (size_t)n, data, &copy, &buffer);
    }
    free(data);
    if (nfds > 0) {
      napi_create_array_with_length(e->env, nfds, &fd_array);
      for (size_t k = 0; k < nfds; k++) {
        napi_value v;
        napi_create_int32(e->env, fds[k], &v);
        napi_set_element(e->env, fd_array, (uint32_t)k, v);
      }
    }
    if (n == 0 && nfds == 0) {
      e->reading = false;
      update_poll(e);
      emit(e, "end", NULL, NULL);
    } else {
      // Descriptors beyond what fit were closed by the kernel (MSG_CTRUNC): the peer hears of it
      // as a protocol error, since fewer arrive than its request announced.
      emit(e, "data", buffer, fd_array);
    }
    napi_close_handle_scope(e->env, scope);
    if (n == 0) return;
  }
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  endpoint *e = (endpoint *)handle;
  if (e->closing) return;
  if (status < 0) {
    e->reading = false;
    e->want_write = false;
    update_poll(e);
    emit_error(e, "poll", -status);
    return;
  }
  if (events & UV_READABLE) {
    if (e->listener) accept_ready(e);
    else read_ready(e);
  }
  if (!e->closing && (events & UV_WRITABLE) && e->want_write) {
    e->want_write = false;
    update_poll(e);
    emit(e, "writable", NULL, NULL);
  }
}

// --- the JavaScript side: an object wrapping the endpoint ----------------------------------

static void finalize(napi_env env, void *data, void *hint) {
  close_endpoint((endpoint *)data); // collected without close(): close it now
}

static endpoint *unwrap(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
  napi_value self;
  napi_get_cb_info(env, info, argc, argv, &self, NULL);
  endpoint *e = NULL;
  if (napi_unwrap(env, self, (void **)&e) != napi_ok || !e || e->closing) {
    napi_throw_error(env, "ERR_SOCKET_CLOSED", "the socket is closed");
    return NULL;
  }
  return e;
}

static napi_value m_set_reading(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  endpoint *e = unwrap(env, info, &argc, argv);
  if (!e) return NULL;
  bool on = true;
  if (argc >= 1) napi_get_value_bool(env, argv[0], &on);
  e->reading = on;
  update_poll(e);
  return NULL;
}

/** write(buffer, fds?) → bytes written; 0 when the socket is full ('writable' follows). */
static napi_value m_write(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  endpoint *e = unwrap(env, info, &argc, argv);
  if (!e) return NULL;
  void *data = NULL;
  size_t len = 0;
  if (argc < 1 || napi_get_buffer_info(env, argv[0], &data, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "write takes a Buffer");
    return NULL;
  }
  int fds[MAX_FDS_PER_READ];
  uint32_t nfds = 0;
  bool is_array = false;
  if (argc >= 2) napi_is_array(env, argv[1], &is_array);
  if (is_array) {
    napi_get_array_length(env, argv[1], &nfds);
    if (nfds > MAX_FDS_PER_READ || (nfds > 0 && len == 0)) {
      napi_throw_range_error(env, NULL, "descriptors go with at least one byte, at most 16 at once");
      return NULL;
    }
    for (uint32_t i = 0; i < nfds; i++) {
      napi_value v;
      napi_get_element(env, argv[1], i, &v);
      if (napi_get_value_int32(env, v, &fds[i]) != napi_ok || fds[i] < 0) {
        napi_throw_type_error(env, NULL, "descriptors are non-negative integers");
        return NULL;
      }
    }
  }
  union {
    char buf[CMSG_SPACE(MAX_FDS_PER_READ * sizeof(int))];
    struct cmsghdr align;
  } control;
  struct iovec iov = {.iov_base = data, .iov_len = len};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
  if (nfds > 0) {
    msg.msg_control = control.buf;
    msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
    memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
  }
  ssize_t n;
  do n = sendmsg(e->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (n == -1 && errno == EINTR);
  if (n == -1) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) return throw_errno_code(env, "sendmsg", errno);
    n = 0;
  }
  if ((size_t)n < len && !e->want_write) {
    e->want_write = true;
    update_poll(e);
  }
  napi_value result;
  napi_create_double(env, (double)n, &result);
  return result;
}

static napi_value m_shutdown(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  endpoint *e = unwrap(env, info, &argc, NULL);
  if (!e) return NULL;
  shutdown(e->fd, SHUT_WR);
  return NULL;
}

static napi_value m_close(napi_env env, napi_callback_info info) {
  napi_value self;
  napi_get_cb_info(env, info, NULL, NULL, &self, NULL);
  endpoint *e = NULL;
  // Detached from the object first, so that neither a later call nor the finalizer reaches it.
  if (napi_remove_wrap(env, self, (void **)&e) == napi_ok && e) close_endpoint(e);
  return NULL;
}

static napi_value m_fd(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  endpoint *e = unwrap(env, info, &argc, NULL);
  if (!e) return NULL;
  napi_value v;
  napi_create_int32(env, e->fd, &v);
  return v;
}

static napi_value wrap_endpoint(napi_env env, int fd, bool listener, napi_value callback) {
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
    close(fd);
    napi_throw_error(env, NULL, "no event loop");
    return NULL;
  }
  endpoint *e = calloc(1, sizeof(endpoint));
  if (!e) {
    close(fd);
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  int rc = uv_poll_init(loop, &e->poll, fd);
  if (rc != 0) {
    free(e);
    close(fd);
    return throw_errno_code(env, "uv_poll_init", -rc);
  }
  e->fd = fd;
  e->listener = listener;
  e->env = env;
  napi_create_reference(env, callback, 1, &e->callback);
  napi_value name, object, methods[5];
  napi_create_string_utf8(env, listener ? "hitch:UnixListener" : "hitch:UnixSocket", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &e->async);
  napi_create_object(env, &object);
  napi_create_function(env, "setReading", NAPI_AUTO_LENGTH, m_set_reading, NULL, &methods[0]);
  napi_create_function(env, "write", NAPI_AUTO_LENGTH, m_write, NULL, &methods[1]);
  napi_create_function(env, "shutdown", NAPI_AUTO_LENGTH, m_shutdown, NULL, &methods[2]);
  napi_create_function(env, "close", NAPI_AUTO_LENGTH, m_close, NULL, &methods[3]);
  napi_create_function(env, "fd", NAPI_AUTO_LENGTH, m_fd, NULL, &methods[4]);
  napi_set_named_property(env, object, "setReading", methods[0]);
  napi_set_named_property(env, object, "write", methods[1]);
  napi_set_named_property(env, object, "shutdown", methods[2]);
  napi_set_named_property(env, object, "close", methods[3]);
  napi_set_named_property(env, object, "fd", methods[4]);
  napi_wrap(env, object, e, finalize, NULL, NULL);
  return object;
}

static bool get_path(napi_env env, napi_value value, struct sockaddr_un *addr, socklen_t *len) {
  size_t n;
  memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &n) != napi_ok) {
    napi_throw_type_error(env, NULL, "a socket path (a string) is required");
    return false;
  }
  if (n == 0 || n >= sizeof(addr->sun_path)) {
    napi_throw_range_error(env, "ERR_SOCKET_PATH", "the socket path is empty or longer than the system allows");
    return false;
  }
  napi_get_value_string_utf8(env, value, addr->sun_path, sizeof(addr->sun_path), &n);
  if (strlen(addr->sun_path) != n) {
    napi_throw_type_error(env, NULL, "the socket path contains a NUL byte");
    return false;
  }
  *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
  return true;
}

/** listen(path, backlog, callback): a listening socket; callback('accept', fd) per connection. */
napi_value unix_listen(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  struct sockaddr_un addr;
  socklen_t len;
  int32_t backlog = 64;
  if (argc < 3 || !get_path(env, argv[0], &addr, &len)) return argc < 3 ? (napi_throw_type_error(env, NULL, "listen(path, backlog, callback)"), NULL) : NULL;
  napi_get_value_int32(env, argv[1], &backlog);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd == -1) return throw_errno_code(env, "socket", errno);
  if (bind(fd, (struct sockaddr *)&addr, len) == -1 || listen(fd, backlog) == -1) {
    int err = errno;
    close(fd);
    return throw_errno_code(env, "bind/listen", err);
  }
  return wrap_endpoint(env, fd, true, argv[2]);
}

/** adopt(fd, callback): a connected socket; callback('data', buffer?, fds?) | ('end') | ('writable') | ('error', err). */
napi_value unix_adopt(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "adopt(fd, callback)");
    return NULL;
  }
  int flags = fcntl(fd, F_GETFL);
  if (flags == -1 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1) return throw_errno_code(env, "fcntl(O_NONBLOCK)", errno);
  return wrap_endpoint(env, fd, false, argv[1]);
}

/** connect(path) → fd: a connected, non-blocking, close-on-exec socket (a Unix connect does not wait on the network). */
napi_value unix_connect(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  struct sockaddr_un addr;
  socklen_t len;
  if (argc < 1 || !get_path(env, argv[0], &addr, &len)) return NULL;
  // Non-blocking: a listener whose backlog is full answers EAGAIN at once instead of stalling
  // the event loop.
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd == -1) return throw_errno_code(env, "socket", errno);
  int rc;
  do rc = connect(fd, (struct sockaddr *)&addr, len);
  while (rc == -1 && errno == EINTR);
  if (rc == -1) {
    int err = errno;
    close(fd);
    return throw_errno_code(env, "connect", err);
  }
  napi_value v;
  napi_create_int32(env, fd, &v);
  return v;
}
