// escape.c: a hostile guest that tries to leave its directory grants, and
// to reach the operator's terminal through the host's logs. At init it runs
// the operations listed in the param "ops" (an array of strings, "<op>
// <arg> [<arg>]") and logs each outcome through the sluice log as "escape
// <op line> => ok <detail>" or "escape <op line> => error <strerror>". The
// ops:
//   read P              the first 64 bytes of P
//   write P TEXT        create or truncate P and write TEXT
//   symlink TARGET L    create the link L -> TARGET
//   link OLD NEW        hard-link OLD as NEW
//   rename OLD NEW      rename OLD to NEW
//   unlink P            remove the file (or link) P
//   mkdir P             make the directory P
//   stat P              stat P (following links): its size
//   readlink P          the target of the link P
//   say TEXT            log TEXT (the rest of the line, as given: it may
//                       hold escape sequences), print it on stdout and
//                       stderr, and set it as the error message
//   fail TEXT           fail sluice_init with TEXT as its message
//   race P N            read P up to N times, and stop once 1000 reads saw
//                       INSIDE and 1000 did not; "secret=S inside=I
//                       error=E other=O" counts contents starting SECRET,
//                       INSIDE, failed opens, anything else
// It passes events through.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest.h"

static void report(const char *line, int ok, const char *detail) {
	char buf[400];
	snprintf(buf, sizeof buf, "escape %s => %s %s", line, ok ? "ok" : "error", detail);
	log_str(1, buf);
}

static int read_head(const char *path, char *dst, size_t cap) {
	int fd = open(path, O_RDONLY);
	if (fd < 0) return -1;
	ssize_t n = read(fd, dst, cap - 1);
	int saved = errno;
	close(fd);
	if (n < 0) {
		errno = saved;
		return -1;
	}
	dst[n] = 0;
	return (int)n;
}

static int failed;

static void run(char *line) {
	char copy[256];
	snprintf(copy, sizeof copy, "%s", line);
	if (strncmp(line, "say ", 4) == 0) {
		log_str(1, line + 4);
		printf("%s\n", line + 4);
		fflush(stdout);
		fprintf(stderr, "%s\n", line + 4);
		set_error_str(line + 4);
		return;
	}
	if (strncmp(line, "fail ", 5) == 0) {
		set_error_str(line + 5);
		failed = 1;
		return;
	}
	char *op = strtok(line, " ");
	char *a = strtok(NULL, " ");
	char *b = strtok(NULL, " ");
	char detail[128] = "";
	int rc = -1;
	if (!op || !a) {
		report(copy, 0, "bad op");
		return;
	}
	if (strcmp(op, "read") == 0) {
		if (read_head(a, detail, sizeof detail) >= 0) rc = 0;
	} else if (strcmp(op, "write") == 0 && b) {
		int fd = open(a, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd >= 0) {
			rc = write(fd, b, strlen(b)) == (ssize_t)strlen(b) ? 0 : -1;
			close(fd);
		}
	} else if (strcmp(op, "symlink") == 0 && b) {
		rc = symlink(a, b);
	} else if (strcmp(op, "link") == 0 && b) {
		rc = link(a, b);
	} else if (strcmp(op, "rename") == 0 && b) {
		rc = rename(a, b);
	} else if (strcmp(op, "unlink") == 0) {
		rc = unlink(a);
	} else if (strcmp(op, "mkdir") == 0) {
		rc = mkdir(a, 0755);
	} else if (strcmp(op, "stat") == 0) {
		struct stat st;
		rc = stat(a, &st);
		if (rc == 0) snprintf(detail, sizeof detail, "size=%lld", (long long)st.st_size);
	} else if (strcmp(op, "readlink") == 0) {
		ssize_t n = readlink(a, detail, sizeof detail - 1);
		if (n >= 0) detail[n] = 0, rc = 0;
	} else if (strcmp(op, "race") == 0 && b) {
		long n = strtol(b, NULL, 10), secret = 0, inside = 0, failed = 0, other = 0;
		char head[16];
		for (long i = 0; i < n && (inside < 1000 || secret + failed + other < 1000); i++) {
			if (read_head(a, head, sizeof head) < 0) failed++;
			else if (strncmp(head, "SECRET", 6) == 0) secret++;
			else if (strncmp(head, "INSIDE", 6) == 0) inside++;
			else other++;
		}
		snprintf(detail, sizeof detail, "secret=%ld inside=%ld error=%ld other=%ld", secret, inside, failed, other);
		rc = 0;
	} else {
		report(copy, 0, "unknown op");
		return;
	}
	report(copy, rc == 0, rc == 0 ? detail : strerror(errno));
}

EXPORT("sluice_init") int32_t sluice_init(const uint8_t *p, int32_t n) {
	const uint8_t *v;
	size_t vn;
	if (!mp_lookup(p, (size_t)n, "ops", &v, &vn)) return 0;
	uint32_t count;
	int64_t off = mp_container(v, vn, 0, &count);
	if (off < 0) return 0;
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *s;
		uint32_t sl;
		int64_t m = mp_str(v + off, vn - (size_t)off, &s, &sl);
		if (m < 0) return 0;
		off += m;
		char line[256];
		if (sl >= sizeof line) sl = sizeof line - 1;
		memcpy(line, s, sl);
		line[sl] = 0;
		run(line);
	}
	return failed;
}

EXPORT("sluice_process") int64_t sluice_process(const uint8_t *p, int32_t n) {
	(void)n;
	return keep_all(p);
}
