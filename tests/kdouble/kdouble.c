/*
 * SPDX-License-Identifier: MIT
 *
 * The kernel double of the evl-tools tests: an LD_PRELOAD interposer that
 * puts the EVL kernel ABI at the syscall boundary of an unmodified Python
 * process under the control of a test server (tests/kdouble/server.py).
 *
 * It knows nothing of EVL.  It watches:
 *  - open*() of paths under $KDOUBLE_DEVDIR and $KDOUBLE_SYSDIR (the fake
 *    /dev/evl nodes and sysfs tree, plain files): the fd is "tracked" and
 *    the server told about it;
 *  - socket() whose type carries bit 29 or 30 (the SOCK_OOB candidates): the
 *    server decides (EINVAL, or create a real socket without the bit);
 *  - ioctl(), setsockopt(), read(), write() and close() on tracked fds.
 * For each, it forwards what a kernel would see (fd, request number, the
 * raw bytes at the user pointer) over the unix socket $KDOUBLE_SOCK and does
 * what the server answers: read more user memory (peek), describe an fd from
 * /proc/self (fdinfo), open /dev/null as a new device fd (mkfd), and finally
 * return a value with errno, writing bytes back into user memory (done), or
 * perform the real call (pass).  Untracked fds are never touched.
 *
 * Protocol: one line per message, space-separated tokens, byte strings in
 * hex ("-" when empty).  The interposer connects on first use only, so a
 * process that never touches the watched paths never talks to the server;
 * one that did says "bye" at exit and waits for the server's "ok".
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_FDS 65536
#define LINE_MAX_BYTES (1 << 20)
#define OOB_BITS ((1 << 29) | (1 << 30))

static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static int (*real_close)(int);
static int (*real_ioctl)(int, unsigned long, ...);
static int (*real_socket)(int, int, int);
static int (*real_setsockopt)(int, int, int, const void *, socklen_t);
static ssize_t (*real_read)(int, void *, size_t);
static ssize_t (*real_write)(int, const void *, size_t);

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char tracked[MAX_FDS];
static int conn = -1;
static pid_t conn_pid;
static char *inbuf;
static size_t inlen;
static char *outbuf;

static void resolve(void)
{
	if (real_close)
		return;
	real_open = dlsym(RTLD_NEXT, "open");
	real_open64 = dlsym(RTLD_NEXT, "open64");
	real_openat = dlsym(RTLD_NEXT, "openat");
	real_openat64 = dlsym(RTLD_NEXT, "openat64");
	real_ioctl = dlsym(RTLD_NEXT, "ioctl");
	real_socket = dlsym(RTLD_NEXT, "socket");
	real_setsockopt = dlsym(RTLD_NEXT, "setsockopt");
	real_read = dlsym(RTLD_NEXT, "read");
	real_write = dlsym(RTLD_NEXT, "write");
	real_close = dlsym(RTLD_NEXT, "close");
}

static void die(const char *what)
{
	char msg[256];
	int n = snprintf(msg, sizeof(msg), "kdouble: %s: %s\n", what, strerror(errno));
	if (real_write)
		real_write(2, msg, n);
	abort();
}

static int is_tracked(int fd)
{
	return fd >= 0 && fd < MAX_FDS && tracked[fd];
}

static void track(int fd, int on)
{
	if (fd >= 0 && fd < MAX_FDS)
		tracked[fd] = on;
}

static const char *env_dir(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

static int under(const char *path, const char *dir)
{
	size_t n;

	if (!dir || !path)
		return 0;
	n = strlen(dir);
	return strncmp(path, dir, n) == 0 && path[n] == '/';
}

static int watched(const char *path)
{
	if (!getenv("KDOUBLE_SOCK"))
		return 0;
	return under(path, env_dir("KDOUBLE_DEVDIR")) || under(path, env_dir("KDOUBLE_SYSDIR"));
}

/* -- the connection ------------------------------------------------------ */

static void sendall(const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(conn, buf, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("send to the test server");
		}
		buf += n;
		len -= n;
	}
}

static void connect_server(void)
{
	struct sockaddr_un sun;
	const char *path = getenv("KDOUBLE_SOCK");
	char hello[64];

	if (conn >= 0 && conn_pid == getpid())
		return;
	if (conn >= 0)	/* forked: the child gets a connection of its own */
		real_close(conn);
	if (!inbuf) {
		inbuf = malloc(LINE_MAX_BYTES);
		outbuf = malloc(LINE_MAX_BYTES);
		if (!inbuf || !outbuf)
			die("malloc");
	}
	inlen = 0;
	conn = real_socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (conn < 0)
		die("socket");
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strncpy(sun.sun_path, path, sizeof(sun.sun_path) - 1);
	if (connect(conn, (struct sockaddr *)&sun, sizeof(sun)))
		die("connect to $KDOUBLE_SOCK");
	conn_pid = getpid();
	snprintf(hello, sizeof(hello), "hello %d\n", (int)conn_pid);
	sendall(hello, strlen(hello));
}

/* Read one line (without its '\n') into a static buffer. */
static char *recv_line(void)
{
	static char line[LINE_MAX_BYTES];
	for (;;) {
		char *nl = memchr(inbuf, '\n', inlen);
		if (nl) {
			size_t n = nl - inbuf;
			memcpy(line, inbuf, n);
			line[n] = '\0';
			memmove(inbuf, nl + 1, inlen - n - 1);
			inlen -= n + 1;
			return line;
		}
		if (inlen == LINE_MAX_BYTES) {
			errno = E2BIG;
			die("line from the test server");
		}
		ssize_t got = recv(conn, inbuf + inlen, LINE_MAX_BYTES - inlen, 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			errno = got ? errno : ECONNRESET;
			die("recv from the test server");
		}
		inlen += got;
	}
}

static char *hex(char *out, const void *data, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *p = data;
	size_t i;

	if (!data || len == 0) {
		strcpy(out, "-");
		return out + 1;
	}
	for (i = 0; i < len; i++) {
		*out++ = digits[p[i] >> 4];
		*out++ = digits[p[i] & 15];
	}
	*out = '\0';
	return out;
}

static size_t unhex(const char *in, unsigned char *out, size_t max)
{
	size_t n = 0;

	if (!in || strcmp(in, "-") == 0)
		return 0;
	while (in[0] && in[1] && n < max) {
		unsigned int byte;
		if (sscanf(in, "%2x", &byte) != 1)
			break;
		out[n++] = byte;
		in += 2;
	}
	return n;
}

/* Copy user memory without faulting on a bad pointer; -errno on failure. */
static ssize_t peek(unsigned long addr, void *buf, size_t len)
{
	struct iovec local = { buf, len }, remote = { (void *)addr, len };
	ssize_t n = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
	return n < 0 ? -errno : n;
}

static void send_fdinfo(int fd)
{
	char path[64], link[512], info[4096];
	ssize_t ln, in = 0;
	int f;
	char *p = outbuf;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ln = readlink(path, link, sizeof(link));
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = real_open(path, O_RDONLY | O_CLOEXEC);
	if (f >= 0) {
		in = real_read(f, info, sizeof(info));
		real_close(f);
	}
	p += sprintf(p, "fdinfo ");
	p = hex(p, ln > 0 ? link : NULL, ln > 0 ? ln : 0);
	*p++ = ' ';
	p = hex(p, in > 0 ? info : NULL, in > 0 ? in : 0);
	*p++ = '\n';
	sendall(outbuf, p - outbuf);
}

/*
 * The dialogue after a request: answer the server's questions until it
 * says "done" (return *ret/errno, bytes into reply) or "pass" (returns 1).
 */
struct answer {
	long ret;
	int err;
	unsigned char *data;
	size_t len;
};

static int dialogue(struct answer *a, size_t maxlen)
{
	for (;;) {
		char *line = recv_line(), *save = NULL;
		char *verb = strtok_r(line, " ", &save);

		if (!verb)
			continue;
		if (strcmp(verb, "pass") == 0)
			return 1;
		if (strcmp(verb, "done") == 0) {
			char *r = strtok_r(NULL, " ", &save), *e = strtok_r(NULL, " ", &save);
			char *d = strtok_r(NULL, " ", &save);
			a->ret = r ? strtol(r, NULL, 10) : -1;
			a->err = e ? atoi(e) : EIO;
			a->len = (d && a->data) ? unhex(d, a->data, maxlen) : 0;
			return 0;
		}
		if (strcmp(verb, "peek") == 0) {
			unsigned long addr = strtoul(strtok_r(NULL, " ", &save), NULL, 16);
			size_t len = strtoul(strtok_r(NULL, " ", &save), NULL, 10);
			unsigned char tmp[4096];
			ssize_t n;
			char *p = outbuf;
			if (len > sizeof(tmp))
				len = sizeof(tmp);
			n = peek(addr, tmp, len);
			p += sprintf(p, "mem %d ", n < 0 ? (int)-n : 0);
			p = hex(p, tmp, n > 0 ? n : 0);
			*p++ = '\n';
			sendall(outbuf, p - outbuf);
			continue;
		}
		if (strcmp(verb, "fdinfo") == 0) {
			send_fdinfo(atoi(strtok_r(NULL, " ", &save)));
			continue;
		}
		if (strcmp(verb, "mkfd") == 0) {
			int fd = real_open("/dev/null", O_RDWR | O_CLOEXEC);
			char msg[32];
			track(fd, 1);
			snprintf(msg, sizeof(msg), "fd %d\n", fd);
			sendall(msg, strlen(msg));
			continue;
		}
		errno = EPROTO;
		die(verb);
	}
}

/*
 * At exit, say goodbye and wait for the server's answer: it checks the fds
 * left open then, and once it answered it has handled everything this
 * process sent, so a test that waited for the process sees the whole story.
 */
__attribute__((destructor)) static void bye(void)
{
	if (conn < 0 || conn_pid != getpid())
		return;
	pthread_mutex_lock(&lock);
	sendall("bye\n", 4);
	recv_line();
	pthread_mutex_unlock(&lock);
}

/* -- interposed calls ------------------------------------------------------ */

static void note_open(int fd, const char *path, int flags)
{
	char *p;

	if (fd < 0 || !watched(path))
		return;
	pthread_mutex_lock(&lock);
	connect_server();
	track(fd, 1);
	p = outbuf + sprintf(outbuf, "open %d %d ", fd, flags);
	p = hex(p, path, strlen(path));
	*p++ = '\n';
	sendall(outbuf, p - outbuf);
	pthread_mutex_unlock(&lock);
}

#define OPEN_MODE(flags, mode)					\
	do {							\
		if ((flags) & (O_CREAT | __O_TMPFILE)) {	\
			va_list ap;				\
			va_start(ap, flags);			\
			mode = va_arg(ap, int);			\
			va_end(ap);				\
		}						\
	} while (0)

int open(const char *path, int flags, ...)
{
	int mode = 0, fd;
	resolve();
	OPEN_MODE(flags, mode);
	fd = real_open(path, flags, mode);
	note_open(fd, path, flags);
	return fd;
}

int open64(const char *path, int flags, ...)
{
	int mode = 0, fd;
	resolve();
	OPEN_MODE(flags, mode);
	fd = real_open64(path, flags, mode);
	note_open(fd, path, flags);
	return fd;
}

int openat(int dirfd, const char *path, int flags, ...)
{
	int mode = 0, fd;
	resolve();
	OPEN_MODE(flags, mode);
	fd = real_openat(dirfd, path, flags, mode);
	note_open(fd, path, flags);
	return fd;
}

int openat64(int dirfd, const char *path, int flags, ...)
{
	int mode = 0, fd;
	resolve();
	OPEN_MODE(flags, mode);
	fd = real_openat64(dirfd, path, flags, mode);
	note_open(fd, path, flags);
	return fd;
}

int __open_2(const char *path, int flags)
{
	return open(path, flags);
}

int __open64_2(const char *path, int flags)
{
	return open64(path, flags);
}

int close(int fd)
{
	resolve();
	if (is_tracked(fd)) {
		char msg[32];
		pthread_mutex_lock(&lock);
		track(fd, 0);
		connect_server();
		snprintf(msg, sizeof(msg), "close %d\n", fd);
		sendall(msg, strlen(msg));
		pthread_mutex_unlock(&lock);
	}
	return real_close(fd);
}

int ioctl(int fd, unsigned long request, ...)
{
	va_list ap;
	void *arg;
	unsigned char data[1 << 14];
	size_t size = (request >> 16) & 0x3fff;
	ssize_t got = 0;
	struct answer a = { .data = data };
	char *p;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	resolve();
	if (!is_tracked(fd))
		return real_ioctl(fd, request, arg);

	pthread_mutex_lock(&lock);
	connect_server();
	if (arg && size)
		got = peek((unsigned long)arg, data, size);
	p = outbuf + sprintf(outbuf, "ioctl %d %lx %lx ", fd, request, (unsigned long)arg);
	p = hex(p, data, got > 0 ? (size_t)got : 0);
	*p++ = '\n';
	sendall(outbuf, p - outbuf);
	if (dialogue(&a, sizeof(data))) {
		pthread_mutex_unlock(&lock);
		return real_ioctl(fd, request, arg);
	}
	pthread_mutex_unlock(&lock);
	if (a.len && arg)
		memcpy(arg, data, a.len);
	if (a.ret < 0)
		errno = a.err;
	return (int)a.ret;
}

int socket(int domain, int type, int protocol)
{
	char msg[96];
	int fd;

	resolve();
	if (!(type & OOB_BITS) || !getenv("KDOUBLE_SOCK"))
		return real_socket(domain, type, protocol);
	pthread_mutex_lock(&lock);
	connect_server();
	snprintf(msg, sizeof(msg), "socket %d %d %d\n", domain, type, protocol);
	sendall(msg, strlen(msg));
	for (;;) {
		char *line = recv_line(), *save = NULL;
		char *verb = strtok_r(line, " ", &save);
		if (verb && strcmp(verb, "create") == 0) {
			int real_type = atoi(strtok_r(NULL, " ", &save));
			fd = real_socket(domain, real_type, protocol);
			if (fd >= 0) {
				track(fd, 1);
				snprintf(msg, sizeof(msg), "tracked %d\n", fd);
				sendall(msg, strlen(msg));
			}
			pthread_mutex_unlock(&lock);
			return fd;
		}
		if (verb && strcmp(verb, "done") == 0) {
			int ret = atoi(strtok_r(NULL, " ", &save));
			int err = atoi(strtok_r(NULL, " ", &save));
			pthread_mutex_unlock(&lock);
			errno = err;
			return ret;
		}
		errno = EPROTO;
		die("socket dialogue");
	}
}

int setsockopt(int fd, int level, int optname, const void *optval, socklen_t optlen)
{
	struct answer a = { 0 };
	char *p;

	resolve();
	if (!is_tracked(fd))
		return real_setsockopt(fd, level, optname, optval, optlen);
	pthread_mutex_lock(&lock);
	connect_server();
	p = outbuf + sprintf(outbuf, "setsockopt %d %d %d ", fd, level, optname);
	p = hex(p, optval, optval ? optlen : 0);
	*p++ = '\n';
	sendall(outbuf, p - outbuf);
	if (dialogue(&a, 0)) {
		pthread_mutex_unlock(&lock);
		return real_setsockopt(fd, level, optname, optval, optlen);
	}
	pthread_mutex_unlock(&lock);
	if (a.ret < 0)
		errno = a.err;
	return (int)a.ret;
}

ssize_t write(int fd, const void *buf, size_t count)
{
	struct answer a = { 0 };
	char *p;

	resolve();
	if (!is_tracked(fd))
		return real_write(fd, buf, count);
	if (count > 65536)
		count = 65536;
	pthread_mutex_lock(&lock);
	connect_server();
	p = outbuf + sprintf(outbuf, "write %d ", fd);
	p = hex(p, buf, count);
	*p++ = '\n';
	sendall(outbuf, p - outbuf);
	if (dialogue(&a, 0)) {
		pthread_mutex_unlock(&lock);
		return real_write(fd, buf, count);
	}
	pthread_mutex_unlock(&lock);
	if (a.ret < 0)
		errno = a.err;
	return a.ret;
}

ssize_t read(int fd, void *buf, size_t count)
{
	static unsigned char data[65536];
	struct answer a = { .data = data };
	char msg[64];

	resolve();
	if (!is_tracked(fd))
		return real_read(fd, buf, count);
	pthread_mutex_lock(&lock);
	connect_server();
	snprintf(msg, sizeof(msg), "read %d %zu\n", fd, count);
	sendall(msg, strlen(msg));
	if (dialogue(&a, count < sizeof(data) ? count : sizeof(data))) {
		pthread_mutex_unlock(&lock);
		return real_read(fd, buf, count);
	}
	pthread_mutex_unlock(&lock);
	if (a.ret < 0) {
		errno = a.err;
		return a.ret;
	}
	memcpy(buf, data, a.len);
	return a.len;
}
