/*
 * ferry-relay: the byte mover of one tunnelled migration stream.
 *
 * ferryd hands over two connected stream sockets as file descriptors 3 and
 * 4 and this program copies 3 -> 4 and 4 -> 3 until both directions end.
 * With --copy splice (the default) the bytes go through a pipe with
 * splice(2) and never enter user space; --copy readwrite uses read(2) and
 * write(2) with one reused buffer per direction (also the fallback when a
 * socket refuses splice).
 *
 * Bytes ferryd had already read from either socket before the hand-over
 * come first, on standard input: a 4-byte big-endian length and that many
 * bytes to write to fd 4, then a length and the bytes for fd 3. They are
 * written before anything is relayed, so the order of each stream is kept.
 *
 * A direction ends when its reader sees the end of the stream: the other
 * socket is then shut down for writing, so its far end sees the end after
 * the last byte. When both directions have ended the program exits 0. An
 * error on either socket ends the program at once with status 1 and a
 * message on stderr; both sockets are closed with a reset, so that both far
 * ends see a broken stream, never a clean end. The program also dies with
 * ferryd (PR_SET_PDEATHSIG), as the in-process relay would.
 *
 * A unix socket (QEMU's side) gets a 4 MiB send buffer (see tune_socket).
 * Liveness: a TCP socket (the daemons' connection) gets keepalive probes
 * and a user timeout, so a peer host that vanishes is noticed within about
 * 30 s, whether the link is idle or has data unacknowledged; and once one
 * direction has ended, the other must end within 60 s, or the relay counts
 * as broken. No wait of the relay is unbounded.
 *
 * On exit it prints one line on stdout for ferryd's log: the bytes moved
 * each way and its own CPU time,
 *   relayed 3to4=BYTES 4to3=BYTES user_us=N sys_us=N
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { FD_A = 3, FD_B = 4 };
enum copy_mode { COPY_SPLICE, COPY_READWRITE };

/* A vanished peer host: keepalive after 10 s idle, every 5 s, 4 unanswered probes; or 30 s of unacknowledged data. */
enum { KEEPIDLE_S = 10, KEEPINTVL_S = 5, KEEPCNT = 4, USER_TIMEOUT_MS = 30000 };
/* Once one direction ended, the other has this long to end (--other-direction-s). */
static long other_direction_s = 60;

static enum copy_mode mode = COPY_SPLICE;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ended_cond = PTHREAD_COND_INITIALIZER;
static int ended;
static size_t chunk = 256 * 1024;

struct direction {
  int from, to;
  const char *name;
  unsigned long long moved;
  int done; /* under lock */
};

static struct direction ab = { FD_A, FD_B, "fd 3 to fd 4", 0, 0 }, ba = { FD_B, FD_A, "fd 4 to fd 3", 0, 0 };

/* The exit line (see the top); the counters of a direction still running may be a read behind. */
static void report(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("relayed 3to4=%llu 4to3=%llu user_us=%lld sys_us=%lld\n", __atomic_load_n(&ab.moved, __ATOMIC_RELAXED), __atomic_load_n(&ba.moved, __ATOMIC_RELAXED),
         (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec, (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec);
  fflush(stdout);
}

/* Closes both sockets with a reset and exits: the far ends must not take a broken stream for a finished one. */
static void fail(struct direction *d, const char *what, int err) {
  static const struct linger abort_close = { .l_onoff = 1, .l_linger = 0 };
  fprintf(stderr, "ferry-relay: %s: %s: %s\n", d->name, what, strerror(err));
  setsockopt(FD_A, SOL_SOCKET, SO_LINGER, &abort_close, sizeof abort_close);
  setsockopt(FD_B, SOL_SOCKET, SO_LINGER, &abort_close, sizeof abort_close);
  report();
  _exit(1);
}

static void write_all(struct direction *d, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(d->to, buf, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(d, "write", errno);
    }
    buf += n;
    len -= (size_t)n;
    __atomic_add_fetch(&d->moved, (unsigned long long)n, __ATOMIC_RELAXED);
  }
}

/* Copies with read/write through one buffer; returns at the end of the stream. */
static void copy_readwrite(struct direction *d) {
  char *buf = malloc(chunk);
  if (!buf) fail(d, "malloc", ENOMEM);
  for (;;) {
    ssize_t n = read(d->from, buf, chunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(d, "read", errno);
    }
    if (n == 0) break;
    write_all(d, buf, (size_t)n);
  }
  free(buf);
}

/* Copies through a pipe with splice; returns 0 at the end of the stream, -1 when a socket does not splice (nothing moved yet). */
static int copy_splice(struct direction *d) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) fail(d, "pipe", errno);
  fcntl(p[1], F_SETPIPE_SZ, (int)chunk);
  int moved_any = 0;
  for (;;) {
    ssize_t in = splice(d->from, NULL, p[1], NULL, chunk, SPLICE_F_MOVE);
    if (in < 0) {
      if (errno == EINTR) continue;
      if (errno == EINVAL && !moved_any) {
        close(p[0]);
        close(p[1]);
        return -1;
      }
      fail(d, "read", errno);
    }
    if (in == 0) break;
    moved_any = 1;
    while (in > 0) {
      ssize_t out = splice(p[0], NULL, d->to, NULL, (size_t)in, SPLICE_F_MOVE);
      if (out < 0) {
        if (errno == EINTR) continue;
        fail(d, "write", errno);
      }
      in -= out;
      __atomic_add_fetch(&d->moved, (unsigned long long)out, __ATOMIC_RELAXED);
    }
  }
  close(p[0]);
  close(p[1]);
  return 0;
}

static void *relay(void *arg) {
  struct direction *d = arg;
  if (mode != COPY_SPLICE || copy_splice(d) < 0) copy_readwrite(d);
  if (shutdown(d->to, SHUT_WR) < 0 && errno != ENOTCONN) fail(d, "shutdown", errno);
  pthread_mutex_lock(&lock);
  ended++;
  d->done = 1;
  pthread_cond_signal(&ended_cond);
  pthread_mutex_unlock(&lock);
  return NULL;
}

/*
 * A unix socket (a QEMU's) gets a 4 MiB send buffer, as far as the kernel
 * allows (SO_SNDBUFFORCE as root): with the default 208 KiB a 1 GiB
 * guest's tunnelled downtime was 432 ms against 256 ms direct, with 4 MiB
 * 282 against 286 (medians of 7; docs/performance.md, "Close to the
 * floor"), most likely because the helper and the destination QEMU took
 * turns every 208 KiB while the last chunk went through.
 * A TCP socket (the daemons' connection) gets keepalive and a user timeout;
 * its buffers are TCP's own, as in a direct migration.
 */
static void tune_socket(int fd) {
  int domain = 0;
  socklen_t len = sizeof domain;
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 && domain == AF_UNIX) {
    const int big = 4 * 1024 * 1024;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big) < 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    return;
  }
  if (domain != AF_INET && domain != AF_INET6) return;
  const int on = 1, idle = KEEPIDLE_S, intvl = KEEPINTVL_S, cnt = KEEPCNT;
  const unsigned int user_timeout = USER_TIMEOUT_MS;
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
  setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof user_timeout);
}

static void read_exact(int fd, void *buf, size_t len) {
  char *p = buf;
  while (len > 0) {
    ssize_t n = read(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      fprintf(stderr, "ferry-relay: standard input ended before the buffered bytes\n");
      _exit(2);
    }
    p += n;
    len -= (size_t)n;
  }
}

/* Writes the bytes ferryd read before the hand-over to the socket they were meant for. */
static void forward_buffered(struct direction *d) {
  unsigned char len_be[4];
  read_exact(0, len_be, sizeof len_be);
  size_t len = ((size_t)len_be[0] << 24) | ((size_t)len_be[1] << 16) | ((size_t)len_be[2] << 8) | len_be[3];
  if (len == 0) return;
  char *buf = malloc(len);
  if (!buf) fail(d, "malloc", ENOMEM);
  read_exact(0, buf, len);
  write_all(d, buf, len);
  free(buf);
}

static void blocking(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
    fprintf(stderr, "ferry-relay: fd %d is not open: %s\n", fd, strerror(errno));
    _exit(2);
  }
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--copy") == 0 && i + 1 < argc) {
      const char *m = argv[++i];
      if (strcmp(m, "splice") == 0) mode = COPY_SPLICE;
      else if (strcmp(m, "readwrite") == 0) mode = COPY_READWRITE;
      else goto usage;
    } else if (strcmp(argv[i], "--chunk-kib") == 0 && i + 1 < argc) {
      long k = strtol(argv[++i], NULL, 10);
      if (k < 4 || k > 16384) goto usage;
      chunk = (size_t)k * 1024;
    } else if (strcmp(argv[i], "--other-direction-s") == 0 && i + 1 < argc) {
      other_direction_s = strtol(argv[++i], NULL, 10);
      if (other_direction_s < 1 || other_direction_s > 3600) goto usage;
    } else {
      goto usage;
    }
  }
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() == 1) return 1; /* ferryd is already gone */
  signal(SIGPIPE, SIG_IGN);
  blocking(FD_A);
  blocking(FD_B);
  forward_buffered(&ab);
  forward_buffered(&ba);
  close(0);
  tune_socket(FD_A);
  tune_socket(FD_B);
  pthread_t t[2];
  if (pthread_create(&t[0], NULL, relay, &ab) != 0) fail(&ab, "pthread_create", errno);
  if (pthread_create(&t[1], NULL, relay, &ba) != 0) fail(&ba, "pthread_create", errno);
  pthread_mutex_lock(&lock);
  while (ended == 0) pthread_cond_wait(&ended_cond, &lock);
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += other_direction_s;
  while (ended < 2) {
    if (pthread_cond_timedwait(&ended_cond, &lock, &deadline) == ETIMEDOUT && ended < 2) {
      fail(ab.done ? &ba : &ab, "still open after the other direction ended", ETIMEDOUT);
    }
  }
  pthread_mutex_unlock(&lock);
  report();
  return 0;
usage:
  fprintf(stderr, "usage: ferry-relay [--copy splice|readwrite] [--chunk-kib N] [--other-direction-s N]  (sockets on fd 3 and 4, buffered bytes on stdin)\n");
  return 2;
}
