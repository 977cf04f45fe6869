/* FaaSMon eBPF backend, libbpf loader: what the kernel side (faasmon.bpf.c) hands the loader (faasmon-bpf.c) through
 * the ring buffer. Both include this file, so the layout cannot drift between them. */
#ifndef FAASMON_BPF_H
#define FAASMON_BPF_H

/* Bytes kept of a path or a buffer: 256, as the strace backend keeps (-s 256) and Tracer:MaxDataBytes defaults to. */
#define FM_DATA 256
/* execve's argv[1] and argv[2], each. */
#define FM_ARG 128

/* Record types, the letters of the text lines the loader prints (see faasmon.bt for the line formats). */
#define FM_SYSCALL 'X'
#define FM_EXEC 'E'
#define FM_FORK 'F'
#define FM_EXIT 'Q'
#define FM_SIGNAL 'S'

/* The traced system calls; FM_CALL_NAMES lists their names in the same order. */
enum fm_call {
	FM_EXECVE,
	FM_OPENAT, FM_OPEN, FM_CHMOD, FM_FCHMODAT, FM_UNLINKAT, FM_UNLINK, FM_CHDIR,
	FM_RENAMEAT2, FM_RENAMEAT, FM_RENAME,
	FM_WRITE, FM_PWRITE64, FM_READ, FM_PREAD64, FM_SENDTO, FM_RECVFROM,
	FM_CONNECT, FM_BIND,
	FM_SENDMSG, FM_RECVMSG, FM_LISTEN, FM_ACCEPT, FM_ACCEPT4, FM_CLOSE, FM_WRITEV, FM_READV,
	FM_SOCKET, FM_KILL, FM_MMAP, FM_MPROTECT,
	FM_CLONE, FM_CLONE3, FM_FORK_CALL, FM_VFORK,
	FM_CALLS
};

#define FM_CALL_NAMES \
	"execve", \
	"openat", "open", "chmod", "fchmodat", "unlinkat", "unlink", "chdir", \
	"renameat2", "renameat", "rename", \
	"write", "pwrite64", "read", "pread64", "sendto", "recvfrom", \
	"connect", "bind", \
	"sendmsg", "recvmsg", "listen", "accept", "accept4", "close", "writev", "readv", \
	"socket", "kill", "mmap", "mprotect", \
	"clone", "clone3", "fork", "vfork"

/*
 * One record. The fixed part always; then len0 bytes of data[0..FM_DATA) and, for a rename (its new path) or an
 * execve entry (argv[1] at data[FM_DATA], argv[2] at data[FM_DATA + FM_ARG]), len1/len2 bytes after it. A record
 * without bytes is reserved without data, one with a path or a buffer with FM_DATA of it, so the ring holds more.
 *   X: ns = entry time, dur, ret, a0..a2 as faasmon.bt prints them; data: path, buffer bytes (binary kept) or sockaddr
 *   E: ns, path in data, argv[1] and argv[2]        F: a0 = child pid
 *   Q: ret = exit code                               S: a0 = signal
 */
struct fm_event {
	__u8 type;
	__u8 call;
	__u16 len0;
	__u16 len1;
	__u16 len2;
	__u32 tid;
	__u32 pid;
	__u32 ppid;
	__u32 reserved;
	__u64 ns;
	__u64 dur;
	__s64 ret;
	__s64 a0;
	__s64 a1;
	__s64 a2;
	char data[];
};

#endif
