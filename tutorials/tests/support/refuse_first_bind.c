/* An LD_PRELOAD shim for surfpool_helper_retries_a_start_that_lost_its_port (tests/tutorials.rs):
 * the first bind() of a non-zero IPv4 port in any process that loads it fails with EADDRINUSE, as
 * when another process takes the port the surfpool runtime picked before the runtime binds it.
 * It fires once: only while the file named by REFUSE_BIND_ONCE exists, which it removes. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
  static int (*real_bind)(int, const struct sockaddr *, socklen_t);
  if (!real_bind) real_bind = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
  const char *marker = getenv("REFUSE_BIND_ONCE");
  if (marker && addr && addr->sa_family == AF_INET) {
    int port = ntohs(((const struct sockaddr_in *)addr)->sin_port);
    if (port != 0 && unlink(marker) == 0) {
      fprintf(stderr, "refuse_first_bind: bind of port %d refused\n", port);
      errno = EADDRINUSE;
      return -1;
    }
  }
  return real_bind(fd, addr, len);
}
