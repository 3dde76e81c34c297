// The few Unix calls Hitch's control socket needs that Node does not offer: Unix sockets that
// pass descriptors (unix_socket.c), the credentials of a connected peer (SO_PEERCRED /
// getpeereid), close-on-exec for descriptors received over SCM_RIGHTS, and a passed terminal's
// size (TIOCGWINSZ) and modes (tcgetattr, encoded for an SSH pty-req as RFC 4254 section 8 and
// RFC 8160 define them).
#define _GNU_SOURCE // struct ucred
#define NAPI_VERSION 8
#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <termios.h>
#include <unistd.h>

#include "unix_socket.h"

static napi_value throw_errno(napi_env env, const char *what) {
  char message[160];
  snprintf(message, sizeof(message), "%s: %s", what, strerror(errno));
  napi_throw_error(env, NULL, message);
  return NULL;
}

static int fd_argument(napi_env env, napi_callback_info info, int32_t *fd) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_int32(env, argv[0], fd) != napi_ok || *fd < 0) {
    napi_throw_type_error(env, NULL, "a file descriptor (a non-negative integer) is required");
    return 0;
  }
  return 1;
}

static void set_number(napi_env env, napi_value object, const char *name, double value) {
  napi_value v;
  napi_create_double(env, value, &v);
  napi_set_named_property(env, object, name, v);
}

static napi_value peer_credentials(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!fd_argument(env, info, &fd)) return NULL;
  double uid, gid, pid = -1;
#if defined(SO_PEERCRED) && defined(__linux__)
  struct ucred cred;
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1) return throw_errno(env, "getsockopt(SO_PEERCRED)");
  uid = cred.uid;
  gid = cred.gid;
  pid = cred.pid;
#else
  uid_t u;
  gid_t g;
  if (getpeereid(fd, &u, &g) == -1) return throw_errno(env, "getpeereid");
  uid = u;
  gid = g;
#endif
  napi_value result;
  napi_create_object(env, &result);
  set_number(env, result, "uid", uid);
  set_number(env, result, "gid", gid);
  set_number(env, result, "pid", pid);
  return result;
}

static napi_value set_close_on_exec(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!fd_argument(env, info, &fd)) return NULL;
  int flags = fcntl(fd, F_GETFD);
  if (flags == -1 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) == -1) return throw_errno(env, "fcntl(FD_CLOEXEC)");
  return NULL;
}

/*
 * setNonBlocking(fd, on) -> whether it was non-blocking before. O_NONBLOCK belongs to the open
 * file description, shared with the process that lent the descriptor: what it set must be given
 * back as it was (OpenSSH's channels restore it on close the same way).
 */
static napi_value set_non_blocking(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  bool on;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 || napi_get_value_bool(env, argv[1], &on) != napi_ok) {
    napi_throw_type_error(env, NULL, "setNonBlocking(fd, on)");
    return NULL;
  }
  int flags = fcntl(fd, F_GETFL);
  if (flags == -1) return throw_errno(env, "fcntl(F_GETFL)");
  int wanted = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  if (wanted != flags && fcntl(fd, F_SETFL, wanted) == -1) return throw_errno(env, "fcntl(O_NONBLOCK)");
  napi_value result;
  napi_get_boolean(env, (flags & O_NONBLOCK) != 0, &result);
  return result;
}

static napi_value window_size(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!fd_argument(env, info, &fd)) return NULL;
  struct winsize ws;
  napi_value result;
  if (ioctl(fd, TIOCGWINSZ, &ws) == -1) {
    napi_get_null(env, &result);
    return result;
  }
  napi_create_object(env, &result);
  set_number(env, result, "cols", ws.ws_col);
  set_number(env, result, "rows", ws.ws_row);
  set_number(env, result, "width", ws.ws_xpixel);
  set_number(env, result, "height", ws.ws_ypixel);
  return result;
}

// --- terminal modes ---------------------------------------------------------------------

struct modes {
  uint8_t buf[512];
  size_t len;
};

static void put_mode(struct modes *m, uint8_t opcode, uint32_t value) {
  if (m->len + 5 > sizeof(m->buf)) return;
  m->buf[m->len++] = opcode;
  m->buf[m->len++] = (uint8_t)(value >> 24);
  m->buf[m->len++] = (uint8_t)(value >> 16);
  m->buf[m->len++] = (uint8_t)(value >> 8);
  m->buf[m->len++] = (uint8_t)value;
}

/** A control character; a disabled one is sent as 255, as RFC 4254 asks. */
static uint32_t special_char(cc_t c) {
#ifdef _POSIX_VDISABLE
  if (c == _POSIX_VDISABLE) return 255;
#endif
  return c;
}

static uint32_t baud(speed_t speed) {
  static const struct { speed_t speed; uint32_t baud; } table[] = {
    {B0, 0}, {B50, 50}, {B75, 75}, {B110, 110}, {B134, 134}, {B150, 150}, {B200, 200},
    {B300, 300}, {B600, 600}, {B1200, 1200}, {B1800, 1800}, {B2400, 2400}, {B4800, 4800},
    {B9600, 9600}, {B19200, 19200}, {B38400, 38400},
#ifdef B57600
    {B57600, 57600},
#endif
#ifdef B115200
    {B115200, 115200},
#endif
#ifdef B230400
    {B230400, 230400},
#endif
  };
  for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) if (table[i].speed == speed) return table[i].baud;
  return 38400;
}

static napi_value terminal_modes(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!fd_argument(env, info, &fd)) return NULL;
  struct termios t;
  napi_value result;
  if (tcgetattr(fd, &t) == -1) {
    napi_get_null(env, &result);
    return result;
  }
  struct modes m = {.len = 0};
  // Opcodes from RFC 4254 section 8 (IUTF8: RFC 8160); each is followed by a uint32 value.
#define CHAR(op, index) put_mode(&m, op, special_char(t.c_cc[index]))
#define FLAG(op, field, bit) put_mode(&m, op, (t.field & (bit)) != 0)
  put_mode(&m, 128, baud(cfgetispeed(&t))); // TTY_OP_ISPEED
  put_mode(&m, 129, baud(cfgetospeed(&t))); // TTY_OP_OSPEED
  CHAR(1, VINTR);
  CHAR(2, VQUIT);
  CHAR(3, VERASE);
  CHAR(4, VKILL);
  CHAR(5, VEOF);
  CHAR(6, VEOL);
#ifdef VEOL2
  CHAR(7, VEOL2);
#endif
  CHAR(8, VSTART);
  CHAR(9, VSTOP);
  CHAR(10, VSUSP);
#ifdef VDSUSP
  CHAR(11, VDSUSP);
#endif
#ifdef VREPRINT
  CHAR(12, VREPRINT);
#endif
#ifdef VWERASE
  CHAR(13, VWERASE);
#endif
#ifdef VLNEXT
  CHAR(14, VLNEXT);
#endif
#ifdef VSTATUS
  CHAR(17, VSTATUS);
#endif
#ifdef VDISCARD
  CHAR(18, VDISCARD);
#endif
  FLAG(30, c_iflag, IGNPAR);
  FLAG(31, c_iflag, PARMRK);
  FLAG(32, c_iflag, INPCK);
  FLAG(33, c_iflag, ISTRIP);
  FLAG(34, c_iflag, INLCR);
  FLAG(35, c_iflag, IGNCR);
  FLAG(36, c_iflag, ICRNL);
#ifdef IUCLC
  FLAG(37, c_iflag, IUCLC);
#endif
  FLAG(38, c_iflag, IXON);
  FLAG(39, c_iflag, IXANY);
  FLAG(40, c_iflag, IXOFF);
#ifdef IMAXBEL
  FLAG(41, c_iflag, IMAXBEL);
#endif
#ifdef IUTF8
  FLAG(42, c_iflag, IUTF8);
#endif
  FLAG(50, c_lflag, ISIG);
  FLAG(51, c_lflag, ICANON);
#ifdef XCASE
  FLAG(52, c_lflag, XCASE);
#endif
  FLAG(53, c_lflag, ECHO);
  FLAG(54, c_lflag, ECHOE);
  FLAG(55, c_lflag, ECHOK);
  FLAG(56, c_lflag, ECHONL);
  FLAG(57, c_lflag, NOFLSH);
  FLAG(58, c_lflag, TOSTOP);
  FLAG(59, c_lflag, IEXTEN);
#ifdef ECHOCTL
  FLAG(60, c_lflag, ECHOCTL);
#endif
#ifdef ECHOKE
  FLAG(61, c_lflag, ECHOKE);
#endif
#ifdef PENDIN
  FLAG(62, c_lflag, PENDIN);
#endif
  FLAG(70, c_oflag, OPOST);
#ifdef OLCUC
  FLAG(71, c_oflag, OLCUC);
#endif
  FLAG(72, c_oflag, ONLCR);
#ifdef OCRNL
  FLAG(73, c_oflag, OCRNL);
#endif
#ifdef ONOCR
  FLAG(74, c_oflag, ONOCR);
#endif
#ifdef ONLRET
  FLAG(75, c_oflag, ONLRET);
#endif
  put_mode(&m, 90, (t.c_cflag & CSIZE) == CS7); // character size is a field, not a bit
  put_mode(&m, 91, (t.c_cflag & CSIZE) == CS8);
  FLAG(92, c_cflag, PARENB);
  FLAG(93, c_cflag, PARODD);
#undef CHAR
#undef FLAG
  m.buf[m.len++] = 0; // TTY_OP_END
  void *data;
  napi_create_buffer_copy(env, m.len, m.buf, &data, &result);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"peerCredentials", NULL, peer_credentials, NULL, NULL, NULL, napi_enumerable, NULL},
    {"setCloseOnExec", NULL, set_close_on_exec, NULL, NULL, NULL, napi_enumerable, NULL},
    {"setNonBlocking", NULL, set_non_blocking, NULL, NULL, NULL, napi_enumerable, NULL},
    {"windowSize", NULL, window_size, NULL, NULL, NULL, napi_enumerable, NULL},
    {"terminalModes", NULL, terminal_modes, NULL, NULL, NULL, napi_enumerable, NULL},
    {"listen", NULL, unix_listen, NULL, NULL, NULL, napi_enumerable, NULL},
    {"adopt", NULL, unix_adopt, NULL, NULL, NULL, napi_enumerable, NULL},
    {"connect", NULL, unix_connect, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
