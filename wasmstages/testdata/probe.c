// probe.c: reports at init what WASI lets it do, through the sluice log:
//   "realtime <seconds>"          the wall clock (real, not a fake)
//   "random <32 hex digits>"      16 bytes from random_get
//   "env <NAME>=<value>"          or "env <NAME> unset", for the param "env"
//   "file <contents>"             or "file error <message>", for the param "file"
// and writes a line to stdout and one to stderr. It passes events through.
#include <errno.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "guest.h"

static void logf_line(const char *prefix, const char *text) {
	char line[512];
	snprintf(line, sizeof line, "%s%s", prefix, text);
	log_str(1, line);
}

static int param_str(const uint8_t *p, size_t n, const char *key, char *dst, size_t cap) {
	const uint8_t *v, *s;
	size_t vn;
	uint32_t sl;
	if (!mp_lookup(p, n, key, &v, &vn) || mp_str(v, vn, &s, &sl) < 0 || sl >= cap) return 0;
	memcpy(dst, s, sl);
	dst[sl] = 0;
	return 1;
}

EXPORT("sluice_init") int32_t sluice_init(const uint8_t *p, int32_t n) {
	char buf[256];
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(buf, sizeof buf, "%lld", (long long)ts.tv_sec);
	logf_line("realtime ", buf);

	unsigned char rnd[16];
	if (getentropy(rnd, sizeof rnd) == 0) {
		for (int i = 0; i < 16; i++) snprintf(buf + 2 * i, 3, "%02x", rnd[i]);
		logf_line("random ", buf);
	}

	char name[64];
	if (param_str(p, (size_t)n, "env", name, sizeof name)) {
		const char *val = getenv(name);
		snprintf(buf, sizeof buf, val ? "%s=%s" : "%s unset", name, val ? val : "");
		logf_line("env ", buf);
	}
	char path[128];
	if (param_str(p, (size_t)n, "file", path, sizeof path)) {
		FILE *f = fopen(path, "r");
		if (!f) {
			logf_line("file error ", strerror(errno));
		} else {
			size_t got = fread(buf, 1, sizeof buf - 1, f);
			buf[got] = 0;
			fclose(f);
			logf_line("file ", buf);
		}
	}
	printf("probe says hello on stdout\n");
	fflush(stdout);
	fprintf(stderr, "probe says hello on stderr\n");
	return 0;
}

EXPORT("sluice_process") int64_t sluice_process(const uint8_t *p, int32_t n) {
	(void)n;
	return keep_all(p);
}
