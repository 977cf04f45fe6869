/* The string field of the text lines that the eBPF loader (faasmon-bpf.c) and the ptrace backend's tracer
 * (../ptrace/faasmon-ptrace.c) print, and EbpfLineParser reads: printable ASCII as is; every control byte, 0x7f, a
 * backslash and a byte >= 0x80 as \xNN, so no byte of a path or a buffer can end a line, add a field or forge one. */
#ifndef FAASMON_LINES_H
#define FAASMON_LINES_H

#include <stddef.h>

/* Writes n bytes escaped to dst, which has room for 4 * n; returns how many it wrote. */
static inline size_t fm_escape(char *dst, const unsigned char *src, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char b = src[i];
		if (b < 0x20 || b >= 0x7f || b == '\\') {
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[b >> 4];
			dst[o++] = hex[b & 15];
		} else {
			dst[o++] = (char)b;
		}
	}
	return o;
}

#endif
